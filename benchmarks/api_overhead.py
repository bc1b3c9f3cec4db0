"""API overhead: one image through the Replicate-compatible API versus the same pipeline called directly.

What it measures, warm, on CPU, with the tiny random-weight FLUX.1 [schnell] (256x256, 4 steps,
seed 42, PNG), built into a temp folder with build_tiny_image_model:

  api       the official `replicate` client's `run("black-forest-labs/flux-schnell", ...)` against
            a live server on loopback (uvicorn in a thread of this process, SQLite in a temp
            folder), plus downloading the image from its signed URL: POST with `Prefer: wait`,
            queue, worker, progress and result rows, PNG + WebP thumbnail to disk, GET of the file.
  provider  server.pipelines.diffusion.DiffusionProvider.predict on the same model folder, loaded
            once in this process: the same pipeline call the worker makes (same args, generator,
            step callback) plus PNG encoding. This is the "direct" baseline of the ratio.
  pipeline  the bare diffusers FluxPipeline __call__ of that provider, same args, no callback and no
            encoding: the floor.

Both sides load once and are warmed up (WARMUP runs each; the server's first run loads the model),
then RUNS rounds are interleaved (order alternating each round), so drift hits all alike.
Median and p95 per path, the api/provider and api/pipeline ratios, and the worker's own
predict_time (from the predictions' metrics) are printed; `same image` checks that the API's PNG
is byte-identical to the direct one.

Run: .venv/bin/python benchmarks/api_overhead.py   (about 20 s on 2 CPU cores)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    FLUX_SCHNELL,
    build_tiny_models,
    live_server,
    machine_line,
    make_settings,
    ms,
    p50,
    p95,
    temp_dir,
)

RUNS = 10
WARMUP = 2
SEED = 42
INPUT = {
    "prompt": "a lighthouse on a cliff at dusk, oil painting",
    "width": 256,
    "height": 256,
    "num_inference_steps": 4,
    "seed": SEED,
    "output_format": "png",
}


def main() -> None:
    import httpx
    import replicate
    import torch
    from sqlalchemy import select

    from server.db.models import Prediction
    from server.pipelines.base import Device, RunContext
    from server.pipelines.diffusion import DiffusionProvider
    from server.pipelines.manifest import Manifest

    with temp_dir() as tmp:
        started = time.perf_counter()
        models_dir = build_tiny_models(tmp / "models", ["flux-schnell"])
        build_s = time.perf_counter() - started
        settings = make_settings(tmp / "data", f"sqlite:///{tmp / 'data' / 'studio.db'}", models_dir)

        # -- direct: the provider the worker would build, on the same folder, device and dtype
        spec = Manifest.load(settings.manifest).resolve("flux-schnell")
        provider = DiffusionProvider(spec, models_dir / "tiny" / "flux-schnell", Device("cpu", torch.float32))
        provider.load()
        validated = DiffusionProvider.validate(spec, INPUT)

        def run_provider() -> bytes:
            return provider.predict([validated], RunContext())[0][0].data

        def run_pipeline() -> None:
            with torch.inference_mode():
                provider.pipe(
                    prompt=[validated.prompt],
                    width=validated.width,
                    height=validated.height,
                    num_inference_steps=validated.steps,
                    guidance_scale=validated.guidance,
                    generator=[torch.Generator("cpu").manual_seed(SEED)],
                )

        with live_server(settings) as server:
            caller = server.new_user("bench")
            client = replicate.Client(api_token=caller.token, base_url=server.url, timeout=120)
            # The client wraps only https: URLs in FileOutput; on http loopback it hands back the
            # signed URL as a string, fetched here on a kept-alive connection as a real client would.
            downloads = httpx.Client(timeout=120)

            def run_api() -> bytes:
                output = client.run(FLUX_SCHNELL, input=INPUT)
                first = output[0]
                if hasattr(first, "read"):
                    return first.read()
                response = downloads.get(str(first))
                response.raise_for_status()
                return response.content

            paths = {"api": run_api, "provider": run_provider, "pipeline": run_pipeline}
            for _ in range(WARMUP):
                for run in paths.values():
                    run()
            api_png, direct_png = run_api(), run_provider()

            times: dict[str, list[float]] = {name: [] for name in paths}
            for round_ in range(RUNS):
                order = list(paths) if round_ % 2 == 0 else list(reversed(paths))
                for name in order:
                    t0 = time.perf_counter()
                    paths[name]()
                    times[name].append(time.perf_counter() - t0)

            with server.studio.db.system() as session:
                predictions = session.scalars(
                    select(Prediction).where(Prediction.user_id == caller.user_id).order_by(Prediction.created_at)
                ).all()
            worker_predict = [p.metrics["predict_time"] for p in predictions[-RUNS:]]
            statuses = {p.status for p in predictions}
            downloads.close()
        provider.unload()

    print(f"api_overhead: tiny flux-schnell, 256x256, 4 steps, seed {SEED}, warm, N={RUNS} interleaved")
    print(f"machine: {machine_line()}, torch {torch.__version__}, {torch.get_num_threads()} torch threads")
    print(f"tiny model built in {build_s:.1f} s; server on SQLite; prediction statuses: {sorted(statuses)}")
    print()
    print(f"{'path':<36} {'median':>11} {'p95':>11}")
    labels = {
        "api": "api (replicate.run + download)",
        "provider": "direct (DiffusionProvider.predict)",
        "pipeline": "pipeline only (FluxPipeline call)",
    }
    for name, label in labels.items():
        print(f"{label:<36} {ms(p50(times[name]))} {ms(p95(times[name]))}")
    print(f"{'  worker predict_time (in api)':<36} {ms(p50(worker_predict))} {ms(p95(worker_predict))}")
    print()
    print(f"ratio api/direct   (median): {p50(times['api']) / p50(times['provider']):.2f}x")
    print(f"ratio api/pipeline (median): {p50(times['api']) / p50(times['pipeline']):.2f}x")
    print(f"api overhead over direct (median): {ms(p50(times['api']) - p50(times['provider'])).strip()}")
    print(f"same image bytes from api and direct: {'yes' if api_png == direct_png else 'no'}")


if __name__ == "__main__":
    main()
