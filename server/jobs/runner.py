"""Runs a batch of jobs on their model and records everything that happens to them.

Lifecycle in the database: `starting` (queued) -> `processing` (claimed here, attempt counted)
-> `succeeded` with outputs and generation rows, or `failed` with a reason, or `canceled`.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select, update

from server.db.models import CreativeGeneration, Prediction, User, utcnow
from server.db.session import Database
from server.jobs.events import PredictionEvents
from server.jobs.queue import RunningJob
from server.pipelines.base import Artifact, JobInterrupted, ProviderError, RunContext
from server.pipelines.manager import ModelManager, ModelNotInstalled
from server.predictions import FILE_PREFIX, InputError, PredictionService, validate_input
from server.storage import OutputStore
from server.webhooks import WebhookSender

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.25  # progress writes per job are throttled to this
UNSAVED_BATCHES = 2  # batches whose outputs may wait to be saved while the device runs the next


class JobRunner:
    def __init__(
        self,
        db: Database,
        manager: ModelManager,
        service: PredictionService,
        store: OutputStore,
        events: PredictionEvents,
        webhooks: WebhookSender,
        timeout_s: float,
    ):
        self.db = db
        self.manager = manager
        self.service = service
        self.store = store
        self.events = events
        self.webhooks = webhooks
        self.timeout_s = timeout_s
        # Encoding, thumbnails and result rows happen on the saver thread, so the device lane goes
        # on to the next batch meanwhile; the semaphore bounds how far saving may fall behind.
        # (`pipelined = False` saves inline: benchmarks/device_lane.py compares the two.)
        self.pipelined = True
        self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="saver")
        self._unsaved = threading.BoundedSemaphore(UNSAVED_BATCHES)

    def close(self) -> None:
        """Save what has been generated (called after the queue has stopped)."""
        self._saver.shutdown(wait=True)

    def __call__(self, batch: list[RunningJob]) -> None:
        claimed = [item for item in batch if self._claim(item.job.prediction_id)]
        if not claimed:
            return
        spec = self.service.manifest.resolve(claimed[0].job.model_id)
        started = time.perf_counter()
        try:
            loaded = self.manager.get(spec)
        except (ModelNotInstalled, ProviderError) as error:
            return self._finish_all(claimed, "failed", error=str(error))
        except Exception as error:  # a broken weights folder, out of memory...
            log.exception("loading %s failed", spec.id)
            return self._finish_all(claimed, "failed", error=f"could not load {spec.id}: {error}")

        inputs, runnable = [], []
        for item in claimed:
            prediction = self._load(item.job.prediction_id)
            try:
                inputs.append(validate_input(type(loaded.provider), spec, prediction.input))
                runnable.append(item)
            except InputError as error:
                self._finish(item.job.prediction_id, "failed", error=str(error))

        if not runnable:
            return
        progress = _ProgressWriter(self, [item.job.prediction_id for item in runnable])
        ctx = RunContext(
            on_progress=progress,
            deadline=time.monotonic() + self.timeout_s,
            # In a batch, one job's cancel must not stop the others; they stop when all are cancelled.
            is_cancelled=lambda: all(item.cancelled.is_set() for item in runnable),
        )
        try:
            results = loaded.provider.predict(inputs, ctx)
        except JobInterrupted as interrupt:
            if interrupt.reason == "timeout":
                message = f"prediction timed out after {self.timeout_s:g} s (the server's job time limit)"
                return self._finish_all(runnable, "failed", error=message)
            return self._finish_all(runnable, "canceled")
        except ProviderError as error:
            return self._finish_all(runnable, "failed", error=str(error))
        except Exception as error:
            log.exception("predict on %s failed", spec.id)
            return self._finish_all(runnable, "failed", error=f"{type(error).__name__}: {error}")

        predict_time = time.perf_counter() - started
        done = []
        for item, validated, artifacts in zip(runnable, inputs, results, strict=True):
            if item.cancelled.is_set():
                self._finish(item.job.prediction_id, "canceled")
            else:
                done.append((item.job.prediction_id, validated, artifacts))
        if not self.pipelined:
            return self._save(done, predict_time, loaded.tiny, len(runnable))
        self._unsaved.acquire()
        saving = self._saver.submit(self._save, done, predict_time, loaded.tiny, len(runnable))
        saving.add_done_callback(lambda _: self._unsaved.release())

    def _save(self, done: list, predict_time: float, tiny: bool, batch_size: int) -> None:
        for prediction_id, validated, artifacts in done:
            try:
                self._succeed(prediction_id, validated, artifacts, predict_time, tiny, batch_size)
            except Exception as error:  # a full disk, say: fail this one with the reason, go on
                log.exception("saving the outputs of %s failed", prediction_id)
                self._finish(prediction_id, "failed", error=f"saving the output failed: {error}")

    # -- state transitions ---------------------------------------------------------------------

    def _claim(self, prediction_id: str) -> bool:
        with self.db.system() as session:
            claimed = session.execute(
                update(Prediction)
                .where(Prediction.id == prediction_id, Prediction.status == "starting")
                .values(status="processing", started_at=utcnow(), attempts=Prediction.attempts + 1)
            ).rowcount
            session.commit()
        if claimed:
            self._announce(prediction_id, "start")
        return bool(claimed)

    def _load(self, prediction_id: str) -> Prediction:
        with self.db.system() as session:
            return session.get(Prediction, prediction_id)

    def _succeed(self, prediction_id, validated, artifacts: list[Artifact], predict_time, tiny, batch_size):
        prediction = self._load(prediction_id)
        outputs = []
        with self.db.system() as session:
            for artifact in artifacts:
                key = self.store.put(artifact.data, artifact.extension)
                thumbnail = None
                if artifact.kind == "image":
                    thumbnail = self.store.put_thumbnail(artifact.data if artifact.image is None else artifact.image)
                outputs.append(FILE_PREFIX + key)
                session.add(
                    CreativeGeneration(
                        user_id=prediction.user_id,
                        type=artifact.kind,
                        prompt=getattr(validated, "prompt", "") or "",
                        model=prediction.model,
                        settings=_settings_of(validated),
                        result_url=key,
                        thumbnail_url=thumbnail,
                        metadata_={
                            **artifact.metadata,
                            "prediction_id": prediction.id,
                            "model_name": self.service.manifest.specs[prediction.model].owner_name,
                            "runs_on": prediction.runs_on,
                            "fallback": prediction.runs_on != prediction.model,
                            "tiny_model": tiny,
                            "content_type": artifact.content_type,
                            "bytes": len(artifact.data),
                            "predict_time": round(predict_time, 4),
                        },
                        prediction_id=prediction.id,
                    )
                )
            metrics = {
                **prediction.metrics,
                "predict_time": round(predict_time, 4),
                "batch_size": batch_size,
                "tiny_model": tiny,
            }
            session.execute(
                update(Prediction)
                .where(Prediction.id == prediction_id)
                .values(
                    status="succeeded",
                    output=outputs,
                    progress=1.0,
                    metrics=metrics,
                    completed_at=utcnow(),
                )
            )
            session.commit()
        self._announce(prediction_id, "output")
        self._announce(prediction_id, "completed")

    def _finish(self, prediction_id: str, status: str, error: str | None = None) -> None:
        with self.db.system() as session:
            values: dict[str, Any] = {"status": status, "completed_at": utcnow()}
            if error:
                values["error"] = error
            session.execute(update(Prediction).where(Prediction.id == prediction_id).values(**values))
            session.commit()
        self._announce(prediction_id, "completed")

    def _finish_all(self, batch: list[RunningJob], status: str, error: str | None = None) -> None:
        for item in batch:
            self._finish(item.job.prediction_id, status, error)

    def write_progress(self, prediction_ids: list[str], done: int, total: int) -> None:
        fraction = min(1.0, done / max(total, 1))
        line = f"{int(fraction * 100):3d}%|{'█' * int(fraction * 10):<10}| {done}/{total}\n"
        with self.db.system() as session:
            session.execute(
                update(Prediction)
                .where(Prediction.id.in_(prediction_ids), Prediction.status == "processing")
                .values(progress=fraction, logs=Prediction.logs + line)
            )
            session.commit()
        for prediction_id in prediction_ids:
            self._announce(prediction_id, "logs")

    def _announce(self, prediction_id: str, event: str) -> None:
        """Wake waiting requests, and send the webhook if the prediction has one."""
        self.events.publish(prediction_id)
        prediction = self._load(prediction_id)
        if prediction is None or not prediction.webhook:
            return
        with self.db.system() as session:
            secret = session.scalar(select(User.webhook_secret).where(User.id == prediction.user_id))
        self.webhooks.send(
            prediction.webhook, secret, event, prediction.webhook_events_filter, self.service.to_json(prediction)
        )


class _ProgressWriter:
    """Turns per-step callbacks into throttled progress writes (every step is too many on a GPU)."""

    def __init__(self, runner: JobRunner, prediction_ids: list[str]):
        self.runner = runner
        self.prediction_ids = prediction_ids
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < PROGRESS_EVERY_S and done > 1:
            return
        self.last = now
        self.runner.write_progress(self.prediction_ids, done, total)


def _settings_of(validated) -> dict[str, Any]:
    return validated.model_dump(exclude={"prompt"}, exclude_none=True)


def recover(db: Database, service: PredictionService, max_attempts: int) -> tuple[int, int]:
    """After a crash or restart: queue every accepted job again, or fail it with a reason.

    A job that was `processing` when the server stopped is re-queued until it has been tried
    `max_attempts` times, so one that crashes the server cannot crash it forever.
    """
    requeued = failed = 0
    with db.system() as session:
        unfinished = session.scalars(
            select(Prediction)
            .where(Prediction.status.in_(("starting", "processing")))
            .order_by(Prediction.created_at, Prediction.id)
        ).all()
        for prediction in unfinished:
            if prediction.status == "processing":
                if prediction.attempts >= max_attempts:
                    prediction.status = "failed"
                    prediction.completed_at = utcnow()
                    prediction.error = (
                        f"the server stopped while this prediction was running, {prediction.attempts} "
                        f"time(s); it was not retried again"
                    )
                    failed += 1
                    continue
                prediction.status = "starting"
                prediction.logs += "-- the server restarted while this ran; queued again --\n"
                prediction.progress = 0.0
        session.commit()
        to_queue = [p for p in unfinished if p.status == "starting"]
    for prediction in to_queue:
        try:
            service.queue.submit(service.job_for(prediction))
            requeued += 1
        except Exception as error:  # the model left the manifest, the input no longer validates...
            with db.system() as session:
                session.execute(
                    update(Prediction)
                    .where(Prediction.id == prediction.id)
                    .values(status="failed", completed_at=utcnow(), error=f"could not be queued again: {error}")
                )
                session.commit()
            failed += 1
    return requeued, failed
