"""The editor's side: /creative-image, history, CORS, health, model status, and per-user limits."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from conftest import make_settings, serve, wait_for
from PIL import Image

from server.studio import Studio

EDITOR = "https://editor.example"  # allowed by conftest's settings
REQUEST = {"prompt": "a knight", "model": "sdxl", "style": "pixel-art", "dimensions": "256x256", "steps": 2, "guidance": 5}
SMALL = {"dimensions": "256x256", "steps": 1}


def fetch(url: str) -> httpx.Response:
    response = httpx.get(url)  # no token: the URLs are signed
    assert response.status_code == 200, response.text
    return response


def image_at(url: str) -> Image.Image:
    return Image.open(io.BytesIO(fetch(url).content))


def create_image(http: httpx.Client, path: str = "/creative-image", **fields) -> dict:
    response = http.post(path, json=fields)
    assert response.status_code == 200, response.text
    return response.json()


def test_creative_image_returns_url_thumbnail_and_metadata(server, alice):
    # the editor's own path, and the Netlify function's it replaces
    for path in ("/creative-image", "/.netlify/functions/creative-image"):
        with alice.http() as http:
            result = create_image(http, path, **REQUEST)

        image = image_at(result["url"])
        assert image.format == "PNG" and image.size == (256, 256), path
        assert fetch(result["url"]).headers["content-type"] == "image/png"
        thumbnail = image_at(result["thumbnail"])
        assert thumbnail.format == "WEBP" and max(thumbnail.size) <= 256, path

        metadata = result["metadata"]
        assert metadata["prompt"] == "a knight"
        assert metadata["model"] == "sdxl"
        assert metadata["style"] == "pixel-art"
        assert isinstance(metadata["seed"], int)
        assert metadata["steps"] == 2 and metadata["guidance"] == 5
        assert metadata["dimensions"] == "256x256"
        assert metadata["tiny_model"] is True
        assert metadata["prediction_id"] == result["prediction_id"]

        # the same job on both APIs: Replicate's view of it, and the history row
        with alice.http() as http:
            prediction = http.get(f"/v1/predictions/{result['prediction_id']}").json()
            assert prediction["status"] == "succeeded" and prediction["source"] == "web"
            assert prediction["input"]["seed"] == metadata["seed"]
            generation = http.get(f"/generations/{result['id']}").json()
            assert generation["type"] == "image" and generation["prompt"] == "a knight"
            assert generation["model"] == "sdxl"


def test_creative_image_reads_json_whatever_the_content_type(server, alice):
    # The serverless function parsed its body as JSON regardless of headers: `curl -d` sends
    # form-urlencoded, and a browser `fetch` with a string body sends text/plain.
    body = json.dumps({"prompt": "a red fox", "model": "sd15", **SMALL})
    for content_type in ("application/x-www-form-urlencoded", "text/plain;charset=UTF-8"):
        with alice.http() as http:
            response = http.post("/creative-image", content=body, headers={"Content-Type": content_type})
        assert response.status_code == 200, (content_type, response.text)
        assert image_at(response.json()["url"]).size == (256, 256)


def test_seeds_reproduce_images(server, alice):
    with alice.http() as http:
        first = create_image(http, prompt="a lighthouse", model="sd15", seed=1234, **SMALL)
        again = create_image(http, prompt="a lighthouse", model="sd15", seed=1234, **SMALL)
        other = create_image(http, prompt="a lighthouse", model="sd15", seed=4321, **SMALL)
    assert first["metadata"]["seed"] == again["metadata"]["seed"] == 1234
    assert other["metadata"]["seed"] == 4321
    assert fetch(first["url"]).content == fetch(again["url"]).content
    assert fetch(first["url"]).content != fetch(other["url"]).content


def test_history_pages_newest_first_and_deletes(server, alice):
    with alice.http() as http:
        made = [create_image(http, prompt=f"tree {i}", model="flux-schnell", **SMALL)["id"] for i in range(3)]
        newest_first = list(reversed(made))

        listed = http.get("/generations").json()
        assert [g["id"] for g in listed["items"]] == newest_first
        assert listed["next_cursor"] is None
        assert [g["prompt"] for g in listed["items"]] == ["tree 2", "tree 1", "tree 0"]

        page = http.get("/generations", params={"limit": 2}).json()
        assert [g["id"] for g in page["items"]] == newest_first[:2]
        assert page["next_cursor"]
        rest = http.get("/generations", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        assert [g["id"] for g in rest["items"]] == newest_first[2:]
        assert rest["next_cursor"] is None

        assert http.get("/generations", params={"type": "image"}).json()["items"] == listed["items"]
        assert http.get("/generations", params={"type": "audio"}).json() == {"items": [], "next_cursor": None}
        assert http.get("/generations", params={"type": "poetry"}).status_code == 422
        assert http.get("/generations", params={"cursor": "garbage!"}).status_code == 400

        one = http.get(f"/generations/{made[1]}")
        assert one.status_code == 200 and one.json()["prompt"] == "tree 1"
        image = fetch(one.json()["result_url"])
        assert image.content.startswith(b"\x89PNG")

        deleted = http.delete(f"/generations/{made[1]}")
        assert deleted.status_code == 204 and deleted.content == b""
        assert http.get(f"/generations/{made[1]}").status_code == 404
        assert http.delete(f"/generations/{made[1]}").status_code == 404
        assert [g["id"] for g in http.get("/generations").json()["items"]] == [made[2], made[0]]
        assert http.get("/generations/not-a-uuid").status_code == 404


def test_cors_preflight_and_disallowed_origins(server, alice):
    preflight = {
        "Origin": EDITOR,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    for path in ("/creative-image", "/.netlify/functions/creative-image", "/v1/predictions", "/generations"):
        response = httpx.options(server.url + path, headers=preflight)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["access-control-allow-origin"] == EDITOR
        assert "POST" in response.headers["access-control-allow-methods"]
        allowed_headers = response.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed_headers and "content-type" in allowed_headers

    # the real request after it carries the header too, and exposes Retry-After
    response = httpx.get(server.url + "/generations", headers={**alice.headers, "Origin": EDITOR})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == EDITOR
    assert "retry-after" in response.headers["access-control-expose-headers"].lower()
    # ...and so does a refusal, so the editor can read why
    refused = httpx.get(server.url + "/generations", headers={"Origin": EDITOR})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == EDITOR

    evil = "https://evil.example"
    response = httpx.options(server.url + "/creative-image", headers={**preflight, "Origin": evil})
    assert response.status_code == 400  # Starlette refuses the preflight outright
    assert "access-control-allow-origin" not in response.headers
    response = httpx.get(server.url + "/generations", headers={**alice.headers, "Origin": evil})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_health_and_model_status(server, alice):
    health = httpx.get(server.url + "/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert httpx.get(server.url + "/models").status_code == 401

    with alice.http() as http:
        before = http.get("/models").json()
        models = {m["id"]: m for m in before["models"]}
        assert {"flux-schnell", "flux-dev", "flux-2-klein", "sdxl", "sd15", "dreamshaper", "dall-e-3"} <= set(models)
        for model_id in ("flux-schnell", "sdxl", "sd15", "dreamshaper"):
            assert models[model_id]["installed"] is True and models[model_id]["tiny"] is True
            assert models[model_id]["loaded"] is False and models[model_id]["memory_bytes"] == 0
        assert models["dall-e-3"]["installed"] is False and models["dall-e-3"]["hosted"] is True
        assert before["memory"]["used_bytes"] == 0

        create_image(http, prompt="a dragon", model="dreamshaper", **SMALL)

        after = http.get("/models").json()
        models = {m["id"]: m for m in after["models"]}
        assert models["dreamshaper"]["loaded"] is True and models["dreamshaper"]["memory_bytes"] > 0
        assert models["sdxl"]["loaded"] is False
        assert after["memory"]["used_bytes"] >= models["dreamshaper"]["memory_bytes"]
        assert after["memory"]["device"]


def test_preloaded_models_are_loaded_before_the_first_request(tmp_path, database_url, tiny_models):
    settings = make_settings(tmp_path, database_url, tiny_models, preload=["sd15", "black-forest-labs/flux-schnell"])
    with serve(settings) as live, live.new_user().http() as http:
        def loaded() -> set[str]:
            return {m["id"] for m in http.get("/models").json()["models"] if m["loaded"]}

        assert wait_for(lambda: loaded() == {"sd15", "flux-schnell"}, timeout=60)
        assert http.get("/v1/predictions").json()["results"] == []  # no job asked for them

    # a name the manifest does not know stops the start with the setting named
    with pytest.raises(ValueError, match="STUDIO_PRELOAD.*no-such-model"):
        Studio(make_settings(tmp_path, database_url, tiny_models, preload=["no-such-model"]))


def slow_input(**extra) -> dict:
    """A job long enough on the tiny model to still be running when the next request comes."""
    return {"prompt": "slow", "width": 1024, "height": 1024, "steps": 50, **extra}


def test_create_rate_limit_answers_429_with_retry_after(tmp_path, database_url, tiny_models):
    settings = make_settings(tmp_path, database_url, tiny_models, rate_limit_per_minute=2)
    with serve(settings) as live:
        alice, bob = live.new_user("alice"), live.new_user("bob")
        with alice.http() as http:
            first = http.post("/v1/models/black-forest-labs/flux-schnell/predictions", json={"input": {"prompt": "a", **SMALL}})
            assert first.status_code == 201, first.text
            second = create_image(http, prompt="b", model="flux-schnell", **SMALL)  # same allowance
            assert second["url"]
            third = http.post("/creative-image", json={"prompt": "c", "model": "flux-schnell", **SMALL}, headers={"Origin": EDITOR})
            assert third.status_code == 429, third.text
            assert int(third.headers["retry-after"]) >= 1
            assert "2 per minute" in third.json()["detail"]
            assert third.headers["access-control-allow-origin"] == EDITOR
            fourth = http.post("/v1/models/black-forest-labs/flux-schnell/predictions", json={"input": {"prompt": "d", **SMALL}})
            assert fourth.status_code == 429 and int(fourth.headers["retry-after"]) >= 1
            # reads have their own, larger allowance
            assert http.get(f"/v1/predictions/{first.json()['id']}").status_code == 200
            assert len(http.get("/v1/predictions").json()["results"]) == 2
        # per user: bob is not held back by alice
        with bob.http() as http:
            response = http.post("/v1/models/black-forest-labs/flux-schnell/predictions", json={"input": {"prompt": "e", **SMALL}})
            assert response.status_code == 201, response.text
            wait_for(lambda: http.get(f"/v1/predictions/{response.json()['id']}").json()["status"] == "succeeded")


def test_queued_job_limit_answers_429_until_the_job_ends(tmp_path, database_url, tiny_models):
    settings = make_settings(tmp_path, database_url, tiny_models, max_queued_jobs_per_user=1)
    with serve(settings) as live:
        alice, bob = live.new_user("alice"), live.new_user("bob")
        create = "/v1/models/black-forest-labs/flux-dev/predictions"
        with alice.http() as http:
            slow = http.post(create, json={"input": slow_input()})
            assert slow.status_code == 201, slow.text
            slow_id = slow.json()["id"]

            refused = http.post(create, json={"input": {"prompt": "next", **SMALL}})
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["retry-after"]) >= 1
            assert "limit is 1" in refused.json()["detail"]
            assert http.post("/creative-image", json={"prompt": "next", **SMALL}).status_code == 429

            # another user's queue is their own
            with bob.http() as bob_http:
                assert bob_http.post(create, json={"input": {"prompt": "bob", **SMALL}}).status_code == 201

            assert http.post(f"/v1/predictions/{slow_id}/cancel").status_code == 200
            wait_for(lambda: http.get(f"/v1/predictions/{slow_id}").json()["status"] == "canceled", timeout=30)
            assert len(http.get("/v1/predictions").json()["results"]) == 1  # the refused ones were never made

            # once it has ended, the next one is accepted
            assert create_image(http, prompt="after", model="flux-dev", **SMALL)["url"]
