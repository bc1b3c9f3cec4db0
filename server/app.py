"""The FastAPI application: routes, CORS, body limits, and the studio's start and stop."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from server import __version__
from server.api import account, errors, files, generations, models, predictions, studio as studio_routes
from server.api.errors import BodyTooLarge
from server.config import Settings
from server.db import migrate
from server.studio import Studio


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        migrate.upgrade(settings.db_url)
        studio = Studio(settings)
        app.state.studio = studio
        studio.start()
        try:
            yield
        finally:
            studio.stop()

    app = FastAPI(title="Creative Studio Server", version=__version__, lifespan=lifespan)
    errors.install(app)
    for module in (predictions, models, files, account, generations, studio_routes):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"])
    def healthz():
        return {"status": "ok", "version": __version__}

    app.add_middleware(BodyLimit, json_limit=settings.max_body_bytes, upload_limit=settings.max_upload_bytes)
    # Outermost, so that every answer (429s and 413s included) carries CORS headers.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["Retry-After"],
        max_age=600,
    )
    return app


class BodyLimit:
    """Refuses bodies over the limit, whether they announce their length or stream it (chunked)."""

    def __init__(self, app, json_limit: int, upload_limit: int):
        self.app = app
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_limit if scope["path"] == "/v1/files" else self.json_limit
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = errors.problem(413, BodyTooLarge(limit).detail)
            return await response(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)
