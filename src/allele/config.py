"""Settings: environment variables with the ``ALLELE_`` prefix (``__`` for nesting) and an optional
``allele.toml`` in the working directory (or the file named by ``ALLELE_CONFIG``).

Precedence, highest first: explicit keyword arguments, environment, ``allele.toml``, defaults.

Example::

    ALLELE_STORE_URL=postgresql+psycopg://localhost/allele
    ALLELE_OBSERVE__SAMPLE_INTERVAL_S=0.5
    ALLELE_LLM__BASE_URL=http://127.0.0.1:8000/v1
    ALLELE_NOTIFY__WEBHOOK_URL=http://127.0.0.1:9000/hook
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from allele.errors import ConfigError

DEFAULT_DATA_DIR = Path(".allele")


class ObserveSettings(BaseModel):
    """Telemetry defaults."""

    sample_interval_s: float = Field(1.0, gt=0)
    ring_size: int = Field(4096, ge=16)
    flush_interval_s: float = Field(0.5, gt=0)
    """How often Telemetry writes its points to its sink (the store): the live dashboards see a
    point at most this late (plus their poll)."""
    inbox_limit: int = Field(200_000, ge=1)
    """The most events Telemetry holds between drains (the background thread drains every
    0.25 s). When recording outruns draining, the oldest waiting events are dropped and counted
    (``allele_telemetry_inbox_dropped_total``); 200,000 events is 0.1-0.2 s of the record
    path's saturated rate (``benchmarks/telemetry_load.py``) and some tens of MB of queued stats
    objects."""
    alert_rules: Path | None = None


class NotifySettings(BaseModel):
    """Where alert notifications go (each channel is off until configured) and how the outbox
    delivers them (see ``allele.observe.outbox``)."""

    webhook_url: str | None = None
    slack_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_from: str = "allele@localhost"
    smtp_to: list[str] = Field(default_factory=list)
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = None
    alertmanager_url: str | None = None
    outbox_limit: int = Field(10_000, ge=1)
    max_attempts: int = Field(50, ge=1)
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)


class LLMSettings(BaseModel):
    """Defaults for NLPAgent providers."""

    provider: str = "llamacpp"
    model: str | None = None
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0)


class BenchSettings(BaseModel):
    """Benchmark runner limits."""

    max_cells: int = Field(100_000, ge=1)
    """The most cells one spec may define (checked from the axes' sizes before any cell is
    built: three axes of 100 values already make 10^6 cells)."""


class TrackingSettings(BaseModel):
    """MLflow defaults."""

    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "allele"


class Settings(BaseSettings):
    """All of Allele's settings in one validated object."""

    model_config = SettingsConfigDict(
        env_prefix="ALLELE_",
        env_nested_delimiter="__",
        toml_file="allele.toml",
        extra="forbid",
    )

    data_dir: Path = DEFAULT_DATA_DIR
    store_url: str | None = None
    observe: ObserveSettings = ObserveSettings()
    notify: NotifySettings = NotifySettings()
    llm: LLMSettings = LLMSettings()
    tracking: TrackingSettings = TrackingSettings()
    bench: BenchSettings = BenchSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("ALLELE_CONFIG", "allele.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    @property
    def resolved_store_url(self) -> str:
        """The result store URL: ``store_url`` or a SQLite file ``<data_dir>/results.db``."""
        if self.store_url:
            return self.store_url
        return f"sqlite:///{self.data_dir / 'results.db'}"


def load_settings(**overrides: Any) -> Settings:
    """Build :class:`Settings`, turning pydantic's errors into one readable ConfigError."""
    try:
        return Settings(**overrides)
    except PydanticValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            parts.append(f"{loc}: {err['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(parts)) from None
