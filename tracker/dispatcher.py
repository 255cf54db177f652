"""Running the notifications dispatcher in a process: inside the app (`tracker serve`), or alone
(`tracker dispatch`, for a fleet whose web processes leave sending to a few others).

The dispatcher wakes when this process's services queued deliveries (`DeliveriesQueued`), on PostgreSQL also
when another process says so (LISTEN/NOTIFY, a hint only), and on its sweep, which alone finds everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

import asyncpg
from litestar import Litestar

from notifications import Dispatcher, DispatcherSettings, SmtpSender, URLPolicy, WebhookSender
from tracker.clock import Clock
from tracker.services.bootstrap import Services
from tracker.services.email_composer import DatabaseEmailComposer
from tracker.services.mail import email_sender
from tracker.services.outbox import DatabaseDeliveryStore, EmailComposer
from tracker.services.signals import DeliveriesQueued
from tracker.settings import MAX_RATE_WAIT_S, Settings

log = logging.getLogger("tracker.dispatcher")
CHANNEL = "tracker_deliveries"
"""The PostgreSQL NOTIFY channel that tells other processes' dispatchers deliveries were queued."""
GAUGE_INTERVAL_S = 15.0


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
    async with AsyncExitStack() as stack:
        webhooks = await stack.enter_async_context(WebhookSender(webhook_policy(settings), clock))
        email = email_sender(settings)
        if isinstance(email, SmtpSender):
            stack.push_async_callback(email.aclose)
        dispatcher = Dispatcher(
            store,
            webhooks=webhooks,
            email=email,
            clock=clock,
            settings=dispatcher_settings or settings_of(settings),
        )
        dispatcher.start()
        stack.push_async_callback(dispatcher.stop, float(settings.shutdown_grace_s))
        stack.callback(services.deliveries_queued.subscribe(dispatcher.wake))
        if not settings.is_sqlite:
            await stack.enter_async_context(
                _postgres_hints(settings.database_url, services.deliveries_queued, dispatcher)
            )
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


@asynccontextmanager
async def _postgres_hints(
    database_url: str, queued: DeliveriesQueued, dispatcher: Dispatcher
) -> AsyncIterator[None]:
    """LISTEN for other processes' hints and NOTIFY ours after each commit that queued deliveries."""
    url = database_url.replace("postgres://", "postgresql://", 1).replace("asyncpg://", "postgresql://", 1)
    try:
        connection = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as error:
        log.warning("no LISTEN/NOTIFY hints (%s); the sweep still finds every delivery", type(error).__name__)
        yield
        return
    pending = asyncio.Event()

    async def notify() -> None:
        while True:
            await pending.wait()
            pending.clear()  # hints that come while one is sent are carried by it
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await connection.execute(f"NOTIFY {CHANNEL}")

    await connection.add_listener(CHANNEL, lambda *_: dispatcher.wake())
    unsubscribe = queued.subscribe(pending.set)
    sender = asyncio.create_task(notify(), name="deliveries-notify")
    try:
        yield
    finally:
        unsubscribe()
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        await connection.close()


@asynccontextmanager
async def dispatcher_lifespan(app: Litestar) -> AsyncIterator[None]:
    """The app's dispatcher, when this process runs one (`TRACKER_DISPATCHER_ENABLED`)."""
    settings: Settings = app.state.settings
    if not settings.dispatcher_enabled:
        yield
        return
    services: Services = app.state.services
    composer = DatabaseEmailComposer(settings, services.snapshots)
    async with dispatching(settings, services, app.state.clock, composer):
        yield
