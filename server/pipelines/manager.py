"""Loads models on first use and keeps the loaded ones within a memory budget (LRU eviction).

torch and diffusers are imported only here, when a model first loads, so the API starts fast.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from server.config import Settings
from server.pipelines.base import Device, Provider
from server.pipelines.diffusion import DiffusionProvider
from server.pipelines.manifest import Manifest, ModelSpec
from server.pipelines.openai_images import OpenAIImagesProvider

log = logging.getLogger(__name__)

PROVIDERS: dict[str, type[Provider]] = {
    "diffusers": DiffusionProvider,
    "openai-images": OpenAIImagesProvider,
}

class ModelNotInstalled(Exception):
    pass


@dataclass
class Installed:
    path: Path | None  # None for hosted models
    tiny: bool


@dataclass
class Loaded:
    provider: Provider
    memory_bytes: int
    tiny: bool
    load_seconds: float


class ModelManager:
    def __init__(self, manifest: Manifest, settings: Settings):
        self.manifest = manifest
        self.settings = settings
        self._loaded: OrderedDict[str, Loaded] = OrderedDict()  # least recently used first
        self._lock = threading.RLock()
        self._load_locks = {False: threading.Lock(), True: threading.Lock()}  # local, hosted
        self._device: Device | None = None
        self._budget: int | None = None

    # -- what is installed ------------------------------------------------------------------

    def provider_class(self, spec: ModelSpec) -> type[Provider]:
        return PROVIDERS[spec.provider]

    def installed(self, spec: ModelSpec) -> Installed | None:
        """Real weights first, then the tiny stand-in; hosted models need their API key."""
        if self.provider_class(spec).hosted:
            return Installed(None, False) if self._hosted_key(spec) else None
        real = self.settings.models_dir / spec.id
        if real.is_dir() and any(real.iterdir()):
            return Installed(real, False)
        tiny = self.settings.models_dir / "tiny" / spec.id
        if (tiny / "TINY").exists():
            return Installed(tiny, True)
        return None

    def install_hint(self, spec: ModelSpec) -> str:
        if self.provider_class(spec).hosted:
            return f"model '{spec.id}' is hosted: set OPENAI_API_KEY on the server to use it"
        return (
            f"model '{spec.id}' is not installed: run `python scripts/download_models.py {spec.id}` "
            f"(weights go to {self.settings.models_dir / spec.id})"
        )

    def _hosted_key(self, spec: ModelSpec) -> str | None:
        return {"openai-images": self.settings.openai_api_key}.get(spec.provider)

    # -- loading ------------------------------------------------------------------------------

    def get(self, spec: ModelSpec) -> Loaded:
        """The loaded model, loading it first if need be (evicting others to stay in budget).

        `_lock` guards only the bookkeeping; the load itself (tens of seconds for real weights)
        runs under a per-kind load lock, so the models endpoint and hosted jobs never wait for a
        local model to load, while two loads of local models never overlap.
        """
        with self._lock:
            if (loaded := self._touch(spec)) is not None:
                return loaded
        provider_class = self.provider_class(spec)
        with self._load_locks[provider_class.hosted]:
            with self._lock:
                if (loaded := self._touch(spec)) is not None:  # loaded while this thread waited
                    return loaded
                installed = self.installed(spec)
                if installed is None:
                    raise ModelNotInstalled(self.install_hint(spec))
                device = Device("hosted") if provider_class.hosted else self.device()
                # Before loading, the manifest's figure; tiny weights take about their size on disk.
                estimate = _disk_bytes(installed.path) if installed.tiny else int(spec.memory_gb * 2**30)
                self._make_room(estimate)
            started = time.perf_counter()
            if provider_class.hosted:
                provider = provider_class(
                    spec, None, device, api_key=self._hosted_key(spec), base_url=self.settings.openai_base_url
                )
            else:
                provider = provider_class(spec, installed.path, device)
            provider.load()
            loaded = Loaded(provider, provider.memory_bytes(), installed.tiny, time.perf_counter() - started)
            log.info("loaded %s (%s MB) in %.1f s", spec.id, loaded.memory_bytes >> 20, loaded.load_seconds)
            with self._lock:
                self._loaded[spec.id] = loaded
                self._make_room(0, keep=spec.id)  # the measured size may be larger than the estimate
            return loaded

    def _touch(self, spec: ModelSpec) -> Loaded | None:
        """The model if it is loaded, now marked most recently used."""
        if spec.id in self._loaded:
            self._loaded.move_to_end(spec.id)
            return self._loaded[spec.id]
        return None

    def _make_room(self, needed: int, keep: str | None = None) -> None:
        """Evict least recently used models until `needed` more bytes fit (never `keep`)."""
        budget = self.budget()
        while self.used_bytes() + needed > budget:
            victims = [model_id for model_id in self._loaded if model_id != keep]
            if not victims:
                return
            victim = self._loaded.pop(victims[0])
            log.info("evicting %s to stay within the %s MB budget", victims[0], budget >> 20)
            victim.provider.unload()
            self._free_device_cache()

    def unload_all(self) -> None:
        with self._lock:
            while self._loaded:
                self._loaded.popitem(last=False)[1].provider.unload()

    def used_bytes(self) -> int:
        return sum(loaded.memory_bytes for loaded in self._loaded.values())

    def device(self) -> Device:
        if self._device is None:
            import torch

            choice = self.settings.device
            if choice == "auto":
                if torch.cuda.is_available():
                    choice = "cuda"
                elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
                    choice = "mps"
                else:
                    choice = "cpu"
            if choice == "cuda":
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            elif choice == "mps":
                dtype = torch.float16
            else:
                dtype = torch.float32  # half precision on CPU is slow or unsupported
            self._device = Device(choice, dtype)
        return self._device

    @property
    def device_name(self) -> str | None:
        """The device models run on, once the first one has loaded (asking earlier would import torch)."""
        return self._device.name if self._device else None

    def budget(self) -> int:
        if self._budget is None:
            if self.settings.model_memory_gb is not None:
                self._budget = int(self.settings.model_memory_gb * 2**30)
            elif self.device().name == "cuda":
                import torch

                self._budget = int(torch.cuda.get_device_properties(0).total_memory * 0.9)
            else:
                self._budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
        return self._budget

    # -- what the models endpoint shows -----------------------------------------------------------

    def status(self) -> list[dict]:
        rows = []
        with self._lock:
            for spec in self.manifest:
                installed = self.installed(spec)
                loaded = self._loaded.get(spec.id)
                rows.append(
                    {
                        "id": spec.id,
                        "name": spec.name,
                        "modality": spec.modality,
                        "replicate_name": spec.owner_name,
                        "aliases": spec.aliases,
                        "provider": spec.provider,
                        "hosted": self.provider_class(spec).hosted,
                        "license": spec.license,
                        "installed": installed is not None,
                        "tiny": bool(installed and installed.tiny),
                        "loaded": loaded is not None,
                        "memory_bytes": loaded.memory_bytes if loaded else 0,
                        "approx_memory_gb": spec.memory_gb,
                        "source": _source_record(installed.path) if installed and installed.path else None,
                    }
                )
        return rows

    @staticmethod
    def _free_device_cache() -> None:
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


def _disk_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _source_record(path: Path) -> dict | None:
    for name in ("SOURCE.json", "TINY"):
        if (path / name).exists():
            try:
                return json.loads((path / name).read_text())
            except ValueError:
                return None
    return None
