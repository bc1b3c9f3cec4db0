"""The official `replicate` Python client, unchanged, against a live server on loopback."""

from __future__ import annotations

import io
import ssl

import httpx
import replicate
import trustme
from PIL import Image
from replicate.helpers import FileOutput

from conftest import make_settings, serve, wait_for


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


def test_https_outputs_come_back_as_file_outputs(tmp_path, tiny_models):
    # Behind TLS (the way a studio is exposed), the Python client turns https: outputs into
    # FileOutput objects and downloads them itself, sending its token along with the signed URL.
    ca = trustme.CA()
    pem = str(tmp_path / "server.pem")
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(pem)
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'data' / 'studio.db'}", tiny_models)
    with serve(settings, ssl_certfile=pem, ssl_keyfile=pem) as server, httpx.HTTPTransport(verify=trust) as transport:
        assert server.url.startswith("https://")
        client = replicate.Client(api_token=server.new_user().token, base_url=server.url, transport=transport)
        output = client.run(
            "black-forest-labs/flux-schnell", input={"prompt": "a lantern", "width": 320, "height": 256, "num_inference_steps": 1}
        )
        [file] = output
        assert isinstance(file, FileOutput) and file.url.startswith(server.url + "/files/")
        image = Image.open(io.BytesIO(file.read()))
    assert image.format == "PNG" and image.size == (320, 256)


def test_run_by_version_and_model_objects(server, alice):
    client = alice.replicate()
    model = client.models.get("stability-ai/sdxl")
    assert model.owner == "stability-ai" and model.name == "sdxl"
    version = model.latest_version
    assert version.openapi_schema["components"]["schemas"]["Input"]["properties"]["prompt"]
    output = client.run(f"stability-ai/sdxl:{version.id}", input={"prompt": "a castle", "dimensions": "256x256", "steps": 2})
    assert fetch_image(output[0]).size == (256, 256)
    # the seed's short names answer too
    prediction = client.predictions.create(model="studio/dreamshaper", input={"prompt": "a dragon", "width": 256, "height": 256, "steps": 2})
    prediction.wait()
    assert prediction.status == "succeeded", prediction.error
    assert prediction.metrics["tiny_model"] is True


def test_predictions_are_listed_newest_first_and_fetched_by_id(server, alice):
    client = alice.replicate()
    made = [
        client.predictions.create(model="black-forest-labs/flux-schnell", input={"prompt": f"tree {i}", "width": 256, "height": 256, "steps": 1})
        for i in range(3)
    ]
    for prediction in made:
        prediction.wait()
    listed = [p.id for p in client.predictions.list().results]
    assert listed[:3] == [p.id for p in reversed(made)]
    fetched = client.predictions.get(made[0].id)
    assert fetched.status == "succeeded" and fetched.input["prompt"] == "tree 0"
    assert fetched.logs.strip().endswith("1/1")  # per-step progress reached the logs


def slow_input(**extra):
    """A job long enough on the tiny model to be caught while it runs."""
    return {"prompt": "slow", "width": 1024, "height": 1024, "steps": 50, **extra}


def test_cancel_running_and_queued_predictions(server, alice):
    client = alice.replicate()
    running = client.predictions.create(model="black-forest-labs/flux-dev", input=slow_input())
    wait_for(lambda: client.predictions.get(running.id).status == "processing")
    # Another size, so it cannot join the running job's batch: it waits in the queue.
    queued = client.predictions.create(model="black-forest-labs/flux-dev", input=slow_input(width=512))
    client.predictions.cancel(queued.id)
    assert client.predictions.get(queued.id).status == "canceled"
    client.predictions.cancel(running.id)
    final = wait_for(lambda: _done(client, running.id), timeout=30)
    assert final.status == "canceled"
    assert final.output is None
    assert client.predictions.get(queued.id).started_at is None  # never ran


def _done(client, prediction_id):
    prediction = client.predictions.get(prediction_id)
    return prediction if prediction.status in ("succeeded", "failed", "canceled") else None


def test_file_upload(server, alice):
    client = alice.replicate()
    uploaded = client.files.create(io.BytesIO(b"hello sprite sheet"), metadata={"purpose": "test"})
    assert uploaded.size == 18 and uploaded.metadata == {"purpose": "test"}
    assert client.files.get(uploaded.id).id == uploaded.id
    assert uploaded.id in [f.id for f in client.files.list()]
