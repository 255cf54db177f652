"""Settings, read once from `TRACKER_*` environment variables and passed down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

DEFAULT_SQLITE_PATH = Path("data") / "tracker.sqlite3"


class SettingsError(ValueError):
    """An environment variable holds a value tracker cannot use."""


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite://{DEFAULT_SQLITE_PATH}"
    """`sqlite://PATH` (WAL mode is switched on) or `postgres://user@host:port/db`."""
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"
    """Where customers reach tracker; status-page links in API responses start with it."""
    metrics_public: bool = True
    """Serve /metrics without a key; when false it needs an admin key."""
    api_docs_public: bool = True
    """Serve the OpenAPI document and docs page at /schema without a key."""
    max_body_bytes: int = 1_048_576
    log_level: str = "INFO"
    log_json: bool = True
    scheduler_enabled: bool = True
    recompute_interval_s: int = 300
    refit_interval_s: int = 3600
    recompute_batch_size: int = 1000
    shutdown_grace_s: int = 20
    over_budget_tolerance: Decimal = Decimal("0.05")
    """A job is over budget when its projected cost (P50) exceeds the quote by more than this fraction."""
    templates_dir: Path = field(default_factory=lambda: Path(__file__).resolve().parent.parent / "templates")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from `TRACKER_<FIELD>` variables; malformed values fail fast."""
        values: dict[str, Any] = {}
        for spec in fields(cls):
            name = f"TRACKER_{spec.name.upper()}"
            raw = environ.get(name)
            if raw is None:
                continue
            kind = spec.type if isinstance(spec.type, str) else spec.type.__name__
            if kind == "bool":
                values[spec.name] = _parse_bool(name, raw)
            elif kind == "int":
                try:
                    values[spec.name] = int(raw)
                except ValueError as error:
                    raise SettingsError(f"{name} must be a whole number, not {raw!r}") from error
            elif kind == "Path":
                values[spec.name] = Path(raw)
            elif kind == "Decimal":
                try:
                    values[spec.name] = Decimal(raw.strip())
                except InvalidOperation as error:
                    raise SettingsError(f"{name} must be a decimal number, not {raw!r}") from error
            else:
                values[spec.name] = raw
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.database_url.startswith(("sqlite://", "postgres://", "postgresql://", "asyncpg://")):
            raise SettingsError(
                "TRACKER_DATABASE_URL must start with sqlite:// or postgres:// (or postgresql://)"
            )
        if not 1 <= self.port <= 65535:
            raise SettingsError("TRACKER_PORT must be between 1 and 65535")
        if self.shutdown_grace_s < 0:
            raise SettingsError("TRACKER_SHUTDOWN_GRACE_S must not be negative")
        if self.max_body_bytes <= 0:
            raise SettingsError("TRACKER_MAX_BODY_BYTES must be positive")
        if not (self.over_budget_tolerance.is_finite() and self.over_budget_tolerance >= 0):
            raise SettingsError("TRACKER_OVER_BUDGET_TOLERANCE must be a fraction >= 0, such as 0.05")
        for name in ("recompute_interval_s", "refit_interval_s", "recompute_batch_size"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"TRACKER_{name.upper()} must be positive")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite://")
