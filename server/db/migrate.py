"""Run the Alembic migrations programmatically (`studio db upgrade`, and `studio serve` on start)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from server.config import REPO_ROOT
from server.db.session import ensure_sqlite_folder


def alembic_config(url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    ensure_sqlite_folder(url)
    command.upgrade(alembic_config(url), revision)
