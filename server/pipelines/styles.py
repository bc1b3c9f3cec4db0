"""Named style presets: each extends the prompt and the negative prompt."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Style:
    prompt: str  # "{prompt}" marks where the user's prompt goes
    negative: str = ""


STYLES: dict[str, Style] = {
    "none": Style("{prompt}"),
    "photorealistic": Style(
        "{prompt}, photorealistic, natural lighting, highly detailed, sharp focus",
        "cartoon, illustration, painting, drawing, blurry, low quality",
    ),
    "concept-art": Style(
        "concept art of {prompt}, digital painting, artstation, dramatic lighting, highly detailed",
        "photo, blurry, low quality, watermark",
    ),
    "fantasy": Style(
        "{prompt}, epic fantasy art, vibrant colours, intricate details, painterly",
        "photo, modern, blurry, low quality",
    ),
    "anime": Style("{prompt}, anime style, cel shading, clean lines, vibrant", "photo, realistic, 3d render, blurry"),
    "pixel-art": Style(
        "pixel art of {prompt}, 16-bit, crisp pixels, limited palette, game sprite",
        "blurry, smooth shading, photo, realistic, anti-aliasing",
    ),
    "low-poly": Style("low poly 3d model of {prompt}, flat shading, simple geometry", "photo, high detail, noisy"),
    "3d-render": Style(
        "{prompt}, 3d render, octane render, studio lighting, physically based materials",
        "2d, flat, sketch, low quality",
    ),
    "isometric": Style("isometric view of {prompt}, game asset, clean background, detailed", "perspective, blurry"),
    "watercolor": Style("watercolor painting of {prompt}, soft washes, paper texture", "photo, 3d render, harsh lines"),
    "comic": Style("{prompt}, comic book style, bold ink outlines, halftone shading", "photo, realistic, blurry"),
    "sprite": Style(
        "{prompt}, game sprite, centered, full body, plain white background, clean outline",
        "cropped, busy background, blurry, text",
    ),
    "texture": Style(
        "seamless tileable texture of {prompt}, top-down, even lighting, high detail",
        "perspective, shadows, objects, text, seams",
    ),
}


def apply_style(name: str | None, prompt: str, negative: str) -> tuple[str, str]:
    style = STYLES[name or "none"]
    styled_negative = ", ".join(part for part in (negative, style.negative) if part)
    return style.prompt.format(prompt=prompt), styled_negative
