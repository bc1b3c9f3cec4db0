"""Wakes requests that wait on a prediction (Prefer: wait, the SSE stream) when it changes.

The worker thread publishes; asyncio waiters in the API's event loop are woken thread-safely.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager


class PredictionEvents:
    def __init__(self) -> None:
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)
        self._lock = threading.Lock()

    @contextmanager
    def subscribe(self, prediction_id: str) -> Iterator[asyncio.Event]:
        """Subscribe before reading the state, then wait: no change slips between the two."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters[prediction_id].add(waiter)
        try:
            yield waiter[1]
        finally:
            with self._lock:
                waiters = self._waiters.get(prediction_id)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[prediction_id]

    def publish(self, prediction_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(prediction_id, ()))
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop has closed
                pass


async def wait_for_change(event: asyncio.Event, timeout: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        pass
    event.clear()
