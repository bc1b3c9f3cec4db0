"""Shared fixtures: both databases, the tiny models, and live servers on loopback.

Every test that takes `server` runs twice: on SQLite and on the local PostgreSQL (a fresh
database each time). Set STUDIO_TEST_POSTGRES_URL to point at another PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from server.config import REPO_ROOT, Settings
from server.testing import Caller, LiveServer, free_port, live_server, throwaway_postgres_database  # noqa: F401 (used by tests)

POSTGRES_ADMIN_URL = os.environ.get("STUDIO_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
IMAGE_MODELS = ("flux-schnell", "flux-dev", "flux-2-klein", "sdxl", "sd15", "dreamshaper")


# -- models -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """A models folder holding only tiny models, so real weights on a dev box never slow tests.

    Reuses the ones `make install` built in ./models/tiny; builds any that are missing."""
    from server.pipelines.tiny_images import build_tiny_image_model

    built = REPO_ROOT / "models" / "tiny"
    folder = tmp_path_factory.mktemp("models")
    (folder / "tiny").mkdir()
    for model_id in IMAGE_MODELS:
        if (built / model_id / "TINY").exists():
            (folder / "tiny" / model_id).symlink_to(built / model_id, target_is_directory=True)
        else:
            build_tiny_image_model(model_id, folder / "tiny" / model_id)
    return folder


# -- databases --------------------------------------------------------------------------------------


def fresh_postgres_database():
    return throwaway_postgres_database(POSTGRES_ADMIN_URL, "studio_test")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'studio.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture
def settings(tmp_path, database_url, tiny_models) -> Settings:
    return make_settings(tmp_path, database_url, tiny_models)


def make_settings(tmp_path: Path, database_url: str, models_dir: Path, **overrides) -> Settings:
    values = dict(
        data_dir=tmp_path / "data",
        database_url=database_url,
        models_dir=models_dir,
        secret_key="test-secret",
        cors_origins=["https://editor.example"],
        openai_api_key=None,
        job_timeout_s=120,
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


# -- live servers -----------------------------------------------------------------------------------


# `serve(settings)`: the real app on a free loopback port (server/testing.py).
serve = live_server


@pytest.fixture
def server(settings):
    with serve(settings) as live:
        yield live


@pytest.fixture
def alice(server) -> Caller:
    return server.new_user("alice")


@pytest.fixture
def bob(server) -> Caller:
    return server.new_user("bob")


@contextmanager
def studio_process(settings: Settings, port: int):
    """`studio serve` as a separate process, for tests that kill it."""
    env = {
        **os.environ,
        "STUDIO_DATA_DIR": str(settings.data_dir),
        "STUDIO_DATABASE_URL": settings.db_url,
        "STUDIO_MODELS_DIR": str(settings.models_dir),
        "STUDIO_SECRET_KEY": settings.secret_key,
    }
    # Its output goes to a file: an unread pipe fills up with access logs and blocks the server.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log = open(settings.data_dir / f"server-{port}.log", "a")
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}", process, log_path=Path(log.name))
        yield process
    finally:
        log.close()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_until_up(url: str, process: subprocess.Popen | None = None, timeout: float = 60, log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text() if log_path else process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def wait_for(predicate, timeout: float = 60, interval: float = 0.05):
    """Poll until predicate() is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
