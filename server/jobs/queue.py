"""The job queue: an interface, and the embedded in-process implementation.

The `device` lane has one worker thread: it owns the accelerator, one batch at a time, first in,
first out. Hosted models run in the `hosted` lane, so a slow hosted call never holds the GPU;
its jobs wait on the network, so several worker threads take them side by side. A distributed
engine (a broker and remote workers) can implement the same interface.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

log = logging.getLogger(__name__)

LANES = ("device", "hosted")


@dataclass(frozen=True)
class Job:
    prediction_id: str
    model_id: str
    lane: str = "device"
    batch_key: Hashable | None = None  # equal keys on the same model may share one pipeline call


@dataclass
class RunningJob:
    job: Job
    cancelled: threading.Event


BatchRunner = Callable[[list[RunningJob]], None]
WarmUp = Callable[[], None]


class JobQueue(ABC):
    @abstractmethod
    def submit(self, job: Job) -> None: ...

    @abstractmethod
    def cancel(self, prediction_id: str) -> str | None:
        """'queued' if it was removed before it ran, 'running' if it was told to stop, else None."""

    @abstractmethod
    def start(self, run_batch: BatchRunner, warm_up: WarmUp | None = None) -> None:
        """Run batches as they come; a device worker first calls `warm_up` (preloads models)."""

    @abstractmethod
    def stop(self) -> None: ...


class InProcessQueue(JobQueue):
    def __init__(self, max_batch_size: int = 4, hosted_workers: int = 4):
        self.max_batch_size = max(1, max_batch_size)
        self.workers = {"device": 1, "hosted": max(1, hosted_workers)}
        self._pending: dict[str, deque[Job]] = {lane: deque() for lane in LANES}
        self._running: dict[str, RunningJob] = {}
        self._condition = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def submit(self, job: Job) -> None:
        with self._condition:
            self._pending[job.lane].append(job)
            self._condition.notify_all()

    def cancel(self, prediction_id: str) -> str | None:
        with self._condition:
            for pending in self._pending.values():
                for job in pending:
                    if job.prediction_id == prediction_id:
                        pending.remove(job)
                        return "queued"
            running = self._running.get(prediction_id)
            if running is not None:
                running.cancelled.set()
                return "running"
        return None

    def start(self, run_batch: BatchRunner, warm_up: WarmUp | None = None) -> None:
        self._stopping = False
        for lane in LANES:
            for index in range(self.workers[lane]):
                name = f"worker-{lane}" + (f"-{index}" if index else "")
                first = warm_up if lane == "device" else None
                thread = threading.Thread(target=self._work, args=(lane, run_batch, first), name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        with self._condition:
            self._stopping = True
            for running in self._running.values():
                running.cancelled.set()
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _take_batch(self, lane: str) -> list[RunningJob] | None:
        """The head of the lane, plus the jobs right behind it that can share its pipeline call."""
        with self._condition:
            pending = self._pending[lane]
            while not pending and not self._stopping:
                self._condition.wait()
            if self._stopping:
                return None
            head = pending.popleft()
            batch = [head]
            while (
                head.batch_key is not None
                and pending
                and len(batch) < self.max_batch_size
                and (pending[0].model_id, pending[0].batch_key) == (head.model_id, head.batch_key)
            ):
                batch.append(pending.popleft())
            running = [RunningJob(job, threading.Event()) for job in batch]
            for item in running:
                self._running[item.job.prediction_id] = item
            return running

    def _work(self, lane: str, run_batch: BatchRunner, warm_up: WarmUp | None = None) -> None:
        # On the device's own thread: a model loaded elsewhere could evict one in use here.
        if warm_up is not None:
            try:
                warm_up()
            except Exception:
                log.exception("worker %s: warm-up failed", lane)
        while (batch := self._take_batch(lane)) is not None:
            try:
                run_batch(batch)
            except Exception:  # the runner records failures itself; never let the worker die
                log.exception("worker %s: batch crashed", lane)
            finally:
                with self._condition:
                    for item in batch:
                        self._running.pop(item.job.prediction_id, None)
