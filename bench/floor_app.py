"""The floor: a bare FastAPI app with constant answers, served by uvicorn like Claimdesk is.

Timing it in the same run as Claimdesk shows what the framework and this machine cost before any
of Claimdesk's own work (see bench/floor.py).
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/def")
def constant_def() -> dict[str, str]:
    """A plain ``def`` route: FastAPI runs it in the threadpool, like Claimdesk's database routes."""
    return {"status": "ok"}


@app.get("/async")
async def constant_async() -> dict[str, str]:
    return {"status": "ok"}
