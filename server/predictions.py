"""Predictions: accept, persist, queue, cancel, and show them in Replicate's JSON.

The studio endpoints and the Replicate-compatible API both go through here, so a job made from
the editor and one made by `replicate.run` are the same thing in the same table.
"""

from __future__ import annotations

import base64
import random
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError
from sqlalchemy import func, select, update

from server.config import Settings
from server.db.models import Prediction, User, utcnow
from server.db.session import Database
from server.jobs.queue import Job, JobQueue
from server.pipelines.image_input import FieldError
from server.pipelines.manager import ModelManager
from server.pipelines.manifest import Manifest, ModelSpec
from server.storage import OutputStore
from server.webhooks import ALL_EVENTS

FILE_PREFIX = "file:"  # outputs that are stored files; signed into URLs when shown


class InputError(Exception):
    """Bad input: HTTP 422 naming the field."""

    def __init__(self, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.errors = errors or []


class NotInstalled(Exception):
    """The model exists but is not installed here and has no fallback."""


class TooManyJobs(Exception):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


def new_prediction_id() -> str:
    """Replicate-style: 26 lowercase base32 characters."""
    return base64.b32encode(secrets.token_bytes(16)).decode().lower().rstrip("=")[:26]


@dataclass
class Route:
    requested: ModelSpec
    runs_on: ModelSpec
    fallback: bool


class PredictionService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        manifest: Manifest,
        manager: ModelManager,
        queue: JobQueue,
        store: OutputStore,
    ):
        self.settings = settings
        self.db = db
        self.manifest = manifest
        self.manager = manager
        self.queue = queue
        self.store = store
        self._version_ids: dict[str, str] = {}

    # -- models and versions --------------------------------------------------------------------

    def input_schema(self, spec: ModelSpec) -> dict[str, Any]:
        return self.manager.provider_class(spec).Input.model_json_schema(mode="validation")

    def version_id(self, spec: ModelSpec) -> str:
        # Building the JSON schema costs about a millisecond: compute each version once.
        if spec.id not in self._version_ids:
            self._version_ids[spec.id] = spec.version_id(self.input_schema(spec))
        return self._version_ids[spec.id]

    def spec_for_version(self, version: str) -> ModelSpec:
        """`version` may be a version id, `owner/name`, or `owner/name:version`."""
        for spec in self.manifest:
            if self.version_id(spec) == version:
                return spec
        return self.manifest.resolve(version)

    def route(self, spec: ModelSpec) -> Route:
        if self.manager.installed(spec) is not None:
            return Route(spec, spec, False)
        fallback_id = self.settings.fallbacks.get(spec.id)
        if fallback_id:
            fallback = self.manifest.resolve(fallback_id)
            if self.manager.installed(fallback) is not None:
                return Route(spec, fallback, True)
        raise NotInstalled(self.manager.install_hint(spec))

    # -- create -----------------------------------------------------------------------------------

    def create(
        self,
        user: User,
        spec: ModelSpec,
        raw_input: dict[str, Any],
        *,
        base_url: str,
        webhook: str | None = None,
        webhook_events_filter: list[str] | None = None,
        source: str = "api",
    ) -> Prediction:
        if not isinstance(raw_input, dict):
            raise InputError("input: must be an object", [{"loc": ["input"], "msg": "must be an object"}])
        # Check the input against the asked model first: a bad request is reported as such even
        # when the model is not installed; a hosted fallback then checks it against its own limits.
        validated = validate_input(self.manager.provider_class(spec), spec, raw_input)
        route = self.route(spec)
        provider_class = self.manager.provider_class(route.runs_on)
        if route.fallback:
            validated = validate_input(provider_class, route.runs_on, raw_input)
        stored_input = dict(raw_input)
        if "seed" in provider_class.Input.model_fields and validated.seed is None:
            # Pick the seed now, so a re-run after a restart makes the same image and users can reuse it.
            validated.seed = random.randrange(2**32)
            stored_input["seed"] = validated.seed

        with self.db.for_user(user.id) as session:
            unfinished = session.scalar(
                select(func.count())
                .select_from(Prediction)
                .where(Prediction.user_id == user.id, Prediction.status.in_(("starting", "processing")))
            )
            if unfinished >= self.settings.max_queued_jobs_per_user:
                raise TooManyJobs(
                    f"you have {unfinished} predictions queued or running; "
                    f"the limit is {self.settings.max_queued_jobs_per_user}",
                    retry_after=5,
                )
            prediction = Prediction(
                id=new_prediction_id(),
                user_id=user.id,
                model=spec.id,
                runs_on=route.runs_on.id,
                version=self.version_id(spec),
                input=stored_input,
                status="starting",
                logs="",
                progress=0.0,
                metrics={"fallback_model": route.runs_on.id} if route.fallback else {},
                source=source,
                webhook=webhook,
                webhook_events_filter=webhook_events_filter,
                attempts=0,
                base_url=base_url,
            )
            session.add(prediction)
            session.commit()
        self.queue.submit(self.job_for(prediction, route.runs_on, validated))
        return prediction

    def job_for(self, prediction: Prediction, runs_on: ModelSpec | None = None, validated=None) -> Job:
        runs_on = runs_on or self.manifest.resolve(prediction.runs_on)
        provider_class = self.manager.provider_class(runs_on)
        if validated is None:
            validated = validate_input(provider_class, runs_on, prediction.input)
        return Job(
            prediction_id=prediction.id,
            model_id=runs_on.id,
            lane="hosted" if provider_class.hosted else "device",
            batch_key=provider_class.batch_key(runs_on, validated),
        )

    # -- read and cancel ----------------------------------------------------------------------------

    def get(self, user: User, prediction_id: str) -> Prediction | None:
        with self.db.for_user(user.id) as session:
            return session.scalar(
                select(Prediction).where(Prediction.id == prediction_id, Prediction.user_id == user.id)
            )

    def cancel(self, user: User, prediction_id: str) -> Prediction | None:
        prediction = self.get(user, prediction_id)
        if prediction is None or prediction.done:
            return prediction
        where = self.queue.cancel(prediction_id)
        if where != "running":
            # Queued (or not yet re-queued after a restart): it never ran, so it ends here.
            with self.db.for_user(user.id) as session:
                session.execute(
                    update(Prediction)
                    .where(Prediction.id == prediction_id, Prediction.status == "starting")
                    .values(status="canceled", completed_at=utcnow())
                )
                session.commit()
        return self.get(user, prediction_id)

    # -- Replicate's JSON -------------------------------------------------------------------------

    def base_url_for(self, request_base: str) -> str:
        return (self.settings.public_url or request_base).rstrip("/")

    def to_json(self, prediction: Prediction, base_url: str | None = None) -> dict[str, Any]:
        base = (self.settings.public_url or base_url or prediction.base_url).rstrip("/")
        spec = self.manifest.specs.get(prediction.model)
        api = f"{base}/v1/predictions/{prediction.id}"
        body: dict[str, Any] = {
            "id": prediction.id,
            "model": spec.owner_name if spec else prediction.model,
            "version": prediction.version,
            "input": prediction.input,
            "output": self.sign_outputs(prediction.output, base),
            "logs": prediction.logs,
            "error": prediction.error,
            "status": prediction.status,
            "progress": round(prediction.progress, 4),
            "source": prediction.source,
            "data_removed": False,
            "created_at": iso(prediction.created_at),
            "started_at": iso(prediction.started_at),
            "completed_at": iso(prediction.completed_at),
            "metrics": prediction.metrics,
            "urls": {"get": api, "cancel": f"{api}/cancel", "stream": self.stream_url(prediction.id, base)},
        }
        if prediction.webhook:
            body["webhook"] = prediction.webhook
            body["webhook_events_filter"] = prediction.webhook_events_filter or list(ALL_EVENTS)
        return body

    def sign_outputs(self, output: Any, base: str) -> Any:
        if isinstance(output, str) and output.startswith(FILE_PREFIX):
            return self.store.sign(output.removeprefix(FILE_PREFIX), base)
        if isinstance(output, list):
            return [self.sign_outputs(item, base) for item in output]
        if isinstance(output, dict):
            return {key: self.sign_outputs(value, base) for key, value in output.items()}
        return output

    def stream_url(self, prediction_id: str, base: str) -> str:
        # The JS client opens the stream without auth, so the URL itself carries a signature.
        expires = int(time.time()) + self.settings.file_url_ttl_s
        signature = self.store.sign_token(f"stream:{prediction_id}", expires)
        return f"{base}/v1/predictions/{prediction_id}/stream?{urlencode({'expires': expires, 'sig': signature})}"

    def verify_stream(self, prediction_id: str, expires: int, signature: str) -> bool:
        return expires >= time.time() and secrets.compare_digest(
            self.store.sign_token(f"stream:{prediction_id}", expires), signature
        )


def validate_input(provider_class, spec: ModelSpec, raw: dict[str, Any]):
    try:
        return provider_class.validate(spec, raw)
    except ValidationError as error:
        errors = [
            {"loc": ["input", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]} for e in error.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        raise InputError(detail, errors) from None
    except FieldError as error:
        raise InputError(
            f"input.{error.field}: {error.message}", [{"loc": ["input", error.field], "msg": error.message}]
        ) from None


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; they were stored in UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
