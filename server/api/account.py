"""The caller's account and webhook signing secret (Replicate's /v1/account and /v1/webhooks)."""

from __future__ import annotations

from fastapi import APIRouter

from server.api.deps import UserDep

router = APIRouter(prefix="/v1", tags=["account"])


@router.get("/account")
def account(user: UserDep):
    return {"type": "user", "username": user.name, "name": user.name, "github_url": None}


@router.get("/webhooks/default/secret")
def webhook_secret(user: UserDep):
    return {"key": user.webhook_secret}
