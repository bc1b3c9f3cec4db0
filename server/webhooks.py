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
import queue
import threading
import time
import uuid

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
    """Delivers in order from one background thread, retrying failed deliveries a few times."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._last_sent: dict[str, float] = {}
        self._thread: threading.Thread | None = None
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
        self._ensure_thread()
        self._queue.put((url, secret, json.dumps(payload).encode()))

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._deliver_forever, name="webhooks", daemon=True)
            self._thread.start()

    def _deliver_forever(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._deliver(*item)

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

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until queued deliveries are sent (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(5.0)
        self._client.close()
