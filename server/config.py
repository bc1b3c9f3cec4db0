"""Settings: environment (prefix STUDIO_), a .env file, then CLI flags on top."""

from __future__ import annotations

import json
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STUDIO_", env_file=".env", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = None  # default: SQLite file inside data_dir
    models_dir: Path = Path("models")
    manifest: Path = REPO_ROOT / "models" / "manifest.yaml"
    public_url: str | None = None  # absolute base of output URLs; default: the request's own base
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    model_memory_gb: float | None = None  # default: 90% of GPU memory, or half of RAM on CPU

    secret_key: str | None = None  # signs file URLs; default: generated once into data_dir
    jwt_secret: str | None = None  # Supabase-style HS256 JWTs, when set
    token_cache_s: float = 10.0  # who a token belongs to is remembered this long (revocations lag by it)
    file_url_ttl_s: int = 24 * 3600

    cors_origins: Annotated[list[str], NoDecode] = []
    rate_limit_per_minute: int = 120
    max_queued_jobs_per_user: int = 16
    max_body_bytes: int = 1 << 20  # JSON bodies
    max_upload_bytes: int = 100 << 20  # /v1/files

    job_timeout_s: float = 600.0
    max_batch_size: int = 4
    # Models loaded at start, before the first job, so the first request does not wait for them.
    preload: Annotated[list[str], NoDecode] = []
    # Hosted jobs wait on the network, not on the device: this many run at once.
    hosted_concurrency: int = Field(4, ge=1)
    max_attempts: int = 2  # a job interrupted by a crash is run again this many times in all
    # Hosted fallback for local models that are not installed, e.g. {"flux-dev": "dall-e-3"}.
    fallbacks: dict[str, str] = {}

    openai_api_key: str | None = Field(None, validation_alias=AliasChoices("STUDIO_OPENAI_API_KEY", "OPENAI_API_KEY"))
    openai_base_url: str = Field(
        "https://api.openai.com/v1", validation_alias=AliasChoices("STUDIO_OPENAI_BASE_URL", "OPENAI_BASE_URL")
    )
    elevenlabs_api_key: str | None = Field(
        None, validation_alias=AliasChoices("STUDIO_ELEVENLABS_API_KEY", "ELEVENLABS_API_KEY")
    )

    @field_validator("cors_origins", "preload", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        # STUDIO_CORS_ORIGINS="https://a.example,https://b.example" (or a JSON list)
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                return json.loads(value)
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'studio.db').resolve()}"

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @cached_property
    def signing_key(self) -> bytes:
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip().encode()
