"""The model manager: what is installed, loading on first use, and the memory budget."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import make_settings
from server.pipelines.manager import ModelManager, ModelNotInstalled
from server.pipelines.manifest import Manifest


def manager(tmp_path, models_dir, **overrides) -> ModelManager:
    settings = make_settings(tmp_path, "sqlite://", models_dir, **overrides)
    return ModelManager(Manifest.load(settings.manifest), settings)


def test_least_recently_used_model_is_evicted_to_stay_within_budget(tmp_path, tiny_models):
    # 4 MB holds one tiny model (about 2.3 MB each): a second load evicts the one used longest ago.
    models = manager(tmp_path, tiny_models, model_memory_gb=0.004)
    manifest = models.manifest
    first = models.get(manifest.resolve("sd15"))
    assert first.tiny and first.memory_bytes > 0
    models.get(manifest.resolve("sdxl"))
    loaded = {row["id"] for row in models.status() if row["loaded"]}
    assert loaded == {"sdxl"}
    assert models.used_bytes() <= 0.004 * 2**30


def test_roomy_budget_keeps_models_loaded(tmp_path, tiny_models):
    models = manager(tmp_path, tiny_models, model_memory_gb=8)
    for model_id in ("sd15", "flux-schnell"):
        models.get(models.manifest.resolve(model_id))
    status = {row["id"]: row for row in models.status()}
    assert status["sd15"]["loaded"] and status["flux-schnell"]["loaded"]
    assert status["sd15"]["tiny"] and status["sd15"]["memory_bytes"] > 0
    assert not status["sdxl"]["loaded"]
    assert models.device().name == "cpu"


def test_missing_model_says_how_to_install(tmp_path):
    (tmp_path / "empty").mkdir()
    models = manager(tmp_path, tmp_path / "empty")
    with pytest.raises(ModelNotInstalled, match="scripts/download_models.py sdxl"):
        models.get(models.manifest.resolve("sdxl"))
    assert not any(row["installed"] for row in models.status())


def test_real_weights_win_over_tiny(tmp_path, tiny_models):
    folder = tmp_path / "models"
    (folder / "tiny").mkdir(parents=True)
    (folder / "tiny" / "sd15").symlink_to(tiny_models / "tiny" / "sd15")
    (folder / "sd15").symlink_to(tiny_models / "tiny" / "sd15")  # stands in for downloaded weights
    installed = manager(tmp_path, folder).installed(Manifest.load(make_settings(tmp_path, "sqlite://", folder).manifest).resolve("sd15"))
    assert installed.path == folder / "sd15" and not installed.tiny


def test_shipped_sd15_config_describes_the_real_architecture():
    """DreamShaper loads offline from models/configs/sd15: check it is SD 1.5's real shape."""
    import json

    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from server.config import REPO_ROOT

    folder = REPO_ROOT / "models" / "configs" / "sd15"
    with init_empty_weights():  # shapes only, no memory
        unet = UNet2DConditionModel.from_config(json.loads((folder / "unet" / "config.json").read_text()))
        vae = AutoencoderKL.from_config(json.loads((folder / "vae" / "config.json").read_text()))
        text = CLIPTextModel(CLIPTextConfig.from_json_file(folder / "text_encoder" / "config.json"))
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert round(count(unet) / 1e6) == 860
    assert round(count(vae) / 1e6) == 84
    assert round(count(text) / 1e6) == 123


def test_a_slow_local_load_holds_up_neither_status_nor_hosted_models(tmp_path, tiny_models, monkeypatch):
    # Real weights take tens of seconds to load. Meanwhile the models endpoint must answer and a
    # hosted model must be usable: here a local load is held open until the test lets it finish.
    from server.pipelines.diffusion import DiffusionProvider

    loading, finish = threading.Event(), threading.Event()
    real_load = DiffusionProvider.load

    def slow_load(self):
        loading.set()
        finish.wait(30)
        real_load(self)

    monkeypatch.setattr(DiffusionProvider, "load", slow_load)
    models = manager(tmp_path, tiny_models, model_memory_gb=8, openai_api_key="sk-test")
    with ThreadPoolExecutor(max_workers=3) as pool:
        local = pool.submit(models.get, models.manifest.resolve("sd15"))
        assert loading.wait(30)
        status = pool.submit(models.status)
        hosted = pool.submit(models.get, models.manifest.resolve("dall-e-3"))
        rows = {row["id"]: row for row in status.result(timeout=10)}  # answers while sd15 loads
        assert not rows["sd15"]["loaded"] and rows["sd15"]["installed"]
        assert hosted.result(timeout=10).provider.hosted
        assert not local.done()
        finish.set()
        assert local.result(timeout=30).tiny
    assert {row["id"] for row in models.status() if row["loaded"]} == {"sd15", "dall-e-3"}
