"""Webhook deliveries, signed the way Replicate signs them (Standard Webhooks).

`webhook-signature: v1,<base64 HMAC-SHA256(base64decode(secret), "{id}.{timestamp}.{body}")>`,
where the secret is the user's `whsec_...` from GET /v1/webhooks/default/secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import httpx

log = logging.getLogger(__name__)

ALL_EVENTS = ("start", "output", "logs", "completed")
THROTTLED_EVENTS = {"output", "logs"}  # at most one of these per prediction every 500 ms
THROTTLE_S = 0.5
RETRY_DELAYS_S = (0.5, 2.0, 8.0)


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class WebhookSender:
    """Delivers each destination's webhooks in order, destinations side by side.

    One lane per URL keeps a prediction's events in order (start ... completed), and a receiver
    that hangs or keeps failing (each delivery is retried a few times) delays only its own lane,
    never another user's. Lanes run on a small thread pool; a lane lives while it has work.
    """

    def __init__(self, max_parallel: int = 8) -> None:
        self._lanes: dict[str, deque[tuple[str, bytes]]] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="webhooks")
        self._last_sent: dict[str, float] = {}
        self._client = httpx.Client(timeout=10.0)

    def send(self, url: str, secret: str, event: str, events_filter: list[str] | None, payload: dict) -> None:
        if event not in (events_filter or ALL_EVENTS):
            return
        prediction_id = payload["id"]
        now = time.monotonic()
        if event in THROTTLED_EVENTS:
            if now - self._last_sent.get(prediction_id, 0.0) < THROTTLE_S:
                return
            self._last_sent[prediction_id] = now
        if event == "completed":
            self._last_sent.pop(prediction_id, None)
        item = (secret, json.dumps(payload).encode())
        with self._lock:
            lane = self._lanes.get(url)
            if lane is not None:  # a delivery thread is already working through this URL's lane
                lane.append(item)
                return
            self._lanes[url] = deque([item])
        self._pool.submit(self._run_lane, url)

    def _run_lane(self, url: str) -> None:
        while True:
            with self._lock:
                lane = self._lanes[url]
                if not lane:
                    del self._lanes[url]
                    self._idle.notify_all()
                    return
                secret, body = lane.popleft()
            self._deliver(url, secret, body)

    def _deliver(self, url: str, secret: str, body: bytes) -> None:
        message_id = f"msg_{uuid.uuid4().hex}"
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S)):
            time.sleep(delay)
            timestamp = int(time.time())
            headers = {
                "content-type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(secret, message_id, timestamp, body),
            }
            try:
                response = self._client.post(url, content=body, headers=headers)
                if response.status_code < 500 and response.status_code != 429:
                    return
                log.warning("webhook %s answered %s (attempt %d)", url, response.status_code, attempt + 1)
            except httpx.HTTPError as error:
                log.warning("webhook %s failed: %s (attempt %d)", url, error, attempt + 1)
            except Exception:  # a bug here must not kill the lane and strand its later deliveries
                log.exception("webhook %s: delivery crashed", url)
                return

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until queued deliveries are sent (tests, shutdown)."""
        with self._idle:
            self._idle.wait_for(lambda: not self._lanes, timeout)

    def close(self) -> None:
        self.drain()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()
