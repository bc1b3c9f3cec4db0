"""The typed input of every text-to-image model, local or hosted.

It accepts the editor's fields (`dimensions`, `steps`, `guidance`, `style`) and Replicate's
(`width`/`height` or `aspect_ratio`, `num_inference_steps`, `guidance_scale`, `num_outputs`,
`output_format`), and checks sizes against the model's limits from the manifest.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from server.pipelines.styles import STYLES


class FieldError(Exception):
    """An input that is well-formed but not allowed for this model. Not a ValueError on purpose:
    pydantic lets it through unwrapped, so the API can name the field exactly."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


ASPECT_RATIOS = {"1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9", "9:21", "4:5", "5:4"}


class ImageInput(BaseModel):
    # Unknown keys are ignored, as Cog does: clients send model-specific extras (go_fast, ...).
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    prompt: str = Field(min_length=1, max_length=4000, description="What to draw.")
    negative_prompt: str = Field("", max_length=4000, description="What to avoid (SD 1.5, SDXL, DreamShaper).")
    style: str | None = Field(None, description="A named preset that extends the prompt: " + ", ".join(STYLES))
    dimensions: str | None = Field(None, description="WIDTHxHEIGHT, e.g. 1024x768.", examples=["1024x1024"])
    width: int | None = Field(None, ge=1, le=8192)
    height: int | None = Field(None, ge=1, le=8192)
    aspect_ratio: str | None = Field(None, description="Instead of a size: " + ", ".join(sorted(ASPECT_RATIOS)))
    steps: int | None = Field(
        None, ge=1, validation_alias=AliasChoices("steps", "num_inference_steps"), description="Denoising steps."
    )
    guidance: float | None = Field(
        None, ge=0, le=50, validation_alias=AliasChoices("guidance", "guidance_scale"), description="Prompt guidance."
    )
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="Same seed, same image. Random when empty.")
    num_outputs: int = Field(1, ge=1, le=8)
    output_format: Literal["png", "webp", "jpg"] = "png"
    output_quality: int = Field(90, ge=1, le=100)

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("style")
    @classmethod
    def _known_style(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        key = value.strip().lower().replace(" ", "-").replace("_", "-")
        if key not in STYLES:
            raise ValueError(f"unknown style '{value}'; choose one of {', '.join(STYLES)}")
        return key

    @field_validator("aspect_ratio")
    @classmethod
    def _known_ratio(cls, value: str | None) -> str | None:
        if value is not None and value not in ASPECT_RATIOS:
            raise ValueError(f"unknown aspect ratio '{value}'; choose one of {', '.join(sorted(ASPECT_RATIOS))}")
        return value

    @model_validator(mode="after")
    def _fit_model(self, info: ValidationInfo) -> ImageInput:
        spec = (info.context or {}).get("spec")
        if spec is None:
            return self
        limits, defaults = spec.limits, spec.defaults
        field = "dimensions"
        if self.dimensions:
            match = re.fullmatch(r"\s*(\d+)\s*[xX×*]\s*(\d+)\s*", self.dimensions)
            if not match:
                raise FieldError("dimensions", f"'{self.dimensions}' is not WIDTHxHEIGHT, e.g. 1024x768")
            self.width, self.height = int(match[1]), int(match[2])
        elif self.width or self.height:
            field = "width" if self.width else "height"
            self.width = self.width or defaults.get("width", 1024)
            self.height = self.height or defaults.get("height", 1024)
        elif self.aspect_ratio:
            field = "aspect_ratio"
            self.width, self.height = _size_for_ratio(self.aspect_ratio, defaults, limits)
        else:
            self.width, self.height = defaults.get("width", 1024), defaults.get("height", 1024)
        _check_size(spec.id, field, self.width, self.height, limits)
        self.dimensions = f"{self.width}x{self.height}"

        self.steps = self.steps or defaults.get("steps", 30)
        if self.steps > limits.max_steps:
            raise FieldError("steps", f"{self.steps} is more than {spec.id} allows ({limits.max_steps})")
        if self.guidance is None:
            self.guidance = defaults.get("guidance", 7.5)
        if self.num_outputs > limits.max_outputs:
            raise FieldError("num_outputs", f"{spec.id} makes at most {limits.max_outputs} per request")
        return self


def _size_for_ratio(ratio: str, defaults: dict, limits) -> tuple[int, int]:
    """The size of the model's default area at this ratio, rounded to its multiple."""
    w_ratio, h_ratio = (int(part) for part in ratio.split(":"))
    area = defaults.get("width", 1024) * defaults.get("height", 1024)
    m = limits.multiple_of
    width = (area * w_ratio / h_ratio) ** 0.5
    height = width * h_ratio / w_ratio
    clamp = lambda v: max(limits.min_side, min(limits.max_side, int(round(v / m)) * m))  # noqa: E731
    return clamp(width), clamp(height)


def _check_size(model: str, field: str, width: int, height: int, limits) -> None:
    size = f"{width}x{height}"
    if limits.sizes:
        if size not in limits.sizes:
            raise FieldError(field, f"{size} is not a size {model} makes; choose one of {', '.join(limits.sizes)}")
        return
    if width % limits.multiple_of or height % limits.multiple_of:
        raise FieldError(field, f"{size}: width and height must be multiples of {limits.multiple_of} for {model}")
    if min(width, height) < limits.min_side or max(width, height) > limits.max_side:
        raise FieldError(
            field, f"{size}: each side must be between {limits.min_side} and {limits.max_side} pixels for {model}"
        )
    if width * height > limits.max_megapixels * 1_000_000:
        raise FieldError(field, f"{size} is over {model}'s limit of {limits.max_megapixels} megapixels")
