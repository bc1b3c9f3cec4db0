"""Text-to-image with diffusers: Flux.1, Flux.2 klein, SDXL, SD 1.5 and single-file checkpoints."""

from __future__ import annotations

import io
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from server.pipelines.base import Artifact, Provider, RunContext
from server.pipelines.image_input import ImageInput
from server.pipelines.styles import apply_style
from server.storage import CONTENT_TYPES

# Pipelines whose __call__ takes a negative prompt as plain text (Flux models use guidance only).
NEGATIVE_PROMPT_PIPELINES = {"StableDiffusionPipeline", "StableDiffusionXLPipeline"}


class DiffusionProvider(Provider):
    Input = ImageInput

    def load(self) -> None:
        import diffusers

        pipeline_class = getattr(diffusers, self.spec.pipeline)
        options: dict[str, Any] = {"local_files_only": True, "dtype": self.device.dtype}
        single_file = _single_file(self.weights) if self.weights else None
        if single_file:
            # Community checkpoints ship no configs; the config folder beside the checkpoint
            # (copied there by scripts/download_models.py) keeps loading offline.
            config = self.weights / "config"
            self.pipe = pipeline_class.from_single_file(str(single_file), config=str(config), **options)
        else:
            self.pipe = pipeline_class.from_pretrained(self.weights, **options)
        self.pipe.to(self.device.name)
        self.pipe.set_progress_bar_config(disable=True)

    def unload(self) -> None:
        del self.pipe

    def memory_bytes(self) -> int:
        import torch

        total = 0
        for component in self.pipe.components.values():
            if isinstance(component, torch.nn.Module):
                total += sum(t.numel() * t.element_size() for t in (*component.parameters(), *component.buffers()))
        return total

    @classmethod
    def batch_key(cls, spec, validated: ImageInput) -> Hashable:
        # One pipeline call takes one size, step count and guidance for all its prompts.
        return (validated.width, validated.height, validated.steps, validated.guidance)

    def predict(self, inputs: list[ImageInput], ctx: RunContext) -> list[list[Artifact]]:
        import torch

        first = inputs[0]
        prompts, negatives, generators = [], [], []
        for job in inputs:
            prompt, negative = apply_style(job.style, job.prompt, job.negative_prompt)
            for index in range(job.num_outputs):
                prompts.append(prompt)
                negatives.append(negative)
                # One generator per image: each job's images depend only on its own seed.
                generators.append(torch.Generator("cpu").manual_seed(job.seed + index))

        def on_step_end(pipe, step: int, _timestep, callback_kwargs: dict) -> dict:
            ctx.step(step + 1, first.steps)
            return callback_kwargs

        call: dict[str, Any] = dict(
            prompt=prompts,
            width=first.width,
            height=first.height,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance,
            generator=generators,
            callback_on_step_end=on_step_end,
        )
        if self.spec.pipeline in NEGATIVE_PROMPT_PIPELINES:
            call["negative_prompt"] = negatives
        ctx.check()
        with torch.inference_mode():
            images = self.pipe(**call).images

        results, start = [], 0
        for job in inputs:
            job_images = images[start : start + job.num_outputs]
            start += job.num_outputs
            results.append(
                [
                    image_artifact(image, job.output_format, job.output_quality, {"seed": job.seed + i})
                    for i, image in enumerate(job_images)
                ]
            )
        return results


PIL_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}


def image_artifact(image, fmt: str, quality: int, metadata: dict | None = None) -> Artifact:
    """An image output, encoded when the runner first reads its bytes."""

    def encode() -> bytes:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format=PIL_FORMATS[fmt], quality=quality)
        return buffer.getvalue()

    meta = {"width": image.width, "height": image.height, **(metadata or {})}
    return Artifact(CONTENT_TYPES[fmt], fmt, "image", meta, encode=encode, image=image)


def _single_file(folder: Path) -> Path | None:
    """The checkpoint inside a single-file model folder, if the folder is one."""
    if (folder / "model_index.json").exists():
        return None
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.ckpt"))
    return files[0] if files else None
