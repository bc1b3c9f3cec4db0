"""Keyset pagination, newest first: ORDER BY created_at DESC, id DESC, resumed after a cursor.

Unlike OFFSET, a page costs the same at row 100,000 as at row 0, and rows created while paging
do not shift later pages.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from fastapi import HTTPException
from sqlalchemy import Select, Uuid, tuple_


def newest_first(query: Select, created_at, row_id, cursor: str | None, limit: int) -> Select:
    after = decode(cursor)
    if after is not None:
        created, last_id = after
        if isinstance(row_id.type, Uuid):
            # The cursor carries the id as text; a Uuid column binds only uuid.UUID (on SQLite a
            # str fails with "'str' object has no attribute 'hex'").
            try:
                last_id = uuid.UUID(last_id)
            except ValueError:
                raise HTTPException(400, "cursor: not a cursor this server made") from None
        # A row-value comparison, not `created_at < c OR (created_at = c AND id < i)`: both SQLite
        # and PostgreSQL turn it into a range on the (user_id, created_at, id) index, whereas the
        # OR form scanned every newer row first, so a page's cost grew with its depth.
        query = query.where(tuple_(created_at, row_id) < (created, last_id))
    return query.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)


def split_page(rows: list, limit: int) -> tuple[list, str | None]:
    """The page, and the cursor of the next one (None on the last page)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode(rows[-1].created_at, rows[-1].id)


def encode(created_at: datetime, row_id) -> str:
    raw = f"{created_at.isoformat()}|{row_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str | None):
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, row_id = raw.split("|", 1)
        return datetime.fromisoformat(created), row_id
    except ValueError:
        raise HTTPException(400, "cursor: not a cursor this server made") from None
