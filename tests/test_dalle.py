"""DALL-E 3 (hosted) end to end: a live studio pointed at a fake of OpenAI's images API on loopback.

The fake is a real HTTP server speaking OpenAI's wire format (OpenAI's own client talks to it), so
these tests cover the provider's requests, its error handling, and fallback routing from a local
model that is not installed.
"""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from fakes.openai_images import fake_openai
from PIL import Image
from replicate.exceptions import ReplicateError

from conftest import make_settings, serve

KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def fake():
    with fake_openai(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def empty_models(tmp_path):
    """A models folder with nothing installed: no local model runs, so each test is quick."""
    folder = tmp_path / "empty-models"
    folder.mkdir()
    return folder


@pytest.fixture
def studio(tmp_path, database_url, empty_models, fake):
    """Start a studio whose OpenAI settings point at the fake; overrides go to the settings."""

    def start(**overrides):
        values = dict(openai_api_key=KEY, openai_base_url=fake.base_url)
        values.update(overrides)
        return serve(make_settings(tmp_path, database_url, empty_models, **values))

    return start


def fetch_image(url) -> Image.Image:
    response = httpx.get(str(getattr(url, "url", url)), timeout=30)  # no token: output URLs are signed
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


def test_openai_client_speaks_to_the_fake(fake):
    """OpenAI's own client against the fake: proves the fake's wire format is the real one."""
    import openai

    client = openai.OpenAI(api_key=KEY, base_url=fake.base_url, max_retries=0)
    result = client.images.generate(
        model="dall-e-3", prompt="a lighthouse at dusk", n=1, size="1792x1024", quality="hd", style="natural",
        response_format="b64_json",
    )
    assert result.created > 0 and len(result.data) == 1
    assert result.data[0].revised_prompt == fake.revised_prompt("a lighthouse at dusk")
    image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
    assert image.format == "PNG" and image.size == (1792, 1024)
    sent = fake.requests[-1]
    assert sent.path == "/v1/images/generations" and sent.authorization == f"Bearer {KEY}"
    assert sent.json["prompt"] == "a lighthouse at dusk" and sent.json["quality"] == "hd"

    url_result = client.images.generate(model="dall-e-3", prompt="a fox", size="1024x1792", response_format="url")
    assert fetch_image(url_result.data[0].url).size == (1024, 1792)

    with pytest.raises(openai.BadRequestError) as bad_size:
        client.images.generate(model="dall-e-3", prompt="a fox", size="512x512")
    assert bad_size.value.code == "invalid_value" and bad_size.value.param == "size"

    wrong = openai.OpenAI(api_key="sk-wrong-key-000000", base_url=fake.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        wrong.images.generate(model="dall-e-3", prompt="a fox")
    assert denied.value.status_code == 401 and denied.value.code == "invalid_api_key"
    assert "Incorrect API key provided" in denied.value.message


def test_replicate_run_makes_a_wide_image(studio, fake):
    with studio() as live:
        caller = live.new_user()
        output = caller.replicate().run(
            "openai/dall-e-3", input={"prompt": "a harbour at dawn, wide shot", "width": 1792, "height": 1024}
        )
        first = output[0] if isinstance(output, list) else output
        image = fetch_image(first)
        assert image.size == (1792, 1024) and image.format == "PNG"
    assert len(fake.requests) == 1
    sent = fake.requests[0].json
    assert sent["prompt"] == "a harbour at dawn, wide shot"
    assert sent["size"] == "1792x1024" and sent["model"] == "dall-e-3" and sent["n"] == 1
    assert sent["response_format"] == "b64_json"
    assert fake.requests[0].authorization == f"Bearer {KEY}"


def test_hosted_jobs_run_side_by_side(studio, fake):
    # Several artists on DALL-E at once: each waits for OpenAI, not for the others' images.
    fake.delay_s = 1.0
    with studio(hosted_concurrency=3) as live:
        clients = [live.new_user().replicate() for _ in range(3)]
        predictions = [
            client.predictions.create(model="openai/dall-e-3", input={"prompt": f"a tavern sign {n}", "dimensions": "1024x1024"})
            for n, client in enumerate(clients)
        ]
        for prediction in predictions:
            prediction.wait()
            assert prediction.status == "succeeded", prediction.error
    assert len(fake.requests) == 3 and fake.max_in_flight == 3


def test_creative_image_with_dall_e(studio, fake):
    with studio() as live:
        caller = live.new_user()
        with caller.http() as http:
            response = http.post("/creative-image", json={"prompt": "a paper crane", "model": "dall-e-3"})
            assert response.status_code == 200, response.text
            body = response.json()
            assert {"url", "thumbnail", "metadata"} <= set(body)
            assert fetch_image(body["url"]).size == (1024, 1024)
            assert fetch_image(body["thumbnail"]).size[0] <= 1024
            metadata = body["metadata"]
            assert metadata["model"] == "dall-e-3" and metadata["runs_on"] == "dall-e-3"
            assert metadata["fallback"] is False and metadata["tiny_model"] is False
            assert metadata["revised_prompt"] == fake.revised_prompt("a paper crane")
            assert http.get(f"/generations/{body['id']}").json()["metadata"]["runs_on"] == "dall-e-3"
    assert [r.json["size"] for r in fake.requests] == ["1024x1024"]
    assert fake.requests[0].json["prompt"] == "a paper crane"


def test_sizes_dall_e_cannot_make_are_refused_before_calling_openai(studio, fake):
    with studio() as live:
        caller = live.new_user()
        with caller.http() as http:
            response = http.post(
                "/creative-image", json={"prompt": "a fox", "model": "dall-e-3", "dimensions": "512x512"}
            )
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert "dimensions" in detail and "1792x1024" in detail  # names the field and the sizes it can make

        with pytest.raises(ReplicateError) as refused:
            caller.replicate().predictions.create(
                model="openai/dall-e-3", input={"prompt": "a fox", "width": 512, "height": 512}
            )
        assert refused.value.status == 422 and "width" in refused.value.detail
    assert fake.requests == []


def test_dall_e_without_an_api_key_says_to_set_it(studio, fake):
    with studio(openai_api_key=None) as live:
        caller = live.new_user()
        with caller.http() as http:
            response = http.post("/creative-image", json={"prompt": "a fox", "model": "dall-e-3"})
        assert response.status_code == 422, response.text
        assert "OPENAI_API_KEY" in response.json()["detail"]

        with pytest.raises(ReplicateError) as refused:
            caller.replicate().predictions.create(model="openai/dall-e-3", input={"prompt": "a fox"})
        assert refused.value.status == 422 and "OPENAI_API_KEY" in refused.value.detail
    assert fake.requests == []


def test_a_wrong_key_fails_the_prediction_with_openais_message(studio, fake):
    with studio(openai_api_key="sk-wrong-key-999999") as live:
        caller = live.new_user()
        prediction = caller.replicate().predictions.create(model="openai/dall-e-3", input={"prompt": "a fox"})
        prediction.wait()
        assert prediction.status == "failed"
        assert "401" in prediction.error and "Incorrect API key provided" in prediction.error
        assert prediction.output is None

        with caller.http() as http:
            response = http.post("/creative-image", json={"prompt": "a fox", "model": "dall-e-3"})
        assert response.status_code == 500 and "Incorrect API key provided" in response.json()["detail"]
    assert len(fake.requests) == 2
    assert all(r.authorization == "Bearer sk-wrong-key-999999" for r in fake.requests)


def test_flux_dev_falls_back_to_dall_e_when_not_installed(studio, fake):
    """The editor sends flux-dev's steps and guidance; DALL-E has neither, and ignores them."""
    with studio(fallbacks={"flux-dev": "dall-e-3"}) as live:
        caller = live.new_user()
        with caller.http() as http:
            response = http.post("/creative-image", json={"prompt": "a koi pond", "model": "flux-dev", "steps": 28, "guidance": 3.5})
            assert response.status_code == 200, response.text
            body = response.json()
            assert fetch_image(body["url"]).size == (1024, 1024)
            assert body["metadata"]["fallback"] is True and body["metadata"]["runs_on"] == "dall-e-3"
            generation = http.get(f"/generations/{body['id']}").json()
            assert generation["model"] == "flux-dev"
            assert generation["metadata"]["fallback"] is True
            assert generation["metadata"]["runs_on"] == "dall-e-3"
            prediction = http.get(f"/v1/predictions/{body['prediction_id']}").json()
            assert prediction["metrics"]["fallback_model"] == "dall-e-3"
            assert prediction["model"] == "black-forest-labs/flux-dev"
    assert [(r.json["prompt"], r.json["size"]) for r in fake.requests] == [("a koi pond", "1024x1024")]


def test_flux_dev_without_a_fallback_says_how_to_install(studio, fake):
    with studio() as live:
        caller = live.new_user()
        with caller.http() as http:
            response = http.post("/creative-image", json={"prompt": "a koi pond", "model": "flux-dev"})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert "flux-dev" in detail and "scripts/download_models.py" in detail
    assert fake.requests == []
