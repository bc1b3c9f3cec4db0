"""`studio`: serve, migrate, and manage users from the command line."""

from __future__ import annotations

import argparse
import sys

from server.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="studio", description="Creative Studio Server")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server (migrates the database first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    _settings_flags(serve)

    db = commands.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade"])
    _settings_flags(db)

    users = commands.add_parser(
        "users", help="users and their API tokens: create a user, issue another token, revoke all tokens"
    )
    users.add_argument("action", choices=["create", "token", "revoke"])
    users.add_argument("name")
    _settings_flags(users)

    args = parser.parse_args(argv)
    overrides = {key: value for key, value in vars(args).items() if key in Settings.model_fields and value is not None}
    settings = Settings(**overrides)
    return {"serve": _serve, "db": _db, "users": _users}[args.command](args, settings)


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    """CLI flags override the environment and .env."""
    parser.add_argument("--data-dir", dest="data_dir")
    parser.add_argument("--database-url", dest="database_url")
    parser.add_argument("--models-dir", dest="models_dir")
    parser.add_argument("--public-url", dest="public_url")
    parser.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"])


def _db(args, settings: Settings) -> int:
    from server.db import migrate

    migrate.upgrade(settings.db_url)
    print(f"database is up to date: {_redact(settings.db_url)}")
    return 0


def _users(args, settings: Settings) -> int:
    from sqlalchemy import select

    from server.auth import create_user, issue_token, revoke_tokens
    from server.db import migrate
    from server.db.models import User
    from server.db.session import Database

    migrate.upgrade(settings.db_url)
    db = Database(settings.db_url)
    if args.action == "create":
        user = create_user(db, args.name)
    else:
        with db.system() as session:
            user = session.scalar(select(User).where(User.name == args.name))
        if user is None:
            print(f"no user named '{args.name}'", file=sys.stderr)
            return 1
    if args.action == "revoke":
        revoked = revoke_tokens(db, user.id)
        print(f"revoked {revoked} token(s) of {user.name}; `studio users token {user.name}` issues a new one")
        return 0
    print(f"user {user.name} ({user.id})", file=sys.stderr)
    print(issue_token(db, user.id))  # the token is the last line, for scripts
    return 0


def _serve(args, settings: Settings) -> int:
    import uvicorn
    from sqlalchemy import func, select

    from server.app import create_app
    from server.auth import create_user, issue_token
    from server.db import migrate
    from server.db.models import User
    from server.db.session import Database

    migrate.upgrade(settings.db_url)
    db = Database(settings.db_url)
    with db.system() as session:
        empty = not session.scalar(select(func.count()).select_from(User))
    url = settings.public_url or f"http://{args.host}:{args.port}"
    print(f"Creative Studio Server on {url}  (API docs: {url}/docs)", flush=True)
    if empty:
        user = create_user(db, "local")
        print(f"created user 'local'; its API token: {issue_token(db, user.id)}", flush=True)
    db.dispose()
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
