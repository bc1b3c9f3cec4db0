"""History pages: GET /generations latency with 100,000 generations for one user, SQLite vs PostgreSQL.

Set-up, per backend: a fresh database (a SQLite file in a temp folder; a new PostgreSQL
database, dropped at the end), migrated with server.db.migrate.upgrade, then 100,000
creative_generations rows for user "heavy" and 20,000 for user "other", bulk-inserted with
SQLAlchemy core (executemany of insert() in chunks of 10,000 rows, one transaction). Rows
look like the worker's: 70% image, 15% audio, 10% music, 5% video; real-sized settings and
metadata JSON; a result storage key each, a thumbnail key for images; one every 2.5 s over ~3 days, with
groups of 4 sharing a timestamp (like a 4-image batch) so the id tie-break of the cursor is used.
On PostgreSQL the tables then get VACUUM ANALYZE, which autovacuum would do on its own after
such a load; SQLite gets nothing (the server never runs ANALYZE there).

Then, through a live server (uvicorn in a thread, loopback, one kept-alive httpx client, the
heavy user's token, sequential requests), per backend:

  first page      GET /generations?limit=50, 100 times (after 5 warm-up requests)
  deep walk       follow next_cursor from the first page through 200 pages (rows 50..10,050)
  far pages       cursors at rows 50,000..97,500 (20 positions, 2,500 apart, x 5 requests)
  type=image      GET /generations?type=image&limit=50, 100 times, then a 100-page cursor walk
  type=video      the same for the rarest type (5% of rows): 50 first pages + a 20-page walk

It prints p50 and p95 per scenario and backend, and the PG/SQLite ratio of the p50s. A request's
time includes auth (a token lookup), the query, signing two URLs per row and JSON encoding. Each
cursor walk is also checked against the database's own ORDER BY created_at DESC, id DESC (no row
skipped or repeated, ties included), and the result printed.

Run: .venv/bin/python benchmarks/history_pages.py   (about 40 s on 2 CPU cores)
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BACKENDS,
    database,
    live_server,
    machine_line,
    make_settings,
    p50,
    p95,
    temp_dir,
)

HEAVY_ROWS = 100_000
OTHER_ROWS = 20_000
CHUNK = 10_000
PAGE = 50
FIRST_PAGE_REPEATS = 100
DEEP_PAGES = 200
FAR_POSITIONS = range(50_000, 100_000, 2_500)  # 20 positions
FAR_REPEATS = 5
TYPES = (("image", 0.70), ("audio", 0.15), ("music", 0.10), ("video", 0.05))
MODELS = {
    "image": ["flux-schnell", "flux-dev", "sdxl", "sd15", "dreamshaper"],
    "audio": ["elevenlabs-tts"],
    "music": ["musicgen"],
    "video": ["ltx-video"],
}
EXTENSIONS = {"image": "png", "audio": "mp3", "music": "wav", "video": "mp4"}
CONTENT_TYPES = {"image": "image/png", "audio": "audio/mpeg", "music": "audio/wav", "video": "video/mp4"}
WORDS = [
    "a", "red", "fox", "lighthouse", "at", "dusk", "castle", "on", "a", "hill",
    "neon", "city", "rain", "portrait", "of", "an", "astronaut", "oil", "painting", "watercolor",
]  # fmt: skip


def make_rows(user_id: uuid.UUID, count: int, newest: datetime, rng: random.Random) -> list[dict]:
    kinds = rng.choices([t for t, _ in TYPES], weights=[w for _, w in TYPES], k=count)
    rows = []
    for i, kind in enumerate(kinds):
        created = newest - timedelta(seconds=2.5 * (i // 4 * 4))  # groups of 4 share a timestamp
        digest = hashlib.sha256(f"{user_id}-{i}".encode()).hexdigest()
        seed = rng.randrange(2**32)
        prediction_id = digest[:26]
        model = rng.choice(MODELS[kind])
        settings = (
            {"width": 1024, "height": 1024, "dimensions": "1024x1024", "steps": 4, "guidance": 0.0, "seed": seed,
             "num_outputs": 1, "output_format": "png", "output_quality": 90}
            if kind == "image"
            else {"duration": rng.randint(5, 30), "seed": seed}
        )
        rows.append(
            {
                "id": uuid.uuid4(),
                "user_id": user_id,
                "type": kind,
                "prompt": " ".join(rng.choices(WORDS, k=rng.randint(5, 14))),
                "model": model,
                "settings": settings,
                "result_url": f"{digest[:2]}/{digest}.{EXTENSIONS[kind]}",
                "thumbnail_url": f"{digest[2:4]}/{digest[::-1]}.webp" if kind == "image" else None,
                "metadata": {
                    "seed": seed, "width": 1024, "height": 1024, "prediction_id": prediction_id,
                    "model_name": f"studio/{model}", "runs_on": model, "fallback": False, "tiny_model": False,
                    "content_type": CONTENT_TYPES[kind], "bytes": rng.randint(200_000, 2_000_000),
                    "predict_time": round(rng.uniform(0.5, 8), 4),
                },
                "prediction_id": prediction_id,
                "created_at": created,
                "updated_at": created,
            }
        )
    return rows


def load(url: str) -> tuple[uuid.UUID, float]:
    """Migrate, make two users, bulk-insert their generations. Returns the heavy user's id and the seconds taken."""
    from sqlalchemy import create_engine, insert, text

    from server.auth import create_user
    from server.db import migrate
    from server.db.models import CreativeGeneration
    from server.db.session import Database

    migrate.upgrade(url)
    db = Database(url)
    heavy = create_user(db, "heavy").id
    other = create_user(db, "other").id
    db.dispose()

    rng = random.Random(1)
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    engine = create_engine(url)
    table = CreativeGeneration.__table__
    with engine.begin() as conn:
        for user_id, count in ((heavy, HEAVY_ROWS), (other, OTHER_ROWS)):
            rows = make_rows(user_id, count, now, rng)
            for start in range(0, count, CHUNK):
                conn.execute(insert(table), rows[start : start + CHUNK])
    if url.startswith("postgresql"):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE creative_generations"))
    engine.dispose()
    return heavy, time.perf_counter() - started


def cursors_at(server, user_id: uuid.UUID, positions) -> list[str]:
    """The cursor the server would hand out after row `position` (newest first)."""
    from sqlalchemy import select

    from server.api import pagination
    from server.db.models import CreativeGeneration as G

    cursors = []
    with server.studio.db.system() as session:
        for position in positions:
            row = session.execute(
                select(G.created_at, G.id)
                .where(G.user_id == user_id)
                .order_by(G.created_at.desc(), G.id.desc())
                .offset(position - 1)
                .limit(1)
            ).one()
            cursors.append(pagination.encode(row.created_at, row.id))
    return cursors


def newest_ids(server, user_id: uuid.UUID, kind: str | None, count: int) -> list[str]:
    """The user's first `count` generation ids, newest first, straight from the database."""
    from sqlalchemy import select

    from server.db.models import CreativeGeneration as G

    query = select(G.id).where(G.user_id == user_id)
    if kind:
        query = query.where(G.type == kind)
    with server.studio.db.system() as session:
        return [str(i) for i in session.scalars(query.order_by(G.created_at.desc(), G.id.desc()).limit(count))]


def measure(backend: str, tmp: Path) -> dict:
    import httpx

    from server.auth import issue_token
    from server.db.session import Database

    results: dict[str, list[float]] = {}
    checks: list[bool] = []
    with database(backend, tmp / backend) as url:
        heavy, load_s = load(url)
        db = Database(url)
        token = issue_token(db, heavy)
        db.dispose()
        settings = make_settings(
            tmp / backend / "data", url, tmp / "models", rate_limit_per_minute=1_000_000
        )
        with live_server(settings) as server, httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:

            def get(params: dict) -> tuple[float, dict]:
                t0 = time.perf_counter()
                response = client.get("/generations", params=params)
                elapsed = time.perf_counter() - t0
                if response.status_code != 200:
                    status, text = response.status_code, response.text[:300]
                    raise RuntimeError(f"{backend}: GET /generations {params} -> {status} {text}")
                return elapsed, response.json()

            def repeat(params: dict, times: int) -> tuple[list[float], dict]:
                samples, body = [], {}
                for _ in range(times):
                    elapsed, body = get(params)
                    samples.append(elapsed)
                return samples, body

            def walk(params: dict, first: dict, pages: int) -> list[float]:
                """Follow next_cursor for `pages` pages; check the walk against the database's own order."""
                samples, body, ids = [], first, [item["id"] for item in first["items"]]
                for _ in range(pages):
                    elapsed, body = get({**params, "cursor": body["next_cursor"]})
                    samples.append(elapsed)
                    ids += [item["id"] for item in body["items"]]
                expected = newest_ids(server, heavy, params.get("type"), len(ids))
                checks.append(ids == expected and len(set(ids)) == PAGE * (pages + 1))
                return samples

            repeat({"limit": PAGE}, 5)  # warm-up: connections, caches, first imports
            results["first page"], first = repeat({"limit": PAGE}, FIRST_PAGE_REPEATS)
            results["deep walk (200 pages)"] = walk({"limit": PAGE}, first, DEEP_PAGES)
            far = []
            for cursor in cursors_at(server, heavy, FAR_POSITIONS):
                far += repeat({"limit": PAGE, "cursor": cursor}, FAR_REPEATS)[0]
            results["far pages (rows 50k-97.5k)"] = far
            results["type=image first page"], image = repeat({"limit": PAGE, "type": "image"}, FIRST_PAGE_REPEATS)
            results["type=image walk (100 pages)"] = walk({"limit": PAGE, "type": "image"}, image, 100)
            results["type=video first page"], video = repeat({"limit": PAGE, "type": "video"}, 50)
            results["type=video walk (20 pages)"] = walk({"limit": PAGE, "type": "video"}, video, 20)
    return {"load_s": load_s, "latency": results, "walks_ok": all(checks)}


def main() -> None:
    with temp_dir() as tmp:
        (tmp / "models").mkdir()  # no models needed: the history endpoints never load one
        measured = {backend: measure(backend, tmp) for backend in BACKENDS}

    rows = HEAVY_ROWS + OTHER_ROWS
    print(
        f"history_pages: GET /generations, {HEAVY_ROWS:,} rows for the user + {OTHER_ROWS:,} for another, "
        f"limit={PAGE}"
    )
    print(f"machine: {machine_line()}")
    for backend in BACKENDS:
        load_s = measured[backend]["load_s"]
        walks = "match" if measured[backend]["walks_ok"] else "DO NOT MATCH"
        print(
            f"{backend}: inserted {rows:,} rows in {load_s:.1f} s ({rows / load_s:,.0f} rows/s); "
            f"cursor walks {walks} the database's newest-first order"
        )
    print()
    columns = "".join(f"{b + ' p50':>16}{b + ' p95':>16}" for b in BACKENDS)
    header = f"{'scenario':<30}{columns}{'PG/SQLite p50':>15}"
    print(header)
    for scenario in measured[BACKENDS[0]]["latency"]:
        line = f"{scenario:<30}"
        medians = {}
        for backend in BACKENDS:
            samples = measured[backend]["latency"][scenario]
            medians[backend] = p50(samples)
            line += f"{p50(samples) * 1000:13.2f} ms{p95(samples) * 1000:13.2f} ms"
        line += f"{medians['postgresql'] / medians['sqlite']:14.2f}x"
        print(line)


if __name__ == "__main__":
    main()
