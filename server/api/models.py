"""Models and versions, Replicate style, plus the studio's own view of what is installed and loaded."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import func, select

from server.api.deps import StudioDep, UserDep, base_url
from server.db.models import Prediction
from server.pipelines.manifest import ModelSpec
from server.studio import Studio

router = APIRouter(tags=["models"])

# Version objects carry a Cog version; the clients only check that it is present.
COG_VERSION = "0.9.0"
VERSION_CREATED_AT = "2026-11-25T00:00:00.000000Z"


def version_json(studio: Studio, spec: ModelSpec) -> dict:
    input_schema = studio.service.input_schema(spec)
    defs = input_schema.pop("$defs", {})
    return {
        "id": studio.service.version_id(spec),
        "created_at": VERSION_CREATED_AT,
        "cog_version": COG_VERSION,
        "openapi_schema": {
            "openapi": "3.0.2",
            "info": {"title": spec.name, "version": "0.1.0"},
            "paths": {},
            "components": {
                "schemas": {
                    **defs,
                    "Input": {**input_schema, "title": "Input"},
                    "Output": {"title": "Output", "type": "array", "items": {"type": "string", "format": "uri"}},
                }
            },
        },
    }


def model_json(studio: Studio, spec: ModelSpec, base: str, run_count: int = 0) -> dict:
    owner, name = spec.owner_name.split("/", 1)
    return {
        "url": f"{base}/v1/models/{owner}/{name}",
        "owner": owner,
        "name": name,
        "description": spec.description or spec.name,
        "visibility": "public",
        "github_url": None,
        "paper_url": None,
        "license_url": None,
        "run_count": run_count,
        "cover_image_url": None,
        "default_example": None,
        "latest_version": version_json(studio, spec),
    }


@router.get("/v1/models")
def list_models(request: Request, user: UserDep, studio: StudioDep):
    base = studio.service.base_url_for(base_url(request))
    return {"previous": None, "next": None, "results": [model_json(studio, spec, base) for spec in studio.manifest]}


@router.get("/v1/models/{owner}/{name}")
def get_model(owner: str, name: str, request: Request, user: UserDep, studio: StudioDep):
    spec = studio.manifest.resolve(f"{owner}/{name}")
    with studio.db.for_user(user.id) as session:
        runs = session.scalar(
            select(func.count()).select_from(Prediction).where(Prediction.user_id == user.id, Prediction.model == spec.id)
        )
    return model_json(studio, spec, studio.service.base_url_for(base_url(request)), runs)


@router.get("/v1/models/{owner}/{name}/versions")
def list_versions(owner: str, name: str, user: UserDep, studio: StudioDep):
    spec = studio.manifest.resolve(f"{owner}/{name}")
    return {"previous": None, "next": None, "results": [version_json(studio, spec)]}


@router.get("/v1/models/{owner}/{name}/versions/{version_id}")
def get_version(owner: str, name: str, version_id: str, user: UserDep, studio: StudioDep):
    spec = studio.manifest.resolve(f"{owner}/{name}")
    version = version_json(studio, spec)
    if version["id"] != version_id:
        raise HTTPException(404, f"version '{version_id}' of {spec.owner_name} not found; the current one is {version['id']}")
    return version


@router.get("/models")
def model_status(user: UserDep, studio: StudioDep):
    """Which models are installed (real or tiny), loaded, and how much memory they hold."""
    manager = studio.manager
    budget = studio.settings.model_memory_gb
    return {
        "models": manager.status(),
        "memory": {
            "used_bytes": manager.used_bytes(),
            "budget_bytes": int(budget * 2**30) if budget is not None else None,
            "device": manager.device_name,
        },
    }
