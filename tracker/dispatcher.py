"""Running the notifications dispatcher in a process: inside the app (`tracker serve`), or alone
(`tracker dispatch`, for a fleet whose web processes leave sending to a few others).

The dispatcher wakes when this process's services queued deliveries (`DeliveriesQueued`), on PostgreSQL also
when another process says so (LISTEN/NOTIFY, a hint only), and on its sweep, which alone finds everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta

import asyncpg
from litestar import Litestar

from notifications import Dispatcher, DispatcherSettings, SmtpSender, URLPolicy, WebhookSender
from tracker.clock import Clock
from tracker.services.bootstrap import Services
from tracker.services.email_composer import DatabaseEmailComposer
from tracker.services.mail import email_sender
from tracker.services.outbox import (
    DatabaseDeliveryStore,
    DeferEmail,
    EmailComposer,
    EmailPlan,
    QueuedEmail,
)
from tracker.services.signals import DeliveriesQueued
from tracker.settings import MAX_RATE_WAIT_S, Settings

log = logging.getLogger("tracker.dispatcher")
CHANNEL = "tracker_deliveries"
"""The PostgreSQL NOTIFY channel that tells other processes' dispatchers deliveries were queued."""
GAUGE_INTERVAL_S = 15.0


class HoldEmails:
    """Keeps every email queued (an hour at a time): for benches and tests of webhooks alone."""

    async def compose_batch(self, emails: Sequence[QueuedEmail], now: datetime) -> list[EmailPlan]:
        return [DeferEmail(now + timedelta(hours=1)) for _ in emails]


def settings_of(settings: Settings) -> DispatcherSettings:
    return DispatcherSettings(
        sweep_interval=float(settings.dispatcher_sweep_s),
        lease=timedelta(seconds=settings.dispatcher_lease_s),
        max_rate_wait=float(MAX_RATE_WAIT_S),
    )


def webhook_policy(settings: Settings) -> URLPolicy:
    return URLPolicy(settings.webhook_allow_http, settings.webhook_networks)


@asynccontextmanager
async def dispatching(
    settings: Settings,
    services: Services,
    clock: Clock,
    composer: EmailComposer,
    *,
    dispatcher_settings: DispatcherSettings | None = None,
) -> AsyncIterator[Dispatcher]:
    """Run a dispatcher until the block ends, then stop it (sends in flight finish, other claims are
    released)."""
    store = DatabaseDeliveryStore(
        composer, services.snapshots, staff_addresses=settings.staff_alert_addresses
    )
    dispatcher_settings = dispatcher_settings or settings_of(settings)
    async with AsyncExitStack() as stack:
        # As many connections as sends in flight: a send never waits for the pool (and times out there).
        webhooks = await stack.enter_async_context(
            WebhookSender(webhook_policy(settings), clock, max_connections=dispatcher_settings.max_in_flight)
        )
        email = email_sender(settings)
        if isinstance(email, SmtpSender):
            stack.push_async_callback(email.aclose)
        dispatcher = Dispatcher(
            store,
            webhooks=webhooks,
            email=email,
            clock=clock,
            settings=dispatcher_settings,
        )
        dispatcher.start()
        stack.push_async_callback(dispatcher.stop, float(settings.shutdown_grace_s))
        stack.callback(services.deliveries_queued.subscribe(dispatcher.wake))
        if not settings.is_sqlite:
            await stack.enter_async_context(_listening(settings.database_url, dispatcher))
        gauge = asyncio.create_task(_count_queued(store), name="deliveries-gauge")
        stack.callback(gauge.cancel)
        yield dispatcher


async def _count_queued(store: DatabaseDeliveryStore) -> None:
    while True:
        try:
            await store.count_queued()
        except Exception:
            log.exception("counting queued deliveries failed")
        await asyncio.sleep(GAUGE_INTERVAL_S)


def _asyncpg_url(database_url: str) -> str:
    return database_url.replace("postgres://", "postgresql://", 1).replace("asyncpg://", "postgresql://", 1)


@asynccontextmanager
async def _hint_connection(database_url: str) -> AsyncIterator[asyncpg.Connection | None]:
    """A connection of its own for LISTEN/NOTIFY, or None when there is none to be had (hints are
    optional: the sweep finds every delivery)."""
    try:
        connection = await asyncpg.connect(_asyncpg_url(database_url))
    except (OSError, asyncpg.PostgresError) as error:
        log.warning("no LISTEN/NOTIFY hints (%s); the sweep still finds every delivery", type(error).__name__)
        yield None
        return
    try:
        yield connection
    finally:
        await connection.close()


@asynccontextmanager
async def telling_other_processes(database_url: str, queued: DeliveriesQueued) -> AsyncIterator[None]:
    """NOTIFY after each commit of this process that queued deliveries, so every process's dispatcher
    (also one in a process of its own) looks at once; hints that come while one is sent share it."""
    async with _hint_connection(database_url) as connection:
        if connection is None:
            yield
            return
        pending = asyncio.Event()

        async def notify() -> None:
            while True:
                await pending.wait()
                pending.clear()
                with contextlib.suppress(OSError, asyncpg.PostgresError):
                    await connection.execute(f"NOTIFY {CHANNEL}")

        unsubscribe = queued.subscribe(pending.set)
        sender = asyncio.create_task(notify(), name="deliveries-notify")
        try:
            yield
        finally:
            unsubscribe()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender


@asynccontextmanager
async def _listening(database_url: str, dispatcher: Dispatcher) -> AsyncIterator[None]:
    async with _hint_connection(database_url) as connection:
        if connection is not None:
            await connection.add_listener(CHANNEL, lambda *_: dispatcher.wake())
        yield


@asynccontextmanager
async def notifications_lifespan(app: Litestar) -> AsyncIterator[None]:
    """On PostgreSQL, tell other processes of queued deliveries; run a dispatcher when this process
    runs one (`TRACKER_DISPATCHER_ENABLED`)."""
    settings: Settings = app.state.settings
    services: Services = app.state.services
    async with AsyncExitStack() as stack:
        if not settings.is_sqlite:
            await stack.enter_async_context(
                telling_other_processes(settings.database_url, services.deliveries_queued)
            )
        if settings.dispatcher_enabled:
            composer = DatabaseEmailComposer(settings, services.snapshots)
            await stack.enter_async_context(dispatching(settings, services, app.state.clock, composer))
        yield
