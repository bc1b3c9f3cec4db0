"""API tokens (stored hashed) and optional Supabase-style HS256 JWTs."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid

import jwt
from cachetools import TTLCache
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from server.db.models import ApiToken, User
from server.db.session import Database

TOKEN_PREFIX = "cs_"


class AuthError(Exception):
    pass


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def create_user(db: Database, name: str, user_id: uuid.UUID | None = None) -> User:
    with db.system() as session:
        user = User(id=user_id or uuid.uuid4(), name=name, webhook_secret=new_webhook_secret())
        session.add(user)
        session.commit()
        return user


def issue_token(db: Database, user_id: uuid.UUID, name: str = "default") -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.system() as session:
        session.add(ApiToken(user_id=user_id, token_hash=hash_token(token), name=name))
        session.commit()
    return token


def revoke_tokens(db: Database, user_id: uuid.UUID) -> int:
    """Delete every API token of the user (a leaked key); returns how many there were."""
    with db.system() as session:
        revoked = session.execute(delete(ApiToken).where(ApiToken.user_id == user_id)).rowcount
        session.commit()
    return revoked


def parse_authorization(header: str | None) -> str:
    """`Bearer <token>` or `Token <token>` (Replicate accepts both)."""
    if not header:
        raise AuthError("missing Authorization header: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() not in ("bearer", "token") or not token.strip():
        raise AuthError("Authorization header must be 'Bearer <token>' or 'Token <token>'")
    return token.strip()


class TokenCache:
    """Users of recently used API tokens, keyed by the token's hash, for `ttl_s` seconds.

    Clients poll every 0.5 s, and the lookup was a database round trip on every request:
    remembering it serves 1.3-1.5x the requests per second on SQLite and on PostgreSQL
    (benchmarks/prediction_throughput.py with STUDIO_TOKEN_CACHE_S=0 and 10, side by side).
    The price: `studio users revoke` takes effect on a running server within `ttl_s`
    (STUDIO_TOKEN_CACHE_S; 0 turns the cache off).
    Unknown tokens are not remembered, so a new token works at once. Event loop thread only.
    """

    def __init__(self, ttl_s: float, max_tokens: int = 10_000):
        self._users: TTLCache[str, User] | None = TTLCache(maxsize=max_tokens, ttl=ttl_s) if ttl_s > 0 else None

    def get(self, token: str) -> User | None:
        return self._users.get(hash_token(token)) if self._users is not None else None

    def put(self, token: str, user: User) -> None:
        if self._users is not None:
            self._users[hash_token(token)] = user


def is_jwt(token: str) -> bool:
    return token.count(".") == 2


def authenticate(db: Database, token: str, jwt_secret: str | None) -> User:
    if is_jwt(token) and jwt_secret:
        return _user_from_jwt(db, token, jwt_secret)
    with db.system() as session:
        user = session.scalar(
            select(User).join(ApiToken, ApiToken.user_id == User.id).where(ApiToken.token_hash == hash_token(token))
        )
    if user is None:
        raise AuthError("invalid API token")
    return user


def _user_from_jwt(db: Database, token: str, secret: str) -> User:
    try:
        # Supabase signs with HS256 and sets aud="authenticated"; the audience is not ours to check.
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"verify_aud": False, "require": ["sub"]})
        user_id = uuid.UUID(str(claims["sub"]))
    except (jwt.PyJWTError, ValueError) as error:
        raise AuthError(f"invalid token: {error}") from error
    with db.system() as session:
        user = session.get(User, user_id)
    if user is not None:
        return user
    name = str(claims.get("email") or f"supabase-{user_id}")
    try:  # first sight: create the user
        return create_user(db, name, user_id)
    except IntegrityError:  # a concurrent request created them, or the name is taken
        with db.system() as session:
            user = session.get(User, user_id)
        return user or create_user(db, f"supabase-{user_id}", user_id)
