"""Admin pages (users, keys, webhooks): a placeholder until they are built."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.web.deps import Admin
from app.web.render import DeskRoute, page

router = APIRouter(route_class=DeskRoute)


@router.get("/admin")
def admin_page(request: Request, user: Admin) -> Response:
    return page(request, "placeholder.html", title="Admin", active="admin", what="admin")
