"""Files: Replicate's /v1/files uploads, and the signed /files/... URLs that serve every output."""

from __future__ import annotations

import hashlib
import json
import mimetypes

from fastapi import APIRouter, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy import select
from starlette.datastructures import UploadFile as StarletteUploadFile

from server.api import pagination
from server.api.deps import StudioDep, UserDep, base_url
from server.db.models import UploadedFile
from server.predictions import iso, new_prediction_id
from server.storage import BadKey, content_type_for
from server.studio import Studio

router = APIRouter(tags=["files"])


def file_json(studio: Studio, row: UploadedFile, base: str) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "content_type": row.content_type,
        "size": row.size,
        "etag": row.sha256,
        "checksums": {"sha256": row.sha256},
        "metadata": row.metadata_,
        "created_at": iso(row.created_at),
        "expires_at": None,
        "urls": {"get": f"{base}/v1/files/{row.id}", "download": studio.store.sign(row.storage_key, base)},
    }


@router.post("/v1/files", status_code=201)
async def upload_file(
    request: Request,
    user: UserDep,
    studio: StudioDep,
    content: UploadFile,
    metadata: UploadFile | str | None = Form(None),
):
    # Python's client sends metadata as a form field, the JS client as a part with a filename.
    if isinstance(metadata, StarletteUploadFile):  # what the form holds; fastapi's UploadFile subclasses it
        metadata = (await metadata.read()).decode("utf-8", "replace")
    try:
        meta = json.loads(metadata) if metadata else {}
        if not isinstance(meta, dict):
            raise ValueError
    except ValueError:
        raise HTTPException(422, "metadata: must be a JSON object") from None
    data = await content.read()
    name = (content.filename or "file").rsplit("/", 1)[-1][:500]
    content_type = content.content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    extension = (mimetypes.guess_extension(content_type) or ".bin").lstrip(".")

    def save() -> UploadedFile:
        key = studio.store.put(data, extension)
        with studio.db.for_user(user.id) as session:
            row = UploadedFile(
                id=new_prediction_id(),
                user_id=user.id,
                name=name,
                content_type=content_type,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                storage_key=key,
                metadata_=meta,
            )
            session.add(row)
            session.commit()
            return row

    row = await run_in_threadpool(save)
    return file_json(studio, row, studio.service.base_url_for(base_url(request)))


@router.get("/v1/files")
def list_files(request: Request, user: UserDep, studio: StudioDep, cursor: str | None = None):
    with studio.db.for_user(user.id) as session:
        query = select(UploadedFile).where(UploadedFile.user_id == user.id)
        rows = list(session.scalars(pagination.newest_first(query, UploadedFile.created_at, UploadedFile.id, cursor, 100)))
    rows, next_cursor = pagination.split_page(rows, 100)
    base = studio.service.base_url_for(base_url(request))
    return {
        "previous": None,
        "next": f"{base}/v1/files?cursor={next_cursor}" if next_cursor else None,
        "results": [file_json(studio, row, base) for row in rows],
    }


def _own_file(studio: Studio, user, file_id: str) -> UploadedFile:
    with studio.db.for_user(user.id) as session:
        row = session.scalar(select(UploadedFile).where(UploadedFile.id == file_id, UploadedFile.user_id == user.id))
    if row is None:
        raise HTTPException(404, f"file '{file_id}' not found")
    return row


@router.get("/v1/files/{file_id}")
def get_file(file_id: str, request: Request, user: UserDep, studio: StudioDep):
    return file_json(studio, _own_file(studio, user, file_id), studio.service.base_url_for(base_url(request)))


@router.delete("/v1/files/{file_id}", status_code=204)
def delete_file(file_id: str, user: UserDep, studio: StudioDep):
    row = _own_file(studio, user, file_id)
    with studio.db.for_user(user.id) as session:
        session.delete(session.merge(row))
        session.commit()


@router.get("/files/{key:path}")
def serve_file(key: str, studio: StudioDep, expires: int = 0, sig: str = ""):
    """Outputs and uploads, by signed URL: no token needed, so browsers and the JS client can fetch."""
    try:
        path = studio.store.path(key)
    except BadKey:
        raise HTTPException(404, "file not found") from None
    if not studio.store.verify(key, expires, sig):
        raise HTTPException(403, "file URL signature is invalid or expired")
    if not path.is_file():
        raise HTTPException(404, "file not found")
    # Content-addressed: the bytes behind a key never change.
    return FileResponse(path, media_type=content_type_for(key), headers={"Cache-Control": "private, max-age=86400, immutable"})
