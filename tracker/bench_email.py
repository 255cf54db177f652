"""`make bench`, email: the dispatcher delivering a fan-out to a loopback SMTP sink, against bare
aiosmtplib loops sending the same messages over as many connections, in the same run.

A public note on a job of an account with `EMAILS` contacts queues one email per contact (the fan-out of
the outbox); the dispatcher, already running, claims, composes (snapshot, templates, Babel), builds, sends
and records each, its sender keeping `TRACKER_SMTP_CONNECTIONS` connections. The clock runs from the
moment the emails fall due to the last one's arrival. The baseline sends the very messages the
composer makes, prebuilt (their building is not counted: the bytes the sender would put after DATA),
one after the other on each of the same number of connections at once.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosmtplib
from aiosmtpd.smtp import SMTP
from tortoise import Tortoise

from notifications import DispatcherSettings, build_message
from tracker.db.config import tortoise_config
from tracker.db.models import Account, Contact, Delivery
from tracker.db.session import apply_migrations
from tracker.demo import CAR_REPAIR
from tracker.dispatcher import dispatching
from tracker.domain.money import Money
from tracker.services import workflows
from tracker.services.bootstrap import build_services
from tracker.services.email_composer import DatabaseEmailComposer
from tracker.services.jobs import ExpectedVersion, NewJob
from tracker.services.outbox import ComposedEmail, QueuedEmail
from tracker.services.preferences import new_page_token
from tracker.settings import Settings

EMAILS = 1_000
STARTUP_S = 1.0
"""Time the dispatcher is given to start (its LISTEN connection, first sweep) before the emails are due."""


class Sink:
    """An aiosmtpd handler that counts what it accepts."""

    def __init__(self) -> None:
        self.accepted = 0
        self.all_arrived = asyncio.Event()
        self.expected = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.accepted += 1
        if self.accepted >= self.expected:
            self.all_arrived.set()
        return "250 OK"

    def expect(self, count: int) -> None:
        self.accepted, self.expected = 0, count
        self.all_arrived.clear()


async def _seed(settings: Settings, now: datetime) -> None:
    """One account of `EMAILS` contacts, one job, and a public note: `EMAILS` queued emails."""
    services = build_services(settings)
    await workflows.create_workflow("car-repair", CAR_REPAIR, "EUR", now=now - timedelta(days=1))
    account = await Account.create(kind="institutional", name="Bench fleet", created_at=now, updated_at=now)
    await Contact.bulk_create(
        [
            Contact(
                account_id=account.id,
                name=f"Driver {n}",
                email=f"driver{n}@fleet.example",
                locale=("en_GB", "fr_FR", "nl_BE", "de_DE")[n % 4],
                time_zone="Europe/Brussels",
                page_token=new_page_token(),
                created_at=now,
                updated_at=now,
            )
            for n in range(EMAILS)
        ]
    )
    new = NewJob(account.id, "car-repair", "Renault Clio", Money.parse("640.00", "EUR", field="quote"))
    job = await services.jobs.create(new, actor="bench", now=now)
    job = await services.jobs.get(job.id)  # as re-estimated after its opening
    await Delivery.all().delete()  # the job's opening: only the note's emails are measured
    await services.jobs.add_note(
        job.id,
        ExpectedVersion(job.version, from_header=False),
        visibility="public",
        body="Your car is ready for a test drive.",
        actor="bench",
        now=now,
    )


@dataclass(frozen=True)
class _Prebuilt:
    sender: str
    recipient: str
    data: bytes


async def _messages(settings: Settings, now: datetime) -> list[_Prebuilt]:
    composer = DatabaseEmailComposer(settings, build_services(settings).snapshots)
    messages = []
    for row in await Delivery.filter(channel="email", status="queued").order_by("id"):
        queued = QueuedEmail(
            row.id, row.kind, row.event_id, row.job_id, row.contact_id, row.address, 0, row.created_at
        )
        plan = await composer.compose(queued, now)
        assert isinstance(plan, ComposedEmail), plan
        email = plan.message
        messages.append(_Prebuilt(email.sender.address, email.recipient.address, build_message(email, now)))
    return messages


async def _bare_per_s(messages: list[_Prebuilt], port: int, sink: Sink, connections: int) -> float:
    async def send(share: list[_Prebuilt]) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as client:
            for message in share:
                await client.sendmail(message.sender, [message.recipient], message.data)

    sink.expect(len(messages))
    started = time.perf_counter()
    await asyncio.gather(*(send(messages[n::connections]) for n in range(connections)))
    elapsed = time.perf_counter() - started
    assert sink.accepted == len(messages)
    return len(messages) / elapsed


async def email_deliveries_per_s(database_url: str) -> tuple[float, float]:
    """Emails per second through the dispatcher, and through the bare loop, on an empty database."""
    now = datetime.now(UTC)
    sink = Sink()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(sink, hostname="sink.bench"), host="127.0.0.1", port=0, family=socket.AF_INET
    )
    port = server.sockets[0].getsockname()[1]
    settings = Settings(
        database_url=database_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        quiet_hours="",
        scheduler_enabled=False,
    )
    try:
        await apply_migrations(settings)
        await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
        await _seed(settings, now)
        messages = await _messages(settings, now)
        bare = await _bare_per_s(messages, port, sink, settings.smtp_connections)
        # Nothing of the set-up left alive for the garbage collections of the dispatcher's run to walk.
        del messages
        gc.collect()
        services = build_services(settings)
        sink.expect(EMAILS)
        await Delivery.all().update(available_at=now + timedelta(days=1))  # held until the dispatcher runs
        async with dispatching(
            settings,
            services,
            lambda: datetime.now(UTC),
            DatabaseEmailComposer(settings, services.snapshots),
            dispatcher_settings=DispatcherSettings(max_in_flight=64, sweep_interval=0.5),
        ):
            await asyncio.sleep(STARTUP_S)  # a running service: its start is no delivery's cost
            started = time.perf_counter()
            await Delivery.all().update(available_at=datetime.now(UTC))
            services.deliveries_queued.fire()
            async with asyncio.timeout(600):
                await sink.all_arrived.wait()
            elapsed = time.perf_counter() - started
        return EMAILS / elapsed, bare
    finally:
        await Tortoise.close_connections()
        server.close()
        await server.wait_closed()
