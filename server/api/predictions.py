"""Replicate's predictions API: create (by version, model or deployment), get, list, cancel, stream."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from server.api import pagination
from server.api.deps import CreatorDep, StudioDep, UserDep, base_url
from server.db.models import Prediction
from server.jobs.events import wait_for_change
from server.studio import Studio
from server.webhooks import ALL_EVENTS

router = APIRouter(prefix="/v1", tags=["replicate"])

MAX_WAIT_S = 60
PAGE_SIZE = 100


class PredictionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: dict[str, Any] = Field(default_factory=dict)
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    stream: bool | None = None

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("webhook_events_filter")
    @classmethod
    def _known_events(cls, value: list[str] | None) -> list[str] | None:
        for event in value or ():
            if event not in ALL_EVENTS:
                raise ValueError(f"unknown event '{event}'; choose from {', '.join(ALL_EVENTS)}")
        return value


class VersionedPredictionRequest(PredictionRequest):
    version: str = Field(min_length=1)


@router.post("/predictions", status_code=201)
async def create_by_version(body: VersionedPredictionRequest, request: Request, user: CreatorDep, studio: StudioDep):
    spec = studio.service.spec_for_version(body.version)
    return await _create(studio, request, user, spec, body)


@router.post("/models/{owner}/{name}/predictions", status_code=201)
async def create_by_model(
    owner: str, name: str, body: PredictionRequest, request: Request, user: CreatorDep, studio: StudioDep
):
    return await _create(studio, request, user, studio.manifest.resolve(f"{owner}/{name}"), body)


@router.post("/deployments/{owner}/{name}/predictions", status_code=201)
async def create_by_deployment(
    owner: str, name: str, body: PredictionRequest, request: Request, user: CreatorDep, studio: StudioDep
):
    # A deployment here is just a model under its Replicate name (or `<anything>/<model id>`).
    try:
        spec = studio.manifest.resolve(f"{owner}/{name}")
    except LookupError:
        spec = studio.manifest.resolve(name)
    return await _create(studio, request, user, spec, body)


async def _create(studio: Studio, request: Request, user, spec, body: PredictionRequest) -> JSONResponse:
    wait = parse_prefer_wait(request.headers.get("prefer"))
    base = studio.service.base_url_for(base_url(request))
    prediction = await run_in_threadpool(
        studio.service.create,
        user,
        spec,
        body.input,
        base_url=base,
        webhook=body.webhook,
        webhook_events_filter=body.webhook_events_filter,
    )
    if wait:
        prediction = await wait_until_done(studio, user, prediction.id, wait)
    payload = studio.service.to_json(prediction, base)
    if not prediction.done:
        # The clients poll only when the create response says `starting`.
        payload["status"] = "starting"
    return JSONResponse(payload, status_code=201)


def parse_prefer_wait(header: str | None) -> int:
    """`Prefer: wait` waits up to 60 s, `Prefer: wait=N` up to N s; 0 means do not wait."""
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "wait":
            try:
                return max(1, min(MAX_WAIT_S, int(value))) if value else MAX_WAIT_S
            except ValueError:
                raise HTTPException(400, f"Prefer: wait={value} is not a number of seconds") from None
    return 0


async def wait_until_done(studio: Studio, user, prediction_id: str, timeout: float) -> Prediction:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with studio.events.subscribe(prediction_id) as changed:
        while True:
            prediction = await run_in_threadpool(studio.service.get, user, prediction_id)
            remaining = deadline - loop.time()
            if prediction.done or remaining <= 0:
                return prediction
            await wait_for_change(changed, remaining)


@router.get("/predictions")
async def list_predictions(request: Request, user: UserDep, studio: StudioDep, cursor: str | None = None):
    def page() -> list[Prediction]:
        with studio.db.for_user(user.id) as session:
            query = select(Prediction).where(Prediction.user_id == user.id)
            query = pagination.newest_first(query, Prediction.created_at, Prediction.id, cursor, PAGE_SIZE)
            return list(session.scalars(query))

    rows, next_cursor = pagination.split_page(await run_in_threadpool(page), PAGE_SIZE)
    base = studio.service.base_url_for(base_url(request))
    next_url = f"{base}/v1/predictions?cursor={next_cursor}" if next_cursor else None
    return {"previous": None, "next": next_url, "results": [studio.service.to_json(p, base) for p in rows]}


@router.get("/predictions/{prediction_id}")
async def get_prediction(prediction_id: str, request: Request, user: UserDep, studio: StudioDep):
    prediction = await run_in_threadpool(studio.service.get, user, prediction_id)
    if prediction is None:
        raise HTTPException(404, f"prediction '{prediction_id}' not found")
    return studio.service.to_json(prediction, studio.service.base_url_for(base_url(request)))


@router.post("/predictions/{prediction_id}/cancel")
async def cancel_prediction(prediction_id: str, request: Request, user: UserDep, studio: StudioDep):
    prediction = await run_in_threadpool(studio.service.cancel, user, prediction_id)
    if prediction is None:
        raise HTTPException(404, f"prediction '{prediction_id}' not found")
    studio.events.publish(prediction_id)
    return studio.service.to_json(prediction, studio.service.base_url_for(base_url(request)))


@router.get("/predictions/{prediction_id}/stream")
async def stream_prediction(prediction_id: str, request: Request, studio: StudioDep, expires: int = 0, sig: str = ""):
    """Server-sent events: `output`, `logs`, `error`, then `done`. Opened without a token
    (the JS client sends none), so the signed URL from `urls.stream` is the credential."""
    if not studio.service.verify_stream(prediction_id, expires, sig):
        raise HTTPException(403, "stream URL signature is invalid or expired; use urls.stream from the prediction")

    def load() -> Prediction | None:
        with studio.db.system() as session:
            return session.get(Prediction, prediction_id)

    async def events():
        sent_logs, sent_output, event_id = 0, None, 0
        with studio.events.subscribe(prediction_id) as changed:
            while True:
                prediction = await run_in_threadpool(load)
                if prediction is None:
                    return
                frames = []
                if len(prediction.logs) > sent_logs:
                    frames.append(("logs", prediction.logs[sent_logs:]))
                    sent_logs = len(prediction.logs)
                if prediction.output is not None and prediction.output != sent_output:
                    sent_output = prediction.output
                    for item in studio.service.sign_outputs(prediction.output, prediction.base_url):
                        frames.append(("output", item if isinstance(item, str) else json.dumps(item)))
                if prediction.status == "failed":
                    frames.append(("error", json.dumps({"detail": prediction.error or "failed"})))
                if prediction.done:
                    frames.append(("done", json.dumps({"reason": "canceled"} if prediction.status == "canceled" else {})))
                for event, data in frames:
                    event_id += 1
                    lines = "".join(f"data: {line}\n" for line in data.rstrip("\n").split("\n"))
                    yield f"event: {event}\nid: {event_id}\n{lines}\n"
                if prediction.done or await request.is_disconnected():
                    return
                await wait_for_change(changed, 15.0)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
