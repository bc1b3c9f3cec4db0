"""The editor's studio endpoints. They wait for the result, like the serverless functions they replace,
and answer at the same paths under /.netlify/functions/ so the editor changes only its base URL."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from server.api.deps import CreatorDep, StudioDep, base_url
from server.api.generations import generation_json
from server.api.predictions import wait_until_done
from server.db.models import CreativeGeneration

router = APIRouter(tags=["studio"])

DEFAULT_IMAGE_MODEL = "flux-schnell"


async def json_object_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object, whatever its Content-Type: the serverless functions these routes
    replace run `JSON.parse(event.body)`, so callers (and `curl -d`) may send JSON as form data."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(422, f"body: not valid JSON ({error})") from None
    if not isinstance(body, dict):
        raise HTTPException(422, "body: must be a JSON object such as {\"prompt\": \"a red fox\"}")
    return body


JsonBody = Annotated[dict[str, Any], Depends(json_object_body)]
IMAGE_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "example": {
                    "prompt": "a red fox, pixel art",
                    "model": "flux-schnell",
                    "style": "pixel-art",
                    "dimensions": "512x512",
                },
            }
        },
    }
}


async def creative_image(
    request: Request,
    user: CreatorDep,
    studio: StudioDep,
    body: JsonBody,
):
    """`{prompt, model, style, dimensions, steps, guidance}` (plus seed, negative_prompt, num_outputs)
    -> `{url, thumbnail, metadata}`."""
    fields = dict(body)
    model_name = fields.pop("model", None) or DEFAULT_IMAGE_MODEL
    if not isinstance(model_name, str):
        raise HTTPException(422, "model: must be a model name")
    spec = studio.manifest.resolve(model_name)
    if spec.modality != "image":
        raise HTTPException(422, f"model: '{model_name}' is a {spec.modality} model, not an image model")
    base = studio.service.base_url_for(base_url(request))
    prediction = await run_in_threadpool(studio.service.create, user, spec, fields, base_url=base, source="web")
    prediction = await wait_until_done(studio, user, prediction.id, studio.settings.job_timeout_s + 30)
    if prediction.status == "canceled":
        raise HTTPException(409, "generation was canceled")
    if prediction.status == "failed":
        raise HTTPException(500, f"generation failed: {prediction.error}")
    if not prediction.done:
        raise HTTPException(504, f"generation did not finish in time; poll /v1/predictions/{prediction.id}")

    def rows() -> list[CreativeGeneration]:
        with studio.db.for_user(user.id) as session:
            query = select(CreativeGeneration).where(
                CreativeGeneration.user_id == user.id, CreativeGeneration.prediction_id == prediction.id
            )
            return list(session.scalars(query.order_by(CreativeGeneration.created_at, CreativeGeneration.id)))

    generations = [generation_json(studio, row, base) for row in await run_in_threadpool(rows)]
    first = generations[0]
    return {
        "id": first["id"],
        "url": first["result_url"],
        "thumbnail": first["thumbnail_url"],
        "metadata": {**first["metadata"], **first["settings"], "prompt": first["prompt"], "model": spec.id},
        "images": [{"id": g["id"], "url": g["result_url"], "thumbnail": g["thumbnail_url"]} for g in generations],
        "prediction_id": prediction.id,
    }


for path in ("/creative-image", "/.netlify/functions/creative-image"):
    router.add_api_route(
        path, creative_image, methods=["POST"], name=f"creative_image:{path}", openapi_extra=IMAGE_BODY_SCHEMA
    )
