"""The running studio: every long-lived part, built once from the settings and shared by routes."""

from __future__ import annotations

import logging

from server.auth import TokenCache
from server.config import Settings
from server.db.session import Database
from server.jobs.events import PredictionEvents
from server.jobs.queue import InProcessQueue, JobQueue
from server.jobs.runner import JobRunner, recover
from server.pipelines.manager import ModelManager
from server.pipelines.manifest import Manifest
from server.predictions import PredictionService
from server.ratelimit import RateLimiter
from server.storage import OutputStore
from server.webhooks import WebhookSender

log = logging.getLogger(__name__)

# Reads (polling included: the clients poll every 0.5 s) get a far larger allowance than creates.
READS_PER_CREATE = 25


class Studio:
    def __init__(self, settings: Settings, queue: JobQueue | None = None):
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.db_url)
        self.manifest = Manifest.load(settings.manifest)
        self.manager = ModelManager(self.manifest, settings)
        self.store = OutputStore(settings.outputs_dir, settings.signing_key, settings.file_url_ttl_s)
        self.queue = queue or InProcessQueue(settings.max_batch_size, hosted_workers=settings.hosted_concurrency)
        self.events = PredictionEvents()
        self.webhooks = WebhookSender()
        self.service = PredictionService(settings, self.db, self.manifest, self.manager, self.queue, self.store)
        self.runner = JobRunner(
            self.db, self.manager, self.service, self.store, self.events, self.webhooks, settings.job_timeout_s
        )
        try:
            self.preload = [self.manifest.resolve(name) for name in settings.preload]
        except LookupError as error:
            raise ValueError(f"STUDIO_PRELOAD: {error}") from None
        self.tokens = TokenCache(settings.token_cache_s)
        self.create_limiter = RateLimiter(settings.rate_limit_per_minute)
        self.request_limiter = RateLimiter(settings.rate_limit_per_minute * READS_PER_CREATE)

    def start(self) -> None:
        requeued, failed = recover(self.db, self.service, self.settings.max_attempts)
        if requeued or failed:
            log.warning("recovered unfinished predictions: %d queued again, %d failed", requeued, failed)
        self.queue.start(self.runner, warm_up=self._preload)

    def _preload(self) -> None:
        for spec in self.preload:
            try:
                self.manager.get(spec)
            except Exception as error:  # not installed, say: the server still serves the rest
                log.warning("preloading %s failed: %s", spec.id, error)

    def stop(self) -> None:
        self.queue.stop()
        self.runner.close()
        self.webhooks.close()
        self.manager.unload_all()
        self.db.dispose()
