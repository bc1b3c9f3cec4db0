"""The official `replicate` Python client, unchanged, against a live server on loopback."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image


def fetch_image(output) -> Image.Image:
    url = str(getattr(output, "url", output))
    response = httpx.get(url)  # no token: output URLs are signed
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


def test_run_by_model_name_returns_an_image_of_the_asked_size(server, alice):
    output = alice.replicate().run(
        "black-forest-labs/flux-schnell",
        input={"prompt": "a red fox in the snow", "width": 256, "height": 320, "num_inference_steps": 2},
    )
    assert isinstance(output, list) and len(output) == 1
    image = fetch_image(output[0])
    assert image.size == (256, 320)
    assert image.format == "PNG"
