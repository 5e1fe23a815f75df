"""The naive floor: FastAPI + SQLModel written the way a tutorial writes it.

One table, ``def`` routes, a Session per request, ``commit()`` then ``refresh()`` after the insert
and ``Session.get`` for the read. It shows what one row in and one row out cost with the plain ORM
path on this machine, so Claimdesk's POST and GET of a claim (which also authenticate, audit and
write an outbox row) are read against it (bench/claims_api.py).

Configured by environment: NAIVE_DATABASE_URL (a SQLite file in WAL mode with synchronous=NORMAL,
as in the performance brief, or a PostgreSQL URL).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import event
from sqlmodel import Field, Session, SQLModel, create_engine

URL = os.environ.get("NAIVE_DATABASE_URL", "sqlite:///naive.db")


class Item(SQLModel, table=True):
    __tablename__ = "naive_items"

    id: int | None = Field(default=None, primary_key=True)
    text: str
    created_at: datetime


class ItemIn(BaseModel):
    text: str


if URL.startswith("sqlite"):
    engine = create_engine(URL, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()
else:
    engine = create_engine(URL, pool_size=20, max_overflow=30)

SQLModel.metadata.create_all(engine)
app = FastAPI()


@app.post("/items", status_code=201)
def create_item(body: ItemIn) -> Item:
    with Session(engine) as session:
        item = Item(text=body.text, created_at=datetime.now(UTC))
        session.add(item)
        session.commit()
        session.refresh(item)
        return item


@app.get("/items/{item_id}")
def read_item(item_id: int) -> Item:
    with Session(engine) as session:
        item = session.get(Item, item_id)
        if item is None:
            raise HTTPException(404)
        return item
