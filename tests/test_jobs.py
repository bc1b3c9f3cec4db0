"""The job system as a user sees it: webhooks, the event stream, batching, time limits, restarts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from conftest import free_port, make_settings, serve, studio_process, wait_for
from server.config import REPO_ROOT
from test_replicate_client import slow_input

FLUX = "black-forest-labs/flux-schnell"
QUICK = {"prompt": "a lantern", "width": 256, "height": 256, "steps": 1}


class WebhookReceiver:
    """A real HTTP server on loopback that records the webhooks it is sent.

    With `hold=True` it records each request and then hangs, unanswered, until `release()`:
    a receiver that is down in the worst way (the sender waits out its timeout)."""

    def __init__(self, hold: bool = False):
        self.deliveries: list[dict] = []
        self.released = threading.Event()
        if not hold:
            self.released.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.deliveries.append({"headers": dict(self.headers), "body": body})
                receiver.released.wait(60)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self):
        self.released.set()

    def close(self):
        self.release()
        self.server.shutdown()

    def bodies(self, prediction_id: str) -> list[dict]:
        """The prediction JSON of each webhook received for this prediction, in arrival order."""
        bodies = [json.loads(delivery["body"]) for delivery in self.deliveries]
        return [body for body in bodies if body["id"] == prediction_id]

    def statuses(self, prediction_id: str) -> list[str]:
        return [body["status"] for body in self.bodies(prediction_id)]


def valid_signature(secret: str, delivery: dict) -> bool:
    headers = {key.lower(): value for key, value in delivery["headers"].items()}
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + delivery["body"]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return headers["webhook-signature"] == f"v1,{expected}"


def test_webhooks_arrive_signed_and_filtered(server, alice):
    receiver = WebhookReceiver()
    try:
        secret = alice.http().get("/v1/webhooks/default/secret").json()["key"]
        client = alice.replicate()
        everything = client.predictions.create(model=FLUX, input=QUICK, webhook=receiver.url)
        only_completed = client.predictions.create(
            model=FLUX, input={**QUICK, "seed": 7}, webhook=receiver.url, webhook_events_filter=["completed"]
        )
        everything.wait()
        only_completed.wait()
        wait_for(lambda: receiver.statuses(only_completed.id), timeout=10)
        wait_for(lambda: "succeeded" in receiver.statuses(everything.id), timeout=10)
        assert all(valid_signature(secret, d) for d in receiver.deliveries)
        assert not valid_signature("whsec_" + base64.b64encode(b"x" * 24).decode(), receiver.deliveries[0])

        statuses = receiver.statuses(everything.id)
        assert statuses[0] == "processing" and statuses[-1] == "succeeded"  # start ... completed
        final = receiver.bodies(everything.id)[-1]
        assert final["output"][0].startswith(server.url + "/files/")

        assert receiver.statuses(only_completed.id) == ["succeeded"]
    finally:
        receiver.close()


def test_a_hanging_webhook_receiver_delays_no_one_else(server, alice, bob):
    hanging, healthy = WebhookReceiver(hold=True), WebhookReceiver()
    try:
        theirs = alice.replicate().predictions.create(model=FLUX, input=QUICK, webhook=hanging.url)
        wait_for(lambda: hanging.deliveries, timeout=30)  # alice's receiver now holds her first webhook
        mine = bob.replicate().predictions.create(model=FLUX, input={**QUICK, "seed": 3}, webhook=healthy.url)
        mine.wait()
        # bob's webhooks all arrive while alice's receiver still sits on her first one
        wait_for(lambda: healthy.statuses(mine.id)[-1:] == ["succeeded"], timeout=15)
        assert healthy.statuses(mine.id)[0] == "processing"
        assert len(hanging.deliveries) == 1 and not hanging.released.is_set()
        # once it answers, alice's queued webhooks follow, in order
        hanging.release()
        theirs.wait()
        wait_for(lambda: hanging.statuses(theirs.id)[-1:] == ["succeeded"], timeout=15)
        assert hanging.statuses(theirs.id)[0] == "processing"
    finally:
        hanging.close()
        healthy.close()


def test_event_stream_without_token(server, alice):
    prediction = alice.http().post(f"/v1/models/{FLUX}/predictions", json={"input": QUICK, "stream": True}).json()
    events = []
    with httpx.stream("GET", prediction["urls"]["stream"], headers={"Accept": "text/event-stream"}, timeout=60) as response:
        assert response.status_code == 200
        event = {}
        for line in response.iter_lines():
            if not line:
                events.append(event)
                if event.get("event") == "done":
                    break
                event = {}
                continue
            key, _, value = line.partition(": ")
            event[key] = event.get(key, "") + value
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "done" and "output" in kinds and "logs" in kinds
    assert all("id" in e for e in events)
    output = next(e["data"] for e in events if e["event"] == "output")
    assert httpx.get(output).status_code == 200
    forged = prediction["urls"]["stream"].replace("sig=", "sig=0")
    assert httpx.get(forged).status_code == 403


def test_consecutive_compatible_jobs_share_one_pipeline_call(server, alice):
    client = alice.replicate()
    blocker = client.predictions.create(model="black-forest-labs/flux-dev", input=slow_input(steps=12, width=512, height=512))
    wait_for(lambda: client.predictions.get(blocker.id).status == "processing")
    batch = [client.predictions.create(model=FLUX, input={**QUICK, "seed": seed}) for seed in (1, 2, 3)]
    odd_one = client.predictions.create(model=FLUX, input={**QUICK, "width": 320, "seed": 4})
    for prediction in (blocker, *batch, odd_one):
        prediction.wait()
    assert [p.metrics["batch_size"] for p in batch] == [3, 3, 3]
    assert odd_one.metrics["batch_size"] == 1  # another size: its own call
    # first in, first out: the batch started before the job queued after it
    assert max(p.started_at for p in batch) < odd_one.started_at
    # batching does not change what each seed makes (up to float rounding of a larger batch)
    alone = pixels(client.run(FLUX, input={**QUICK, "seed": 2})[0])
    assert abs(alone - pixels(batch[1].output[0])).mean() < 1.0
    assert abs(alone - pixels(batch[0].output[0])).mean() > 5.0  # another seed: another image


def pixels(url):
    import io

    import numpy
    from PIL import Image

    return numpy.asarray(Image.open(io.BytesIO(httpx.get(str(url)).content)), dtype=numpy.float32)


def test_an_output_that_cannot_be_saved_fails_with_the_reason(server, alice):
    # The outputs folder replaced by a file: nothing can be written under it.
    outputs = server.settings.outputs_dir
    outputs.rename(outputs.with_name("outputs-away"))
    outputs.write_text("not a folder")
    client = alice.replicate()
    broken = client.predictions.create(model=FLUX, input=QUICK)
    broken.wait()
    assert broken.status == "failed" and "saving the output failed" in broken.error
    assert alice.http().get("/generations").json()["items"] == []

    # the worker carries on once the disk is fixed
    outputs.unlink()
    outputs.with_name("outputs-away").rename(outputs)
    fine = client.predictions.create(model=FLUX, input={**QUICK, "seed": 5})
    fine.wait()
    assert fine.status == "succeeded", fine.error


def test_a_job_past_the_time_limit_fails_with_the_reason(tmp_path, database_url, tiny_models):
    with serve(make_settings(tmp_path, database_url, tiny_models, job_timeout_s=0.5)) as live:
        client = live.new_user().replicate()
        prediction = client.predictions.create(model="black-forest-labs/flux-dev", input=slow_input())
        prediction.wait()
        assert prediction.status == "failed"
        assert "timed out" in prediction.error


def test_accepted_jobs_survive_a_crash(tmp_path, database_url, tiny_models):
    """Kill -9 the server with one job running and two queued: after a restart all three finish."""
    settings = make_settings(tmp_path, database_url, tiny_models)
    port = free_port()
    with studio_process(settings, port) as process:
        from conftest import LiveServer

        caller = LiveServer(f"http://127.0.0.1:{port}", settings, None).new_user()
        http = caller.http()
        running = http.post("/v1/models/black-forest-labs/flux-dev/predictions", json={"input": slow_input()}).json()
        queued = [http.post(f"/v1/models/{FLUX}/predictions", json={"input": {**QUICK, "seed": s}}).json() for s in (1, 2)]
        wait_for(lambda: http.get(f"/v1/predictions/{running['id']}").json()["status"] == "processing")
        process.send_signal(signal.SIGKILL)
        process.wait()
    with studio_process(settings, port):
        client = caller.replicate()
        for prediction in (running, *queued):
            done = wait_for(lambda: _finished(client, prediction["id"]), timeout=120)
            assert done.status == "succeeded", done.error
        restarted = client.predictions.get(running["id"])
        assert "restarted" in restarted.logs


def _finished(client, prediction_id):
    prediction = client.predictions.get(prediction_id)
    return prediction if prediction.status in ("succeeded", "failed", "canceled") else None


def test_a_job_that_keeps_crashing_the_server_is_failed_with_a_reason(tmp_path, database_url, tiny_models):
    from sqlalchemy import update

    from server.db.models import Prediction

    settings = make_settings(tmp_path, database_url, tiny_models, max_attempts=2)
    with serve(settings) as live:
        caller = live.new_user()
        prediction = caller.replicate().predictions.create(model=FLUX, input=QUICK)
        prediction.wait()
        # As if the server had died twice while running it:
        with live.studio.db.system() as session:
            session.execute(update(Prediction).where(Prediction.id == prediction.id).values(status="processing", attempts=2))
            session.commit()
    with serve(settings) as live:
        caller.url = live.url  # same database and token, new port
        failed = caller.replicate().predictions.get(prediction.id)
        assert failed.status == "failed"
        assert "server stopped while this prediction was running" in failed.error


def test_the_api_starts_without_importing_torch():
    code = "import sys, server.app; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert result.stdout.split() == ["False", "False"]
