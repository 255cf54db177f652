"""Settings, read once from `TRACKER_*` environment variables and passed down."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifications.i18n import LANGUAGES

DEFAULT_SQLITE_PATH = Path("data") / "tracker.sqlite3"
MAX_RATE_WAIT_S = 10
"""The longest a delivery waits in the dispatcher for its endpoint's rate; a lease must outlast it."""


_QUIET_HOURS = re.compile(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d")


class SettingsError(ValueError):
    """An environment variable holds a value tracker cannot use."""


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _served_at(host: str, port: int) -> str:
    """The address `tracker serve` answers on, for links when no public address is configured."""
    reachable = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104 (compared, not bound)
    return f"http://[{reachable}]:{port}" if ":" in reachable else f"http://{reachable}:{port}"


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite://{DEFAULT_SQLITE_PATH}"
    """`sqlite://PATH` (WAL mode is switched on) or `postgres://user@host:port/db`."""
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"
    """Where customers reach tracker; status-page links in API responses start with it. Unset, it follows
    TRACKER_HOST and TRACKER_PORT."""
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
    dispatcher_enabled: bool = True
    """Run the notifications dispatcher in this process (it may be off in some processes of a fleet)."""
    dispatcher_sweep_s: int = 5
    """The dispatcher looks for due deliveries this often, besides when a commit queued some."""
    dispatcher_lease_s: int = 300
    """A claimed delivery is another process's to take this long after a dispatcher died holding it."""
    smtp_host: str = ""
    """Unset, emails go to the dev mailbox in the database (`/dev/mailbox`) instead of an SMTP server."""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    """`starttls`, `tls` or `none`: explicit, never upgraded only when the server offers it."""
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_timeout_s: int = 30
    smtp_connections: int = 8
    """Connections a process keeps to the SMTP server at most (sends beyond wait for one of them)."""
    mail_from: str = "tracker <tracker@tracker.localhost>"
    staff_alert_emails: str = ""
    """Comma-separated addresses that hear about jobs at risk or stuck, and get the morning summary."""
    staff_time_zone: str = ""
    """The IANA time zone of staff: the dashboard shows times in it and the morning summary is due at the
    end of quiet hours in it (in UTC when unset). Unset, a job's page uses its workflow calendar's
    zone and the board the zone all current workflows' calendars share (UTC when they differ)."""
    staff_language: str = "en"
    """The language (en, fr, nl or de) of emails to staff and webhook owners: alerts, the morning
    summary, customers' questions, endpoint notices. Their times are in `staff_time_zone` (UTC unset)."""
    email_fold_s: int = 120
    """Stage changes of one job within this many seconds go out as one email."""
    estimate_email_interval_s: int = 86_400
    """At most one estimate-change email per job and contact in this many seconds."""
    quiet_hours: str = "21:00-08:00"
    """In the contact's time zone, non-urgent email waits until they end; empty for none."""
    webhook_allow_http: bool = False
    """Allow `http://` webhook URLs (HTTPS only otherwise)."""
    webhook_allowed_networks: str = ""
    """Comma-separated CIDRs webhooks may reach although private (trusted deployments and tests)."""
    webhook_secret_rotation_s: int = 86_400
    """After a rotation the old webhook secret keeps signing beside the new one this long."""
    secret_key: str = field(default="", repr=False)
    """Signs the customer pages' form tokens (at least 32 characters). Unset, each process makes its own at
    start, so a form works only against the process that served it: set one value for a whole fleet."""
    status_poll_s: int = 20
    """How often an open status page asks whether its job changed."""
    page_requests_per_minute: int = 120
    """Per client address, on the public customer pages (status, account, their forms and files)."""
    session_max_age_s: int = 28_800
    """A staff dashboard session ends this long after sign-in (8 hours)."""

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
        if "public_base_url" not in values and {"host", "port"} & values.keys():
            values["public_base_url"] = _served_at(values.get("host", cls.host), values.get("port", cls.port))
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
        for name in (
            "recompute_interval_s",
            "refit_interval_s",
            "recompute_batch_size",
            "smtp_timeout_s",
            "smtp_connections",
            "estimate_email_interval_s",
            "status_poll_s",
            "page_requests_per_minute",
            "dispatcher_sweep_s",
            "session_max_age_s",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"TRACKER_{name.upper()} must be positive")
        for name in ("email_fold_s", "webhook_secret_rotation_s"):
            if getattr(self, name) < 0:
                raise SettingsError(f"TRACKER_{name.upper()} must not be negative")
        if self.dispatcher_lease_s <= MAX_RATE_WAIT_S:
            raise SettingsError(f"TRACKER_DISPATCHER_LEASE_S must be more than {MAX_RATE_WAIT_S}")
        if self.smtp_security not in {"starttls", "tls", "none"}:
            raise SettingsError("TRACKER_SMTP_SECURITY must be starttls, tls or none")
        if not 1 <= self.smtp_port <= 65535:
            raise SettingsError("TRACKER_SMTP_PORT must be between 1 and 65535")
        try:
            self.webhook_networks  # noqa: B018 - parsed for its errors
        except ValueError as error:
            raise SettingsError(f"TRACKER_WEBHOOK_ALLOWED_NETWORKS: {error}") from None
        if self.secret_key and len(self.secret_key) < 32:
            raise SettingsError("TRACKER_SECRET_KEY must be at least 32 characters")
        if self.staff_time_zone:
            try:
                ZoneInfo(self.staff_time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise SettingsError(
                    f"TRACKER_STAFF_TIME_ZONE must name a time zone such as Europe/Paris, "
                    f"not {self.staff_time_zone!r}"
                ) from None
        if self.staff_language not in LANGUAGES:
            raise SettingsError(f"TRACKER_STAFF_LANGUAGE must be one of {', '.join(LANGUAGES)}")
        if self.quiet_hours and not _QUIET_HOURS.fullmatch(self.quiet_hours):
            raise SettingsError("TRACKER_QUIET_HOURS must look like 21:00-08:00, or be empty")

    @property
    def staff_zone(self) -> ZoneInfo:
        """Where staff emails' times are shown and the morning summary is timed."""
        return ZoneInfo(self.staff_time_zone or "UTC")

    @property
    def webhook_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        cidrs = (cidr.strip() for cidr in self.webhook_allowed_networks.split(","))
        return tuple(ip_network(cidr) for cidr in cidrs if cidr)

    @property
    def staff_alert_addresses(self) -> tuple[str, ...]:
        return tuple(address.strip() for address in self.staff_alert_emails.split(",") if address.strip())

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite://")
