"""Device lane: queued 1024x1024 images per second, outputs saved on the device lane vs beside it.

After a batch is generated, its images are encoded (PNG), thumbnailed (WebP), written to disk and
recorded. The runner does that on a saver thread while the device lane starts the next batch
(`JobRunner.pipelined`, on by default); with it off, the device waits for every save. Same live
server, same tiny FLUX.1 [schnell], same jobs: ROUNDS rounds alternate the two modes, each
queuing JOBS predictions (1024x1024, 1 step, batches of up to 4, seeds differ) at once and
timing from the first create to the last `succeeded`.

On this CPU-only box generation and encoding share the same two cores, so the figure understates
what a GPU box gains, where the device sits idle while the CPU encodes. `save share` is the time
the saver spent per image over the whole time per image with saving inline: the most a GPU can
gain is about that.

Run: .venv/bin/python benchmarks/device_lane.py   (about 2 minutes on 2 CPU cores)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FLUX_SCHNELL, build_tiny_models, live_server, machine_line, make_settings, p50, temp_dir

JOBS = 16
ROUNDS = 4
INPUT = {"prompt": "a harbour town at noon, detailed", "width": 1024, "height": 1024, "num_inference_steps": 1}


def main() -> None:
    import httpx

    with temp_dir() as tmp:
        models_dir = build_tiny_models(tmp / "models", ["flux-schnell"])
        settings = make_settings(tmp / "data", f"sqlite:///{tmp / 'data' / 'studio.db'}", models_dir)
        with live_server(settings) as server:
            runner = server.studio.runner
            caller = server.new_user("bench")
            http = httpx.Client(base_url=server.url, headers=caller.headers, timeout=300)

            save_seconds: list[float] = []
            timed_save = runner._succeed

            def timing_succeed(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return timed_save(*args, **kwargs)
                finally:
                    save_seconds.append(time.perf_counter() - started)

            runner._succeed = timing_succeed  # measure what one image's save costs

            def run_round(seed: int) -> float:
                started = time.perf_counter()
                ids = []
                for index in range(JOBS):
                    response = http.post(
                        f"/v1/models/{FLUX_SCHNELL}/predictions", json={"input": {**INPUT, "seed": seed + index}}
                    )
                    response.raise_for_status()
                    ids.append(response.json()["id"])
                for prediction_id in ids:
                    while (body := http.get(f"/v1/predictions/{prediction_id}").json())["status"] not in (
                        "succeeded",
                        "failed",
                        "canceled",
                    ):
                        time.sleep(0.02)
                    assert body["status"] == "succeeded", body["error"]
                return time.perf_counter() - started

            run_round(0)  # warm-up: loads the model
            rates: dict[bool, list[float]] = {True: [], False: []}
            for round_ in range(ROUNDS):
                for pipelined in (True, False) if round_ % 2 == 0 else (False, True):
                    runner.pipelined = pipelined
                    rates[pipelined].append(JOBS / run_round(1000 * (round_ + 1) + 100 * pipelined))
            runner.pipelined = True

    inline, pipelined = p50(rates[False]), p50(rates[True])
    save_per_image = p50(save_seconds)
    print(f"device_lane: {JOBS} queued jobs of tiny flux-schnell, 1024x1024, 1 step, {ROUNDS} rounds per mode, interleaved")
    print(machine_line())
    print()
    print(f"{'saving':<28}{'images/s (median)':>20}{'rounds':>40}")
    print(f"{'inline, on the device lane':<28}{inline:>20.2f}{'  '.join(f'{r:.2f}' for r in rates[False]):>40}")
    print(f"{'beside it (the default)':<28}{pipelined:>20.2f}{'  '.join(f'{r:.2f}' for r in rates[True]):>40}")
    print()
    print(f"ratio pipelined/inline: {pipelined / inline:.2f}x")
    print(f"save per image (PNG + WebP thumbnail + rows), median: {save_per_image * 1000:.1f} ms")
    print(f"save share of an image's time with saving inline: {save_per_image * inline:.0%}")


if __name__ == "__main__":
    main()
