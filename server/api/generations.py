"""History and gallery: the caller's own generations, newest first."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy import func, select

from server.api import pagination
from server.api.deps import StudioDep, UserDep, base_url
from server.db.models import CreativeGeneration
from server.predictions import iso
from server.studio import Studio

router = APIRouter(prefix="/generations", tags=["history"])


def generation_json(studio: Studio, row: CreativeGeneration, base: str) -> dict:
    sign = lambda key: studio.store.sign(key, base) if key else None  # noqa: E731
    return {
        "id": str(row.id),
        "type": row.type,
        "prompt": row.prompt,
        "model": row.model,
        "settings": row.settings,
        "result_url": sign(row.result_url),
        "thumbnail_url": sign(row.thumbnail_url),
        "metadata": row.metadata_,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


@router.get("")
def list_generations(
    request: Request,
    user: UserDep,
    studio: StudioDep,
    type: Literal["image", "audio", "music", "video"] | None = None,
    limit: int = Query(50, ge=1, le=200),
    cursor: str | None = None,
):
    with studio.db.for_user(user.id) as session:
        query = select(CreativeGeneration).where(CreativeGeneration.user_id == user.id)
        if type:
            query = query.where(CreativeGeneration.type == type)
        query = pagination.newest_first(query, CreativeGeneration.created_at, CreativeGeneration.id, cursor, limit)
        rows = list(session.scalars(query))
    rows, next_cursor = pagination.split_page(rows, limit)
    base = studio.service.base_url_for(base_url(request))
    return {"items": [generation_json(studio, row, base) for row in rows], "next_cursor": next_cursor}


def _own(studio: Studio, user, generation_id: str) -> CreativeGeneration:
    try:
        key = uuid.UUID(generation_id)
    except ValueError:
        raise HTTPException(404, f"generation '{generation_id}' not found") from None
    with studio.db.for_user(user.id) as session:
        row = session.scalar(
            select(CreativeGeneration).where(CreativeGeneration.id == key, CreativeGeneration.user_id == user.id)
        )
    if row is None:
        raise HTTPException(404, f"generation '{generation_id}' not found")
    return row


@router.get("/{generation_id}")
def get_generation(generation_id: str, request: Request, user: UserDep, studio: StudioDep):
    return generation_json(studio, _own(studio, user, generation_id), studio.service.base_url_for(base_url(request)))


@router.delete("/{generation_id}", status_code=204)
def delete_generation(generation_id: str, user: UserDep, studio: StudioDep):
    row = _own(studio, user, generation_id)
    with studio.db.for_user(user.id) as session:
        session.delete(session.merge(row))
        session.commit()
    # Content-addressed files may be shared by identical outputs: delete only unreferenced ones.
    with studio.db.system() as session:
        for key in filter(None, (row.result_url, row.thumbnail_url)):
            still_used = session.scalar(
                select(func.count())
                .select_from(CreativeGeneration)
                .where((CreativeGeneration.result_url == key) | (CreativeGeneration.thumbnail_url == key))
            )
            if not still_used:
                studio.store.delete(key)
    return Response(status_code=204)
