"""The official Replicate JS client (npm `replicate`), as the editor's serverless functions use it,
against a live server: only its `baseUrl` changes. tests/js/replicate_client.mjs drives the client
and prints what it saw; the assertions are here. `make test` installs the client (`npm ci`)."""

from __future__ import annotations

import json
import shutil
import subprocess

import httpx

from conftest import REPO_ROOT

DRIVER = REPO_ROOT / "tests" / "js" / "replicate_client.mjs"
CLIENT = REPO_ROOT / "tests" / "js" / "node_modules" / "replicate"


def run_js_client(url: str, token: str) -> dict:
    node = shutil.which("node")
    assert node, "Node.js 18+ is needed for this test (the Replicate JS client)"
    assert CLIENT.is_dir(), "the JS client is not installed: run `make test` (it runs npm ci in tests/js)"
    done = subprocess.run([node, str(DRIVER), url, token], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def png_size(url: str) -> tuple[int, int]:
    response = httpx.get(url)  # no token, as a browser fetches outputs
    assert response.status_code == 200 and response.content[:8] == b"\x89PNG\r\n\x1a\n", response.text[:200]
    return int.from_bytes(response.content[16:20], "big"), int.from_bytes(response.content[20:24], "big")


def test_the_js_client_works_unchanged(server, alice, bob):
    with bob.http() as http:  # someone else's prediction, which alice's list must not show
        theirs = http.post("/v1/models/black-forest-labs/flux-schnell/predictions", json={"input": {"prompt": "bob's"}})
        assert theirs.status_code == 201, theirs.text

    seen = run_js_client(server.url, alice.token)

    # run() by model name and by owner/name:version: images of the asked size at token-free URLs
    image = {"status": 200, "contentType": "image/png", "png": True, "width": 256, "height": 320}
    assert seen["run"]["image"] == image
    assert len(seen["run"]["output"]) == 1
    assert seen["runByVersion"]["image"] == image
    with alice.http() as http:
        model = http.get("/v1/models/black-forest-labs/flux-schnell").json()
    assert seen["runByVersion"]["version"] == model["latest_version"]["id"]

    # create + wait(): starting, then succeeded with progress in the logs and a predict_time
    assert seen["created"] == {"status": "starting", "hasStream": True}
    assert seen["waited"]["status"] == "succeeded"
    assert "1/1" in seen["waited"]["logs"] and seen["waited"]["predictTime"] > 0

    # stream(): events with an output URL, and `done` last
    events = [event["event"] for event in seen["stream"]]
    assert "output" in events and events[-1] == "done", events
    output = next(event["data"] for event in seen["stream"] if event["event"] == "output")
    assert png_size(output) == (256, 320)

    # cancel of a queued prediction sticks
    assert seen["cancel"] == {"status": "canceled", "final": "canceled"}

    # list: alice's predictions (2 runs, 1 create, 1 stream, 2 for cancel), newest first, not bob's
    ids = seen["list"]["ids"]
    assert len(ids) == 6 and theirs.json()["id"] not in ids

    # files.create: the JS client sends metadata as a JSON part, not a plain field
    assert seen["file"]["size"] == 4 and seen["file"]["metadata"] == {"purpose": "test"}
    with alice.http() as http:
        assert http.get(seen["file"]["get"]).json()["id"] == seen["file"]["id"]

    # errors reach the client as ApiErrors with the status and a message naming the problem
    assert seen["unknownModel"]["status"] == 404 and "nobody/nothing" in seen["unknownModel"]["message"]
    assert seen["badInput"]["status"] == 422 and "input.width" in seen["badInput"]["message"]
