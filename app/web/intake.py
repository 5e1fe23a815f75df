"""Intake pages (paste an article, accept candidates): a placeholder until they are built."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.web.deps import Contributor
from app.web.render import DeskRoute, page

router = APIRouter(route_class=DeskRoute)


@router.get("/intake")
def intake_page(request: Request, user: Contributor) -> Response:
    return page(request, "placeholder.html", title="Intake", active="intake", what="intake")
