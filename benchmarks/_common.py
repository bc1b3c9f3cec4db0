"""Shared benchmark set-up: temp folders, tiny models, throwaway databases, a live server, users.

Nothing here is imported from tests/: the benchmarks run with the runtime dependencies only
(plus `replicate` for api_overhead.py). Everything is created under temp folders and in
throwaway PostgreSQL databases, and removed on the way out, also on errors and Ctrl-C.

PostgreSQL: STUDIO_BENCH_POSTGRES_URL (default postgresql://root@127.0.0.1:5432/test) must be a
database the benchmark may connect to with the right to CREATE and DROP databases.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# Quiet the model libraries' progress bars and warnings (tiny-model builds and loads).
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


from server.config import Settings
from server.testing import Caller, LiveServer, free_port, live_server, throwaway_postgres_database  # noqa: F401 (used by the benchmarks)

POSTGRES_ADMIN_URL = os.environ.get("STUDIO_BENCH_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")
FLUX_SCHNELL = "black-forest-labs/flux-schnell"


# -- folders, models, databases ---------------------------------------------------------------------


@contextmanager
def temp_dir(prefix: str = "studio-bench-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def build_tiny_models(models_dir: Path, model_ids: Sequence[str] = ("flux-schnell",)) -> Path:
    """Tiny random-weight models in `models_dir/tiny/<id>`, where the server's manager looks."""
    from diffusers.utils import logging as diffusers_logging

    from server.pipelines.tiny_images import build_tiny_image_model

    diffusers_logging.disable_progress_bar()  # "Loading pipeline components" on every load
    for model_id in model_ids:
        build_tiny_image_model(model_id, models_dir / "tiny" / model_id)
    return models_dir


def postgres_database():
    """A fresh, empty PostgreSQL database (SQLAlchemy URL), dropped afterwards."""
    return throwaway_postgres_database(POSTGRES_ADMIN_URL, "studio_bench")


@contextmanager
def database(backend: str, folder: Path) -> Iterator[str]:
    """A fresh database of the given backend: a SQLite file under `folder`, or a PG database."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'data' / 'studio.db'}"
    elif backend == "postgresql":
        with postgres_database() as url:
            yield url
    else:
        raise ValueError(backend)


def make_settings(data_dir: Path, database_url: str, models_dir: Path, **overrides) -> Settings:
    values = {
        "data_dir": data_dir,
        "database_url": database_url,
        "models_dir": models_dir,
        "secret_key": "bench-secret",
        "openai_api_key": None,
        "device": "cpu",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


# -- live server ------------------------------------------------------------------------------------


# free_port, LiveServer, Caller and live_server come from server/testing.py.


# -- figures ----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile, interpolated linearly between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def p50(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: Sequence[float]) -> float:
    return percentile(values, 95)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def machine_line() -> str:
    import platform

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPU cores, "
        f"{platform.machine()}, load average {load}"
    )
