"""Real servers on loopback for tests, fakes and benchmarks: an app under uvicorn in a thread."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn

from server.auth import create_user, issue_token
from server.config import Settings
from server.db.session import Database


@contextmanager
def throwaway_postgres_database(admin_url: str, prefix: str = "studio_test") -> Iterator[str]:
    """A fresh, empty PostgreSQL database (SQLAlchemy URL), dropped afterwards.

    `admin_url` is a libpq URL of a database whose role may CREATE and DROP databases.
    """
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_app(app, timeout: float = 60, **uvicorn_options) -> Iterator[str]:
    """Run an ASGI app (lifespan included) on a free loopback port; yield its base URL.

    `uvicorn_options` go to uvicorn.Config: `ssl_certfile=` and `ssl_keyfile=` serve HTTPS."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **uvicorn_options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("loopback server did not start")
        time.sleep(0.02)
    try:
        yield f"{'https' if config.is_ssl else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


@dataclass
class Caller:
    """One user of a live server: their token, and clients that send it."""

    url: str
    user_id: uuid.UUID
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=120)

    def replicate(self):
        import replicate

        return replicate.Client(api_token=self.token, base_url=self.url, timeout=120)


@dataclass
class LiveServer:
    url: str
    settings: Settings
    app: object

    @property
    def studio(self):
        return self.app.state.studio

    def new_user(self, name: str | None = None) -> Caller:
        db = Database(self.settings.db_url)
        try:
            user = create_user(db, name or f"user-{uuid.uuid4().hex[:8]}")
            token = issue_token(db, user.id)
        finally:
            db.dispose()
        return Caller(self.url, user.id, token)


@contextmanager
def live_server(settings: Settings, **uvicorn_options) -> Iterator[LiveServer]:
    """The whole studio (migrations, worker, routes) on loopback."""
    from server.app import create_app

    app = create_app(settings)
    with serve_app(app, **uvicorn_options) as url:
        yield LiveServer(url, settings, app)
