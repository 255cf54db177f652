"""The `tracker` command: serve, migrate, demo, keys (and the estimation commands)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from signal import SIGINT, SIGTERM
from typing import Any, TypeVar

import click

from tracker.cli.backtest import LogReader, backtest_command, log_options, parse_mapping, reading_lines
from tracker.clock import utc_now
from tracker.settings import Settings, SettingsError

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings.from_env(os.environ)
    except SettingsError as error:
        raise click.ClickException(str(error)) from None


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; an unreachable or unmigrated database is a message, not a traceback."""
    from tortoise.exceptions import OperationalError

    try:
        return asyncio.run(coroutine)
    except OSError as error:  # refused connections; tortoise's DBConnectionError is an OSError too
        raise click.ClickException(f"cannot connect to the database: {error}") from None
    except OperationalError as error:
        if type(error) is not OperationalError:  # integrity errors and the like are bugs: keep the trace
            raise
        raise click.ClickException(
            f"the database refused the command: {error} (has `tracker migrate` been run?)"
        ) from None


@click.group()
def main() -> None:
    """tracker: keeps customers informed about long-running work."""


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default: TRACKER_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: TRACKER_PORT).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the API, the customer pages and the dashboard until stopped; SIGTERM drains requests first."""
    import uvicorn

    from tracker.app import create_app
    from tracker.logs import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, as_json=settings.log_json)
    _require_migrated(settings)
    listening = _listen(host or settings.host, port or settings.port)
    address, bound_port = listening.getsockname()[:2]
    logging.getLogger("tracker").info("serving on http://%s:%s", address, bound_port)
    config = uvicorn.Config(
        create_app(settings),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        proxy_headers=True,
    )
    uvicorn.Server(config).run(sockets=[listening])


def _require_migrated(settings: Settings) -> None:
    """Refuse to start on a database that cannot be reached or lacks migrations: one clear message
    before anything runs, not a server that starts and then fails every request and every tick."""
    from tracker.db.session import pending_migrations

    pending = _run(pending_migrations(settings))
    if pending:
        raise click.ClickException(
            f"the database lacks {len(pending)} migration(s) ({', '.join(pending)}): run `tracker migrate`"
        )


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the app starts: a port already in use is one clear message,
    not a server that starts its scheduler and dispatcher and then falls over."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as error:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {os.strerror(error.errno) if error.errno else error}. "
            "Stop the server already there, "
            "or choose another port with --port or TRACKER_PORT."
        ) from None


@main.command()
def dispatch() -> None:
    """Send queued emails and webhooks until stopped, without serving the API (for processes of a fleet
    that only send); SIGTERM or Ctrl-C finishes the sends in flight and gives the other claims back."""
    from tracker.db.session import open_database
    from tracker.dispatcher import dispatching
    from tracker.logs import configure_logging
    from tracker.services.bootstrap import build_services
    from tracker.services.email_composer import DatabaseEmailComposer

    settings = _settings()
    configure_logging(settings.log_level, as_json=settings.log_json)
    _require_migrated(settings)

    async def run() -> None:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal in (SIGINT, SIGTERM):
            loop.add_signal_handler(signal, stopped.set)
        services = build_services(settings)
        async with (
            open_database(settings),
            dispatching(settings, services, utc_now, DatabaseEmailComposer(settings, services.snapshots)),
        ):
            click.echo("dispatching notifications; stop with Ctrl-C", err=True)
            await stopped.wait()

    _run(run())


@main.command()
def migrate() -> None:
    """Apply the database migrations."""
    from tracker.db.session import apply_migrations

    _run(apply_migrations(_settings()))
    click.echo("database is up to date")


@main.command()
@click.option("--if-empty", is_flag=True, help="Seed only when the database holds no workflow yet.")
def demo(if_empty: bool) -> None:
    """Seed the demo shop and print a fresh staff API key for it."""
    from tracker import demo as demo_data
    from tracker.db.session import open_database
    from tracker.domain.workflow import JobStatus
    from tracker.services import keys
    from tracker.services.bootstrap import build_services
    from tracker.services.mail import dev_mailbox_is_open

    settings = _settings()

    async def seed() -> tuple[str, str | None]:
        async with open_database(settings):
            now = utc_now()
            if not (if_empty and await demo_data.is_seeded()):
                services = build_services(settings)
                statuses = await demo_data.seed(services, now=now)
                await services.estimates.recompute_tick(
                    now=now, tick_start=now, batch_size=settings.recompute_batch_size
                )
                counts = ", ".join(
                    f"{statuses[status]} {status.value.replace('_', ' ')}"
                    for status in JobStatus
                    if statuses[status]
                )
                click.echo(
                    f"demo seeded: {statuses.total()} jobs ({counts}), with finished past jobs to learn from"
                )
            issued = await keys.create_key("demo", "staff", now=now)
            # The key printed at the previous start is revoked: only its digest was kept, so nobody can
            # read it again. A key of another role that someone named "demo" is theirs, not the demo's.
            for old in await keys.list_keys():
                if (
                    (old.name, old.role) == ("demo", "staff")
                    and old.revoked_at is None
                    and old.id != issued.record.id
                ):
                    await keys.revoke_key(old.id, now=now)
            secret = issued.secret
            showcase = await demo_data.showcase_job()
            page = None
            if showcase is not None:
                page = build_services(settings).snapshots.public_url(showcase.public_token)
                page = f"{showcase.reference}'s status page: {page}"
            return secret, page

    secret, status_page = _run(seed())
    base = settings.public_base_url.rstrip("/")
    lines = [
        f"staff API key (shown once): {secret}",
        f"API docs: {base}/schema",
        f"staff dashboard: {base}/dashboard (sign in with the key above)",
        f"try: curl -H 'Authorization: Bearer {secret}' {base}/jobs",
        *([status_page] if status_page else []),
        *([f"emails customers would get: {base}/dev/mailbox"] if dev_mailbox_is_open(settings) else []),
    ]
    click.echo("\n" + "".join(f"  {line}\n" for line in lines))


@main.group()
def keys() -> None:
    """Create, list and revoke API keys."""


def _expiry(value: str | None, now: datetime) -> datetime | None:
    """`--expires`: a number of days from now (`90d`) or an ISO 8601 time with an offset."""
    if value is None:
        return None
    if re.fullmatch(r"\d{1,5}d", value):
        return now + timedelta(days=int(value[:-1]))
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise click.BadParameter(
            "give a number of days (90d) or a time with its offset, such as 2027-01-31T18:00:00+01:00",
            param_hint="--expires",
        )
    return moment


@keys.command("create")
@click.option("--role", type=click.Choice(["admin", "staff", "integrator"]), required=True)
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option(
    "--expires",
    default=None,
    help="When the key stops working: days from now (90d) or a time with an offset (default: never).",
)
def keys_create(role: str, name: str, expires: str | None) -> None:
    """Create a key; it is printed once and stored only as a hash."""
    from tracker.db.session import open_database
    from tracker.domain.errors import InvalidInput
    from tracker.services import keys as key_service

    now = utc_now()
    expires_at = _expiry(expires, now)

    async def create() -> key_service.IssuedKey:
        async with open_database(_settings()):
            return await key_service.create_key(name, role, now=now, expires_at=expires_at)

    try:
        issued = _run(create())
    except InvalidInput as error:
        raise click.ClickException(error.detail) from None
    expiry = "" if issued.record.expires_at is None else f", expires {_minute(issued.record.expires_at)}"
    click.echo(
        f"created key {issued.record.id} ({role}, {issued.record.name}{expiry}); it is shown only now:"
    )
    click.echo(issued.secret)


@keys.command("list")
def keys_list() -> None:
    """List keys (never the keys themselves)."""
    from tracker.db.session import open_database
    from tracker.services import keys as key_service

    async def fetch() -> list[Any]:
        async with open_database(_settings()):
            return await key_service.list_keys()

    rows = _run(fetch())
    now = utc_now()
    click.echo(
        f"{'ID':>4}  {'ROLE':<10}  {'PREFIX':<12}  {'STATE':<8}  {'EXPIRES':<17}  {'LAST USED':<17}  NAME"
    )
    for row in rows:
        state = "active"
        if row.revoked_at:
            state = "revoked"
        elif row.expires_at is not None and row.expires_at <= now:
            state = "expired"
        click.echo(
            f"{row.id:>4}  {row.role:<10}  {row.prefix:<12}  {state:<8}  {_minute(row.expires_at):<17}  "
            f"{_minute(row.last_used_at):<17}  {row.name}"
        )


def _minute(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


@keys.command("revoke")
@click.argument("key_id", type=int)
def keys_revoke(key_id: int) -> None:
    """Revoke a key by its id; requests with it fail from now on."""
    from tracker.db.session import open_database
    from tracker.domain.errors import Conflict, NotFound
    from tracker.services import keys as key_service

    async def revoke() -> None:
        async with open_database(_settings()):
            await key_service.revoke_key(key_id, now=utc_now())

    try:
        _run(revoke())
    except (NotFound, Conflict) as error:
        raise click.ClickException(error.detail) from None
    click.echo(f"revoked key {key_id}")


@main.command()
@click.option("--workflow", "workflow_key", default=None, help="Refit only this workflow (default: all).")
def refit(workflow_key: str | None) -> None:
    """Refit the history models now (the scheduler also does it every TRACKER_REFIT_INTERVAL_S)."""
    from tracker.db.session import open_database
    from tracker.services.bootstrap import build_services

    settings = _settings()

    async def run() -> list[str]:
        async with open_database(settings):
            service = build_services(settings).estimates
            if workflow_key is None:
                return await service.refit_all(now=utc_now())
            fitted = await service.refit(workflow_key, now=utc_now())
            return [fitted.key]

    for key in _run(run()):
        click.echo(f"refitted {key}")


@main.command("import-history")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--workflow", "workflow_key", required=True, help="The workflow whose history this is.")
@click.option(
    "--map",
    "pairs",
    multiple=True,
    metavar="ACTIVITY=STAGE",
    help="Map an activity to a stage key (repeatable); others must match a stage key.",
)
@log_options
def import_history(
    log: Path,
    workflow_key: str,
    pairs: tuple[str, ...],
    log_reader: LogReader,
) -> None:
    """Load an event log's cases (CSV, XES or XES.gz) as finished jobs of a workflow, then refit it."""
    from tracker.db.session import open_database
    from tracker.domain.errors import DomainError
    from tracker.services.bootstrap import build_services
    from tracker.services.imports import import_history as run_import

    events = log_reader.read(log)
    mapping = parse_mapping(pairs)

    settings = _settings()

    async def run() -> str:
        async with open_database(settings):
            report = await run_import(events, workflow_key, mapping=mapping, now=utc_now())
            fitted = await build_services(settings).estimates.refit(workflow_key, now=utc_now())
            return (
                f"imported {report.cases} cases ({report.visits} stage visits); "
                f"{report.skipped} imported before were left as they were\nrefitted {fitted.key}"
            )

    try:
        click.echo("\n".join([*reading_lines(events), _run(run())]))
    except DomainError as error:
        raise click.ClickException(error.detail) from None


main.add_command(backtest_command)
