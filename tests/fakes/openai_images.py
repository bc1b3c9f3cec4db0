"""A fake of OpenAI's images API on loopback: a real HTTP server speaking the real wire format.

`POST /v1/images/generations` with a bearer key and `{model, prompt, n, size, quality, style,
response_format}` answers `{"created", "data": [{"b64_json" | "url", "revised_prompt"}]}` with a
solid-colour PNG of the asked size, and errors as OpenAI sends them: `{"error": {"message",
"type", "param", "code"}}` (401 for a wrong key, 400 for a bad size or argument). Every request
that reaches the endpoint is recorded, so tests can check what the studio sent.

    with fake_openai(api_key="sk-test") as fake:
        settings = make_settings(..., openai_base_url=fake.base_url, openai_api_key="sk-test")
        ...
        assert fake.requests[0].json["size"] == "1792x1024"
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.testing import serve_app

SIZES = {
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
}
QUALITIES = ("standard", "hd")
STYLES = ("vivid", "natural")
RESPONSE_FORMATS = ("url", "b64_json")


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any  # the parsed body, or None when it was not JSON

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class FakeOpenAI:
    api_key: str
    base_url: str = ""  # http://127.0.0.1:PORT/v1
    requests: list[RecordedRequest] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)  # for response_format=url
    delay_s: float = 0.0  # how long a generation takes, like the real API's several seconds
    in_flight: int = 0
    max_in_flight: int = 0  # the most generations being made at once

    def revised_prompt(self, prompt: str) -> str:
        return f"A detailed illustration of {prompt.rstrip('.')}."

    def clear(self) -> None:
        self.requests.clear()


def openai_error(status: int, message: str, type_: str, code: str | None = None, param: str | None = None):
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}}, status_code=status)


def solid_png(width: int, height: int, seed: str) -> bytes:
    colour = tuple(hashlib.sha256(seed.encode()).digest()[:3])
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def build_app(fake: FakeOpenAI) -> Starlette:
    async def generations(request: Request):
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        fake.requests.append(
            RecordedRequest(request.method, request.url.path, {k.lower(): v for k, v in request.headers.items()}, body)
        )

        auth = request.headers.get("authorization", "")
        scheme, _, key = auth.partition(" ")
        if scheme.lower() != "bearer" or not key:
            return openai_error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
            )
        if key != fake.api_key:
            shown = f"{key[:3]}{'*' * max(0, len(key) - 7)}{key[-4:]}" if len(key) > 7 else key
            return openai_error(
                401,
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )

        if not isinstance(body, dict):
            return openai_error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return openai_error(400, "Missing required parameter: 'prompt'.", "invalid_request_error", None, "prompt")
        model = body.get("model") or "dall-e-2"
        if model not in SIZES:
            return openai_error(
                404, f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error", "model_not_found",
            )
        n = body.get("n", 1)
        if not isinstance(n, int) or n < 1 or n > 10 or (model == "dall-e-3" and n != 1):
            message = "You must provide n=1 for this model." if model == "dall-e-3" else f"Invalid n: {n}"
            return openai_error(400, message, "invalid_request_error", None, "n")
        size = body.get("size") or "1024x1024"
        if size not in SIZES[model]:
            return openai_error(
                400,
                f"Invalid value: '{size}'. Supported values are: {', '.join(repr(s) for s in SIZES[model])}.",
                "invalid_request_error",
                "invalid_value",
                "size",
            )
        for name, allowed in (("quality", QUALITIES), ("style", STYLES), ("response_format", RESPONSE_FORMATS)):
            value = body.get(name)
            if value is not None and value not in allowed:
                return openai_error(
                    400,
                    f"Invalid value: '{value}'. Supported values are: {', '.join(repr(a) for a in allowed)}.",
                    "invalid_request_error",
                    "invalid_value",
                    name,
                )

        fake.in_flight += 1
        fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            await asyncio.sleep(fake.delay_s)
        finally:
            fake.in_flight -= 1

        width, height = (int(part) for part in size.split("x"))
        data = []
        for index in range(n):
            png = solid_png(width, height, f"{prompt}/{index}")
            item: dict[str, Any] = {}
            if (body.get("response_format") or "url") == "b64_json":
                item["b64_json"] = base64.b64encode(png).decode()
            else:
                image_id = uuid.uuid4().hex
                fake.images[image_id] = png
                item["url"] = f"{fake.base_url.removesuffix('/v1')}/images/{image_id}.png"
            if model == "dall-e-3":
                item["revised_prompt"] = fake.revised_prompt(prompt)
            data.append(item)
        return JSONResponse({"created": int(time.time()), "data": data})

    async def image_file(request: Request):
        png = fake.images.get(request.path_params["image_id"])
        if png is None:
            return Response(status_code=404)
        return Response(png, media_type="image/png")

    async def not_found(request: Request):
        return openai_error(404, f"Invalid URL ({request.method} {request.url.path})", "invalid_request_error")

    return Starlette(
        routes=[
            Route("/v1/images/generations", generations, methods=["POST"]),
            Route("/images/{image_id}.png", image_file, methods=["GET"]),
            Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ]
    )


@contextmanager
def fake_openai(api_key: str = "sk-test"):
    """Run the fake under uvicorn on a free loopback port, in a background thread."""
    fake = FakeOpenAI(api_key=api_key)
    with serve_app(build_app(fake), timeout=15) as url:
        fake.base_url = f"{url}/v1"
        yield fake
