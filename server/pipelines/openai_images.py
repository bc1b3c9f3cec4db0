"""DALL-E 3 through OpenAI's images API (hosted: no weights, no device)."""

from __future__ import annotations

import base64
import time

import httpx

from server.pipelines.base import Artifact, Provider, ProviderError, RunContext
from server.pipelines.image_input import ImageInput
from server.pipelines.styles import apply_style


class OpenAIImagesProvider(Provider):
    Input = ImageInput
    hosted = True

    def __init__(self, spec, weights, device, *, api_key: str | None = None, base_url: str = ""):
        super().__init__(spec, weights, device)
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")

    # DALL-E has no steps, guidance or negative prompt: requests that carry them (the editor
    # sends steps; a fallback from a local model does too) are accepted and those fields ignored.
    IGNORED_FIELDS = ("steps", "num_inference_steps", "guidance", "guidance_scale", "negative_prompt")

    @classmethod
    def validate(cls, spec, raw):
        return super().validate(spec, {k: v for k, v in raw.items() if k not in cls.IGNORED_FIELDS})

    def load(self) -> None:
        if not self.api_key:
            raise ProviderError(f"{self.spec.id} needs OPENAI_API_KEY in the server's environment")
        self.client = httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.api_key}"})

    def unload(self) -> None:
        self.client.close()

    def memory_bytes(self) -> int:
        return 0

    def predict(self, inputs: list[ImageInput], ctx: RunContext) -> list[list[Artifact]]:
        results = []
        for job in inputs:
            prompt, _ = apply_style(job.style, job.prompt, "")
            artifacts = []
            for index in range(job.num_outputs):  # DALL-E 3 makes one image per request
                ctx.check()
                artifacts.append(self._generate(prompt, job, ctx))
                ctx.step(index + 1, job.num_outputs)
            results.append(artifacts)
        return results

    def _generate(self, prompt: str, job: ImageInput, ctx: RunContext) -> Artifact:
        timeout = max(1.0, min(300.0, ctx.deadline - time.monotonic()))
        try:
            response = self.client.post(
                "/images/generations",
                json={
                    "model": "dall-e-3",
                    "prompt": prompt,
                    "n": 1,
                    "size": job.dimensions,
                    "response_format": "b64_json",
                },
                timeout=timeout,
            )
        except httpx.HTTPError as error:
            raise ProviderError(f"OpenAI images API unreachable: {error}") from error
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:500]
            raise ProviderError(f"OpenAI images API answered {response.status_code}: {message}")
        item = response.json()["data"][0]
        data = base64.b64decode(item["b64_json"])
        metadata = {"width": job.width, "height": job.height, "revised_prompt": item.get("revised_prompt")}
        return _reencode(data, job, metadata)


def _reencode(png: bytes, job: ImageInput, metadata: dict) -> Artifact:
    """OpenAI returns PNG; honour the asked output format like the local models do."""
    import io

    from PIL import Image

    from server.pipelines.diffusion import image_artifact

    with Image.open(io.BytesIO(png)) as opened:
        image = opened.convert("RGB")  # in memory, apart from the file: it is encoded later
    return image_artifact(image, job.output_format, job.output_quality, metadata)
