"""The provider interface every local and hosted model implements: load once, predict many.

A provider gets a list of validated inputs (one per job; the worker batches compatible jobs)
and a `RunContext` it calls once per step. The context reports progress and raises
`JobInterrupted` when the jobs were cancelled or ran past their time limit, so cancel works the
same for a diffusion loop, a token loop, or an HTTP call that is polled.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from server.pipelines.manifest import ModelSpec


class JobInterrupted(Exception):
    """Raised inside a provider when its jobs were cancelled or timed out."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # "canceled" or "timeout"


class ProviderError(Exception):
    """A failure the user can act on (bad hosted key, refused prompt...): its message is shown as is."""


@dataclass
class Artifact:
    """One output file: an image now; audio (with a duration in metadata) for speech and music.

    A provider gives the file's bytes (`encoded`), or a function that makes them (`encode`): local
    providers pass the function, so the runner encodes off the device lane while the next batch
    runs (a 1024x1024 PNG costs 0.1-0.2 s of CPU, as much as a FLUX.1 [schnell] step on a GPU).
    `image` is the decoded picture, when there is one: thumbnails are made from it directly.
    """

    content_type: str
    extension: str
    kind: str = "image"  # image | audio | music | video
    metadata: dict[str, Any] = field(default_factory=dict)
    encoded: bytes | None = None
    encode: Callable[[], bytes] | None = field(default=None, repr=False)
    image: Any = field(default=None, repr=False)  # a PIL image

    @property
    def data(self) -> bytes:
        if self.encoded is None:
            self.encoded = self.encode()
        return self.encoded


@dataclass
class RunContext:
    """What a provider sees of the jobs it runs: progress out, cancel and deadline in."""

    on_progress: Callable[[int, int], None] = lambda step, total: None
    deadline: float = float("inf")  # time.monotonic() value
    is_cancelled: Callable[[], bool] = lambda: False

    def step(self, done: int, total: int) -> None:
        """Call after each unit of work. Raises JobInterrupted when the jobs must stop."""
        self.check()
        self.on_progress(done, total)

    def check(self) -> None:
        if self.is_cancelled():
            raise JobInterrupted("canceled")
        if time.monotonic() > self.deadline:
            raise JobInterrupted("timeout")


@dataclass
class Device:
    name: str  # cuda | mps | cpu | hosted
    dtype: Any = None  # a torch.dtype for local providers


class Provider(ABC):
    """A model behind the studio. Subclasses set `Input`, and implement `load` and `predict`."""

    Input: ClassVar[type[BaseModel]]
    # Local providers hold memory on a device; hosted ones run in their own lane, off the GPU.
    hosted: ClassVar[bool] = False

    def __init__(self, spec: ModelSpec, weights: Path | None, device: Device):
        self.spec = spec
        self.weights = weights
        self.device = device

    @abstractmethod
    def load(self) -> None:
        """Set up once: read weights, move them to the device."""

    @abstractmethod
    def predict(self, inputs: list[BaseModel], ctx: RunContext) -> list[list[Artifact]]:
        """Run a batch of jobs; return each job's artifacts, in order."""

    def unload(self) -> None:
        """Release what `load` took. The manager drops its reference afterwards."""

    def memory_bytes(self) -> int:
        """Memory held once loaded (measured where possible)."""
        return int(self.spec.memory_gb * 2**30)

    @classmethod
    def validate(cls, spec: ModelSpec, raw: dict[str, Any]) -> BaseModel:
        """Parse a job's input. Raises pydantic.ValidationError naming the bad field."""
        return cls.Input.model_validate(raw, context={"spec": spec})

    @classmethod
    def batch_key(cls, spec: ModelSpec, validated: BaseModel) -> Hashable | None:
        """Jobs with equal keys may run in one call; None means this job runs alone."""
        return None
