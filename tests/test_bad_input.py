"""Bad requests: a 4xx whose detail names the problem, and nothing made (no prediction, no generation).

Every case goes to a live server on both databases, through the studio endpoint and Replicate's.
"""

from __future__ import annotations

import json

import httpx
import pytest
import replicate.exceptions
from conftest import make_settings, serve
from sqlalchemy import func, select

from server.db.models import CreativeGeneration, Prediction, UploadedFile

FLUX = "/v1/models/black-forest-labs/flux-schnell/predictions"
OK = {"prompt": "a red fox", "model": "flux-schnell", "dimensions": "256x256", "steps": 1}


def counts(server) -> tuple[int, int]:
    with server.studio.db.system() as session:
        return (
            session.scalar(select(func.count()).select_from(Prediction)),
            session.scalar(select(func.count()).select_from(CreativeGeneration)),
        )


def check(response: httpx.Response, status: int, *named: str) -> None:
    try:
        sent = response.request.content[:300]
    except httpx.RequestNotRead:  # streamed
        sent = b"<streamed>"
    assert response.status_code == status, (sent, response.status_code, response.text)
    body = response.json()
    assert body["status"] == status and body["title"]
    detail = body["detail"]
    assert isinstance(detail, str) and detail
    assert body["error"] == detail  # the field a serverless function's caller reads
    for word in named:
        assert word.lower() in detail.lower(), (sent, word, detail)


@pytest.fixture
def nothing_made(server):
    """Asserts, after the test, that it created no prediction and no generation."""
    before = counts(server)
    assert before == (0, 0)
    yield
    assert counts(server) == before


# (body, status, words the detail must contain)
STUDIO_CASES = [
    ({}, 422, ["prompt"]),
    ({"model": "sdxl", "dimensions": "256x256"}, 422, ["prompt"]),
    ({**OK, "prompt": ""}, 422, ["prompt"]),
    ({**OK, "prompt": "   \n\t "}, 422, ["prompt", "blank"]),
    ({**OK, "prompt": 42}, 422, ["prompt"]),
    ({**OK, "prompt": "x" * 4001}, 422, ["prompt"]),
    ({**OK, "dimensions": "abc"}, 422, ["dimensions", "abc"]),
    ({**OK, "dimensions": "1000x1000"}, 422, ["dimensions", "1000x1000", "16"]),
    ({**OK, "dimensions": "4096x4096"}, 422, ["dimensions", "4096x4096"]),
    ({**OK, "dimensions": "16x16"}, 422, ["dimensions"]),
    ({**OK, "model": "sd15", "dimensions": "1536x512"}, 422, ["dimensions", "sd15", "1024"]),
    ({**OK, "dimensions": None, "width": 1000}, 422, ["width"]),
    ({**OK, "dimensions": None, "aspect_ratio": "7:3"}, 422, ["aspect_ratio", "7:3"]),
    ({**OK, "model": "no-such-model"}, 404, ["no-such-model"]),
    ({**OK, "model": 7}, 422, ["model"]),
    ({**OK, "model": "dall-e-3", "dimensions": "1024x1024"}, 422, ["dall-e-3", "OPENAI_API_KEY"]),  # hosted, and no key here
    ({**OK, "style": "vaporwave"}, 422, ["style", "vaporwave"]),
    ({**OK, "steps": 51}, 422, ["steps", "51", "50"]),
    ({**OK, "steps": 0}, 422, ["steps"]),
    ({**OK, "steps": "many"}, 422, ["steps"]),
    ({**OK, "guidance": 51}, 422, ["guidance"]),
    ({**OK, "seed": -1}, 422, ["seed"]),
    ({**OK, "num_outputs": 9}, 422, ["num_outputs"]),
    ({**OK, "num_outputs": 5}, 422, ["num_outputs"]),
    ({**OK, "output_format": "bmp"}, 422, ["output_format"]),
    ([OK], 422, ["body"]),
    ("a prompt", 422, ["body"]),
]


@pytest.mark.parametrize("path", ["/creative-image", "/.netlify/functions/creative-image"])
def test_studio_endpoint_refuses_bad_input(server, alice, nothing_made, path):
    with alice.http() as http:
        for body, status, named in STUDIO_CASES:
            check(http.post(path, json=body), status, *named)
        for raw in ("{not json", "", "prompt=a+red+fox"):
            check(http.post(path, content=raw, headers={"Content-Type": "application/json"}), 422, "body", "JSON")


# (path, body, status, words the detail must contain)
REPLICATE_CASES = [
    (FLUX, {}, 422, ["prompt"]),
    (FLUX, {"input": {}}, 422, ["input.prompt"]),
    (FLUX, {"input": {"prompt": "  "}}, 422, ["input.prompt", "blank"]),
    (FLUX, {"input": "a red fox"}, 422, ["input"]),
    (FLUX, {"input": {"prompt": "x", "dimensions": "abc"}}, 422, ["input.dimensions", "abc"]),
    (FLUX, {"input": {"prompt": "x", "dimensions": "1000x1000"}}, 422, ["input.dimensions", "16"]),
    (FLUX, {"input": {"prompt": "x", "dimensions": "4096x4096"}}, 422, ["input.dimensions", "4096x4096"]),
    (FLUX, {"input": {"prompt": "x", "width": 4096, "height": 4096}}, 422, ["input.width"]),
    (FLUX, {"input": {"prompt": "x", "width": 100000}}, 422, ["width"]),
    (FLUX, {"input": {"prompt": "x", "style": "vaporwave"}}, 422, ["style", "vaporwave"]),
    (FLUX, {"input": {"prompt": "x", "num_inference_steps": 51}}, 422, ["steps", "51"]),
    (FLUX, {"input": {"prompt": "x", "guidance_scale": -1}}, 422, ["guidance"]),
    (FLUX, {"input": {"prompt": "x"}, "webhook": "not a url"}, 422, ["webhook", "http"]),
    (FLUX, {"input": {"prompt": "x"}, "webhook": "ftp://example.com/hook"}, 422, ["webhook"]),
    (FLUX, {"input": {"prompt": "x"}, "webhook": "https://example.com/hook", "webhook_events_filter": ["finished"]},
     422, ["webhook_events_filter", "finished"]),
    ("/v1/models/nobody/nothing/predictions", {"input": {"prompt": "x"}}, 404, ["nobody/nothing"]),
    ("/v1/models/openai/dall-e-3/predictions", {"input": {"prompt": "x"}}, 422, ["dall-e-3"]),
    ("/v1/deployments/acme/no-such-model/predictions", {"input": {"prompt": "x"}}, 404, ["no-such-model"]),
    ("/v1/predictions", {"input": {"prompt": "x"}}, 422, ["version"]),
    ("/v1/predictions", {"version": "", "input": {"prompt": "x"}}, 422, ["version"]),
    ("/v1/predictions", {"version": "0" * 64, "input": {"prompt": "x"}}, 404, ["0" * 64]),
    ("/v1/predictions", {"version": "black-forest-labs/flux-schnell", "input": {"dimensions": "256x256"}}, 422, ["prompt"]),
]


def test_replicate_endpoints_refuse_bad_input(server, alice, nothing_made):
    with alice.http() as http:
        for path, body, status, named in REPLICATE_CASES:
            response = http.post(path, json=body)
            check(response, status, *named)
        # a known version with bad input names the field, like the model route
        version = http.get("/v1/models/black-forest-labs/flux-schnell").json()["latest_version"]["id"]
        check(http.post("/v1/predictions", json={"version": version, "input": {"prompt": "x", "steps": 51}}), 422, "steps")
        check(http.post(FLUX, json={"input": OK}, headers={"Prefer": "wait=soon"}), 400, "wait")


@pytest.mark.parametrize("path", ["/creative-image", FLUX, "/v1/predictions"])
def test_bad_bodies_tokens_and_sizes(server, alice, nothing_made, path):
    body = {"input": OK, "version": "black-forest-labs/flux-schnell"} if path.startswith("/v1") else OK
    # no token, and a token that is not one
    check(httpx.post(server.url + path, json=body), 401, "authorization")
    unauthenticated = httpx.post(server.url + path, json=body, headers={"Authorization": "Bearer cs_not-a-real-token"})
    check(unauthenticated, 401, "token")
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    check(httpx.post(server.url + path, json=body, headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401, "bearer")

    with alice.http() as http:
        # malformed JSON
        broken = http.post(path, content=b'{"prompt": "a fox", ', headers={"Content-Type": "application/json"})
        check(broken, 422, "json")
        # over the 1 MiB body limit: declared up front, and streamed without a length (chunked)
        big = json.dumps({**body, "padding": "x" * (1 << 20)}).encode()
        check(http.post(path, content=big, headers={"Content-Type": "application/json"}), 413, "limit")

        def chunks():
            for start in range(0, len(big), 64 << 10):
                yield big[start : start + (64 << 10)]

        streamed = http.post(
            path, content=chunks(), headers={"Content-Type": "application/json", "Origin": "https://editor.example"}
        )
        check(streamed, 413, "limit")
        # the editor can read the refusal: it carries the CORS headers too
        assert streamed.headers["access-control-allow-origin"] == "https://editor.example"
        # just under the limit is not refused for its size, but (here) for its steps
        invalid = {**OK, "steps": 0, "padding": "x" * ((1 << 20) - 2000)}
        padded = json.dumps({**body, "input": invalid} if path.startswith("/v1") else invalid).encode()
        assert len(padded) < 1 << 20
        check(http.post(path, content=padded, headers={"Content-Type": "application/json"}), 422, "steps")


def test_replicate_client_raises_with_the_detail(server, alice, nothing_made):
    client = alice.replicate()
    with pytest.raises(replicate.exceptions.ReplicateError) as error:
        client.predictions.create(model="black-forest-labs/flux-schnell", input={"prompt": "x", "dimensions": "1000x1000"})
    assert error.value.status == 422
    assert "dimensions" in error.value.detail and "16" in error.value.detail

    with pytest.raises(replicate.exceptions.ReplicateError) as error:
        client.run("black-forest-labs/flux-schnell", input={"prompt": "x", "num_inference_steps": 51})
    assert error.value.status == 422 and "steps" in error.value.detail

    with pytest.raises(replicate.exceptions.ReplicateError) as error:
        client.run("nobody/nothing", input={"prompt": "x"})
    assert error.value.status == 404 and "nobody/nothing" in error.value.detail

    with pytest.raises(replicate.exceptions.ReplicateError) as error:
        client.predictions.create(version="0" * 64, input={"prompt": "x"})
    assert error.value.status == 404 and "0" * 64 in error.value.detail

    with pytest.raises(replicate.exceptions.ReplicateError) as error:
        client.predictions.create(
            model="black-forest-labs/flux-schnell", input={"prompt": "x"}, webhook="https://example.com/hook",
            webhook_events_filter=["finished"],
        )
    assert error.value.status == 422 and "finished" in error.value.detail

    with pytest.raises(replicate.exceptions.ReplicateError) as error:
        replicate.Client(api_token="cs_wrong", base_url=server.url).run("black-forest-labs/flux-schnell", input=OK)
    assert error.value.status == 401


def test_uploads_have_their_own_limit(tmp_path, database_url, tiny_models):
    settings = make_settings(tmp_path, database_url, tiny_models, max_upload_bytes=4096)
    with serve(settings) as live:
        alice = live.new_user("alice")
        boundary = "studio-test-boundary"

        def multipart(size: int) -> bytes:
            return (
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"a.bin\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n".encode()
                + b"x" * size
                + f"\r\n--{boundary}--\r\n".encode()
            )

        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        with alice.http() as http:
            check(http.post("/v1/files", content=multipart(8192), headers=headers), 413, "4096")
            body = multipart(8192)
            streamed = (body[i : i + 1024] for i in range(0, len(body), 1024))
            check(http.post("/v1/files", content=streamed, headers=headers), 413, "4096")
            assert http.post("/v1/files", content=multipart(1000), headers=headers).status_code == 201
        with live.studio.db.system() as session:
            assert session.scalar(select(func.count()).select_from(UploadedFile)) == 1
