"""Engine and sessions: one unscoped session for the system, one bound to a user for requests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

# The role that user-bound sessions switch to on PostgreSQL. It is not a superuser and does not
# own the tables, so row-level security applies to it (see the initial migration).
USER_ROLE = "studio_user"


class Database:
    def __init__(self, url: str):
        self.url = url
        self.is_postgres = url.startswith("postgresql")
        if self.is_postgres:
            self.engine: Engine = create_engine(url, pool_size=10, max_overflow=30, pool_pre_ping=True)
        else:
            ensure_sqlite_folder(url)
            self.engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def system(self) -> Iterator[Session]:
        """A session with no user scope: the worker, recovery, and the CLI."""
        with self._sessions() as session:
            yield session

    @contextmanager
    def for_user(self, user_id: uuid.UUID) -> Iterator[Session]:
        """A session whose every transaction runs as `user_id`.

        Queries still filter on user_id themselves; on PostgreSQL, row-level security makes a
        forgotten filter return nothing instead of another user's rows.
        """
        with self._sessions() as session:
            if self.is_postgres:
                event.listen(session, "after_begin", _bind_user(user_id))
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _bind_user(user_id: uuid.UUID):
    def after_begin(_session, _transaction, connection) -> None:
        # One round trip: set_config('role', ..., true) is SET LOCAL ROLE.
        connection.execute(
            text(f"SELECT set_config('role', '{USER_ROLE}', true), set_config('app.user_id', :uid, true)"),
            {"uid": str(user_id)},
        )

    return after_begin


def ensure_sqlite_folder(url: str) -> None:
    """SQLite creates the file but not its folder (a fresh ./data)."""
    database = make_url(url).database
    if url.startswith("sqlite") and database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while the worker writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
