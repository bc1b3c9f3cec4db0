"""The model manifest (models/manifest.yaml): every model the studio knows, local or hosted."""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field


class Source(BaseModel):
    """Where the real weights come from. `files` maps a file to its sha256 (empty: not checked)."""

    repo: str | None = None
    revision: str = "main"
    allow_patterns: list[str] = []
    files: dict[str, str] = {}
    single_file: str | None = None  # a checkpoint file inside `repo` (DreamShaper and friends)
    config: str | None = None  # shipped diffusers config folder for single files, relative to models/


class Limits(BaseModel):
    multiple_of: int = 8
    min_side: int = 256
    max_side: int = 2048
    max_megapixels: float = 4.2
    max_steps: int = 100
    max_outputs: int = 4
    sizes: list[str] = []  # when set, the only sizes allowed ("1024x1024", ...)


class ModelSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    modality: str  # image | audio | music | upscale
    provider: str  # key in server.pipelines.registry.PROVIDERS
    pipeline: str | None = None  # the diffusers class, for the diffusers provider
    description: str = ""
    replicate: str | None = None  # owner/name it answers to on /v1
    aliases: list[str] = []
    license: str = ""
    memory_gb: float = 0.0
    defaults: dict[str, Any] = {}
    limits: Limits = Field(default_factory=Limits)
    source: Source = Field(default_factory=Source)
    tiny: bool = True  # whether scripts/download_models.py --tiny can build a stand-in

    @property
    def owner_name(self) -> str:
        """The Replicate-style name; models with no Replicate twin live under `studio/`."""
        return self.replicate or f"studio/{self.id}"

    def version_id(self, input_schema: dict[str, Any]) -> str:
        """A stable 64-hex version id: changes when the weights' revision or the input schema does."""
        basis = json.dumps([self.id, self.source.repo, self.source.revision, input_schema], sort_keys=True)
        return hashlib.sha256(basis.encode()).hexdigest()


class UnknownModel(LookupError):
    pass


class Manifest:
    def __init__(self, specs: list[ModelSpec]):
        self.specs = {spec.id: spec for spec in specs}
        self._by_name: dict[str, ModelSpec] = {}
        for spec in specs:
            for name in (spec.id, spec.owner_name, *spec.aliases):
                self._by_name[name.lower()] = spec

    @classmethod
    def load(cls, path: Path) -> Manifest:
        data = yaml.safe_load(Path(path).read_text())
        return cls([ModelSpec.model_validate(entry) for entry in data["models"]])

    def resolve(self, name: str) -> ModelSpec:
        """A model by id, alias or Replicate name (any case; a `:version` suffix is ignored)."""
        key = (name or "").split(":", 1)[0].strip().lower()
        try:
            return self._by_name[key]
        except KeyError:
            known = ", ".join(sorted(self.specs))
            raise UnknownModel(f"unknown model '{name}'; known models: {known}") from None

    def __iter__(self):
        return iter(self.specs.values())

    @cached_property
    def names(self) -> list[str]:
        return sorted(self._by_name)
