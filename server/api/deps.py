"""Route dependencies: the studio, the caller, and per-user rate limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from server.auth import AuthError, authenticate, is_jwt, parse_authorization
from server.db.models import User
from server.studio import Studio


def get_studio(request: Request) -> Studio:
    return request.app.state.studio


StudioDep = Annotated[Studio, Depends(get_studio)]


async def current_user(request: Request, studio: StudioDep) -> User:
    try:
        token = parse_authorization(request.headers.get("authorization"))
        user = studio.tokens.get(token)
        if user is None:
            user = await run_in_threadpool(authenticate, studio.db, token, studio.settings.jwt_secret)
            if not is_jwt(token):  # a JWT carries its own expiry: check it every time
                studio.tokens.put(token, user)
    except AuthError as error:
        raise HTTPException(401, str(error), headers={"WWW-Authenticate": "Bearer"}) from None
    _limit(studio.request_limiter, user, "requests")
    return user


UserDep = Annotated[User, Depends(current_user)]


async def creating_user(user: UserDep, studio: StudioDep) -> User:
    """The caller of an endpoint that creates a job: a stricter per-minute limit applies."""
    _limit(studio.create_limiter, user, "predictions created")
    return user


CreatorDep = Annotated[User, Depends(creating_user)]


def _limit(limiter, user: User, what: str) -> None:
    retry_after = limiter.take(str(user.id))
    if retry_after:
        raise HTTPException(
            429,
            f"too many {what}: the limit is {limiter.capacity} per minute; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
