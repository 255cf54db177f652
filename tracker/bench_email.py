"""`make bench`, email: the dispatcher delivering a fan-out to a loopback SMTP sink, against bare
aiosmtplib loops sending the same messages over as many connections, in the same run.

A public note on a job of an account with `EMAILS` contacts queues one email per contact (the fan-out of
the outbox); the dispatcher, already running, claims, composes (snapshot, templates, Babel), builds, sends
and records each, its sender keeping `TRACKER_SMTP_CONNECTIONS` connections. The clock runs from the
moment the emails fall due to the last one's arrival. The baseline sends the very messages the
composer makes, prebuilt (their building is not counted: the bytes the sender would put after DATA),
one after the other on each of the same number of connections at once.

The two take turns, `ROUNDS` times each (one note's fan-out a round), and each figure is the median of its
rounds: this machine's speed drifts by as much as half within seconds, so one run of each, seconds apart,
compares two different machines.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import statistics
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
from tracker.services.jobs import NewJob
from tracker.services.outbox import ComposedEmail, QueuedEmail
from tracker.services.preferences import new_page_token
from tracker.services.versions import ExpectedVersion
from tracker.settings import Settings

EMAILS = 1_000
ROUNDS = 9
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


async def _seed(settings: Settings, now: datetime) -> list[int]:
    """One account of `EMAILS` contacts, one job, and `ROUNDS` public notes: `EMAILS` queued emails each;
    the notes' events."""
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
    await Delivery.all().delete()  # the job's opening: only the notes' emails are measured
    notes = []
    for round_ in range(ROUNDS):
        job, _ = await services.jobs.add_note(
            job.id,
            ExpectedVersion(job.version, from_header=False),
            visibility="public",
            body=f"Your car is ready for test drive {round_ + 1}.",
            actor="bench",
            now=now,
        )
        latest = await Delivery.filter(channel="email").order_by("-id").first()
        assert latest is not None and latest.event_id is not None
        notes.append(latest.event_id)
    return notes


@dataclass(frozen=True)
class _Prebuilt:
    sender: str
    recipient: str
    data: bytes


async def _messages(settings: Settings, note: int, now: datetime) -> list[_Prebuilt]:
    composer = DatabaseEmailComposer(settings, build_services(settings).snapshots)
    messages = []
    for row in await Delivery.filter(channel="email", status="queued", event_id=note).order_by("id"):
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
        notes = await _seed(settings, now)
        messages = await _messages(settings, notes[0], now)
        await Delivery.all().update(available_at=now + timedelta(days=1))  # held until their round
        gc.collect()
        services = build_services(settings)
        bare_rates, rates = [], []
        async with dispatching(
            settings,
            services,
            lambda: datetime.now(UTC),
            DatabaseEmailComposer(settings, services.snapshots),
            dispatcher_settings=DispatcherSettings(sweep_interval=0.5),
        ):
            await asyncio.sleep(STARTUP_S)  # a running service: its start is no delivery's cost
            for note in notes:
                bare_rates.append(await _bare_per_s(messages, port, sink, settings.smtp_connections))
                sink.expect(EMAILS)
                started = time.perf_counter()
                await Delivery.filter(event_id=note).update(available_at=datetime.now(UTC))
                services.deliveries_queued.fire()
                async with asyncio.timeout(600):
                    await sink.all_arrived.wait()
                rates.append(EMAILS / (time.perf_counter() - started))
        return statistics.median(rates), statistics.median(bare_rates)
    finally:
        await Tortoise.close_connections()
        server.close()
        await server.wait_closed()
