"""Tiny image models: built offline, loaded through the real loading calls, and deterministic."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("diffusers")  # the ML stack is an optional extra

import numpy as np  # noqa: E402
import torch  # noqa: E402

from server.pipelines.tiny_images import DREAMSHAPER_FILE, TINY_IMAGE_MODELS, build_tiny_image_model  # noqa: E402

PIPELINES = {
    "flux-schnell": "FluxPipeline",
    "flux-dev": "FluxPipeline",
    "flux-2-klein": "Flux2KleinPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sd15": "StableDiffusionPipeline",
    "dreamshaper": "StableDiffusionPipeline",
}
# (width, height); non-square on two models. Flux needs multiples of 16, SD of 8.
SIZES = {"flux-schnell": (128, 96), "sdxl": (96, 128)}
# Punctuation, accents, CJK and emoji must all tokenize.
PROMPT = "A cat, sitting on a mat! (photo) -- café, 日本語, 😀"


def load(model_id: str, folder):
    import diffusers

    pipeline_class = getattr(diffusers, PIPELINES[model_id])
    if model_id == "dreamshaper":
        pipe = pipeline_class.from_single_file(
            str(folder / DREAMSHAPER_FILE), config=str(folder / "config"), local_files_only=True
        )
    else:
        pipe = pipeline_class.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, seed: int, width: int = 64, height: int = 64) -> np.ndarray:
    image = pipe(
        prompt=PROMPT,
        width=width,
        height=height,
        num_inference_steps=2,
        generator=torch.Generator("cpu").manual_seed(seed),
    ).images[0]
    assert image.size == (width, height)
    return np.asarray(image)


@pytest.mark.parametrize("model_id", TINY_IMAGE_MODELS)
def test_tiny_model_loads_and_generates(model_id, tmp_path):
    folder = tmp_path / model_id
    build_tiny_image_model(model_id, folder, seed=0)

    assert json.loads((folder / "TINY").read_text()) == {"tiny": True, "model": model_id, "seed": 0}
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert size < 3_000_000
    assert [path.name for path in tmp_path.iterdir()] == [model_id]  # no temp folders left

    pipe = load(model_id, folder)
    assert type(pipe).__name__ == PIPELINES[model_id]
    width, height = SIZES.get(model_id, (64, 64))
    first = generate(pipe, 1, width, height)
    assert np.array_equal(first, generate(pipe, 1, width, height))
    assert not np.array_equal(first, generate(pipe, 2, width, height))


def test_dreamshaper_single_file_round_trip(tmp_path):
    """The LDM-layout checkpoint holds exactly the weights of the diffusers-format "sd15" build."""
    build_tiny_image_model("sd15", tmp_path / "sd15", seed=3)
    build_tiny_image_model("dreamshaper", tmp_path / "dreamshaper", seed=3)
    assert not list((tmp_path / "dreamshaper" / "config").rglob("*.safetensors"))  # configs only

    original = load("sd15", tmp_path / "sd15")
    single_file = load("dreamshaper", tmp_path / "dreamshaper")
    for name in ("unet", "vae", "text_encoder"):
        expected = getattr(original, name).state_dict()
        loaded = getattr(single_file, name).state_dict()
        assert expected.keys() == loaded.keys(), name
        for key, tensor in expected.items():
            assert torch.equal(tensor, loaded[key]), f"{name}.{key}"

    assert np.array_equal(generate(original, 7, 64, 64), generate(single_file, 7, 64, 64))


def test_build_is_deterministic_and_replaces_target(tmp_path):
    def weights(folder):
        return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*.safetensors"))}

    build_tiny_image_model("sd15", tmp_path / "a", seed=0)
    build_tiny_image_model("sd15", tmp_path / "b", seed=0)
    assert weights(tmp_path / "a") == weights(tmp_path / "b")

    build_tiny_image_model("sd15", tmp_path / "a", seed=1)  # over an existing folder
    assert json.loads((tmp_path / "a" / "TINY").read_text())["seed"] == 1
    assert weights(tmp_path / "a") != weights(tmp_path / "b")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a", "b"]


def test_unknown_model_is_rejected(tmp_path):
    with pytest.raises(ValueError):
        build_tiny_image_model("not-a-model", tmp_path / "x")
    assert not list(tmp_path.iterdir())


def test_import_is_light():
    heavy = "{'torch', 'diffusers', 'transformers'}"
    code = f"import sys, server.pipelines.tiny_images; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
