"""Prediction throughput: creates/s and polls/s with 50 concurrent clients, SQLite vs PostgreSQL.

Per backend: a fresh database (a SQLite file in a temp folder; a new PostgreSQL database, dropped
at the end), a live server (uvicorn in a thread of this process, loopback) with the tiny
FLUX.1 [schnell] built into a temp folder, 50 users with a token each, and the per-user limits
raised out of the way (rate_limit_per_minute and max_queued_jobs_per_user set to 10^9).

The load comes from a separate process (so it does not share the server's GIL): 50 asyncio tasks,
one httpx.AsyncClient (one kept-alive connection) and one user each, in a closed loop with no
think time:

    POST /v1/models/black-forest-labs/flux-schnell/predictions   (no Prefer: wait; 256x256, 1 step)
    then GET /v1/predictions/{id} of that prediction, POLLS_PER_CREATE times

for WARMUP_S (not counted) and then DURATION_S seconds. A request counts in the second it
completes in, if inside the measured window. Meanwhile the server's worker generates the queued
images (batches of up to 4) on the same cores, as it would in production.

Printed per backend: creates/s, polls/s, all requests/s, p50/p95 latency of each (2xx answers
in the window), non-2xx answers and transport errors, `images/s`: images the worker finished
per second while under that load (warm-up included), and `idle`: its rate with no API traffic
(48 images queued at once before the load, after one warm-up image); then the PG/SQLite ratios.
The load generator shares the machine's cores with the server, so on a small box these are
figures for the whole machine, not for the server alone.

Run: .venv/bin/python benchmarks/prediction_throughput.py [sqlite|postgresql]   (about 1 minute for both)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BACKENDS,
    FLUX_SCHNELL,
    build_tiny_models,
    database,
    live_server,
    machine_line,
    make_settings,
    p50,
    p95,
    temp_dir,
)

CLIENTS = 50
POLLS_PER_CREATE = 4
WARMUP_S = 3.0
DURATION_S = 20.0
CREATE_PATH = f"/v1/models/{FLUX_SCHNELL}/predictions"
INPUT = {"prompt": "a paper boat on a pond", "width": 256, "height": 256, "num_inference_steps": 1}
IDLE_JOBS = 48


# -- the load generator (runs in a child process) -----------------------------------------------------


def generate_load(url: str, tokens: list[str], warmup_s: float, duration_s: float) -> dict:
    return asyncio.run(_load(url, tokens, warmup_s, duration_s))


async def _load(url: str, tokens: list[str], warmup_s: float, duration_s: float) -> dict:
    import httpx

    loop = asyncio.get_running_loop()
    begin = loop.time() + warmup_s
    end = begin + duration_s
    latency: dict[str, list[float]] = {"create": [], "poll": []}
    errors: Counter = Counter()

    async def timed(kind: str, request) -> httpx.Response | None:
        t0 = loop.time()
        try:
            response = await request
        except httpx.HTTPError as error:
            errors[f"{kind} {type(error).__name__}"] += 1
            return None
        t1 = loop.time()
        if begin <= t1 <= end:
            if response.is_success:
                latency[kind].append(t1 - t0)
            else:
                errors[f"{kind} HTTP {response.status_code}"] += 1
        return response if response.is_success else None

    async def client(index: int, token: str) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120, limits=limits
        ) as http:
            n = 0
            while loop.time() < end:
                n += 1
                body = {"input": {**INPUT, "prompt": f"client {index} image {n}", "seed": index * 100_000 + n}}
                created = await timed("create", http.post(CREATE_PATH, json=body))
                if created is None:
                    await asyncio.sleep(0.05)
                    continue
                prediction_id = created.json()["id"]
                for _ in range(POLLS_PER_CREATE):
                    if loop.time() >= end:
                        break
                    await timed("poll", http.get(f"/v1/predictions/{prediction_id}"))

    await asyncio.gather(*(client(i, token) for i, token in enumerate(tokens)))
    return {"latency": latency, "errors": dict(errors)}


# -- the server side --------------------------------------------------------------------------------


def measure(backend: str, tmp: Path, models_dir: Path, pool: ProcessPoolExecutor) -> dict:
    import httpx
    from sqlalchemy import func, select

    from server.db.models import Prediction

    with database(backend, tmp / backend) as url:
        settings = make_settings(
            tmp / backend / "data",
            url,
            models_dir,
            rate_limit_per_minute=10**9,
            max_queued_jobs_per_user=10**9,
        )
        with live_server(settings) as server:
            tokens = [server.new_user(f"client-{i}").token for i in range(CLIENTS)]

            def count(status: str) -> int:
                with server.studio.db.system() as session:
                    query = select(func.count()).select_from(Prediction).where(Prediction.status == status)
                    return session.scalar(query)

            # The worker alone, no API load: IDLE_JOBS images queued at once (this also loads and
            # warms the model, as a production server would have it before the clock starts).
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {tokens[0]}"}) as http:
                http.post(CREATE_PATH, json={"input": {**INPUT, "seed": 0}}, headers={"Prefer": "wait"})
                t0 = time.perf_counter()
                for seed in range(1, IDLE_JOBS + 1):
                    http.post(CREATE_PATH, json={"input": {**INPUT, "seed": seed}}).raise_for_status()
                while count("succeeded") < IDLE_JOBS + 1 and time.perf_counter() - t0 < 60:
                    time.sleep(0.01)
                idle_rate = IDLE_JOBS / (time.perf_counter() - t0)
            done_before = count("succeeded")

            result = pool.submit(generate_load, server.url, tokens, WARMUP_S, DURATION_S).result()
            with server.studio.db.system() as session:
                statuses = dict(
                    session.execute(select(Prediction.status, func.count()).group_by(Prediction.status)).all()
                )
    result["statuses"] = statuses
    result["idle_images_per_s"] = idle_rate
    result["images_under_load"] = statuses.get("succeeded", 0) - done_before
    return result


def main() -> None:
    backends = tuple(sys.argv[1:]) or BACKENDS  # e.g. `prediction_throughput.py sqlite`
    context = multiprocessing.get_context("spawn")
    with temp_dir() as tmp, ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        pool.submit(time.sleep, 0).result()  # start the load process before any server runs
        models_dir = build_tiny_models(tmp / "models", ["flux-schnell"])
        measured = {backend: measure(backend, tmp, models_dir, pool) for backend in backends}

    print(
        f"prediction_throughput: {CLIENTS} concurrent clients (asyncio + httpx, separate process), "
        f"1 create then {POLLS_PER_CREATE} polls, {DURATION_S:g} s after {WARMUP_S:g} s warm-up"
    )
    print(f"machine: {machine_line()}; worker on the same cores: tiny flux-schnell, 256x256, 1 step")
    print()
    print(f"{'backend':<11}{'creates/s':>10}{'polls/s':>10}{'req/s':>9}{'create p50':>12}{'create p95':>12}"
          f"{'poll p50':>11}{'poll p95':>11}{'images/s':>10}{'idle':>7}  errors")
    rates = {}
    for backend in backends:
        result = measured[backend]
        creates, polls = result["latency"]["create"], result["latency"]["poll"]
        rates[backend] = (len(creates) / DURATION_S, len(polls) / DURATION_S)
        images = result["images_under_load"] / (WARMUP_S + DURATION_S)
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(result["errors"].items())) or "none"
        print(
            f"{backend:<11}{rates[backend][0]:10.1f}{rates[backend][1]:10.1f}{sum(rates[backend]):9.1f}"
            f"{p50(creates) * 1000:9.1f} ms{p95(creates) * 1000:9.1f} ms"
            f"{p50(polls) * 1000:8.1f} ms{p95(polls) * 1000:8.1f} ms{images:10.1f}"
            f"{result['idle_images_per_s']:7.1f}  {errors}"
        )
    for backend in backends:
        print(f"{backend} predictions by status at the end: {dict(sorted(measured[backend]['statuses'].items()))}")
    if len(rates) < 2:
        return
    sqlite, pg = rates["sqlite"], rates["postgresql"]
    print()
    print(
        f"ratio PG/SQLite: creates/s {pg[0] / sqlite[0]:.2f}x, polls/s {pg[1] / sqlite[1]:.2f}x, "
        f"req/s {sum(pg) / sum(sqlite):.2f}x"
    )


if __name__ == "__main__":
    main()
