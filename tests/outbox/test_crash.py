"""`tracker dispatch` as operators run it, in its own process: killed with SIGKILL in the middle of a
fan-out of thousands of webhooks and started again, it loses nothing; two of them on one PostgreSQL
deliver each webhook exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.transactions import in_transaction

from tests.conftest import CURRENT_TIME, new_postgres_database
from tests.factories import create_account, create_job, create_workflow
from tests.notifications.receiver import Receiver
from tests.outbox.conftest import register_endpoint
from tracker.app import create_app
from tracker.db.config import tortoise_config
from tracker.db.models import Contact, Delivery, Job
from tracker.db.session import apply_migrations
from tracker.domain.events import EventType, NewEvent
from tracker.services import keys
from tracker.services.events import Listeners, record_events
from tracker.services.outbox import webhook_message_id
from tracker.settings import Settings

pytestmark = pytest.mark.ci_only
ENDPOINTS = 3
NOTES = 1000
"""Public notes recorded at once: each goes to every endpoint, ENDPOINTS * NOTES webhooks in all."""
TRACKER = Path(sys.executable).parent / "tracker"


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new database other processes can open too (a SQLite file, or a PostgreSQL database of its
    own), migrated as an operator would: `tracker dispatch` refuses a database that is not."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'tracker.sqlite3'}"
        return
    with new_postgres_database(request.getfixturevalue("postgres_url"), "tracker_crash") as url:
        yield url


@pytest.fixture
async def shared_database(shared_url: str) -> AsyncIterator[str]:
    url = shared_url
    await apply_migrations(Settings(database_url=url))
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(Settings(database_url=url)), _enable_global_fallback=True)
    try:
        yield url
    finally:
        await Tortoise.close_connections()


async def fan_out(url: str, receiver: Receiver) -> set[str]:
    """Record NOTES public notes on one job in one transaction, to ENDPOINTS endpoints; the webhook ids."""
    settings = Settings(database_url=url, public_base_url="https://status.example.test")
    app = create_app(settings)
    admin = await keys.create_key("crash test", "admin", now=CURRENT_TIME)
    headers = {"Authorization": f"Bearer {admin.secret}"}
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://tracker.test") as client:
        await create_workflow(client, headers)
        account = await create_account(client, headers)
        job_id = (await create_job(client, headers, account["id"]))["id"]
    await Contact.filter(account_id=account["id"]).update(note_emails="off", progress_emails="off")
    for _ in range(ENDPOINTS):
        await register_endpoint(receiver.url(), types=("job.note_added",))
    job = await Job.get(id=job_id)
    notes = [
        NewEvent(
            job.id,
            job.version,
            EventType.NOTE_ADDED,
            {"visibility": "public", "body": f"n{n}"},
            "s",
            CURRENT_TIME,
        )
        for n in range(NOTES)
    ]
    async with in_transaction():
        await record_events(notes, Listeners())
    rows = await Delivery.filter(channel="webhook")
    assert len(rows) == ENDPOINTS * NOTES
    return {webhook_message_id(row.dedupe_key) for row in rows}


async def start_dispatcher(url: str, lease_s: int = 300) -> asyncio.subprocess.Process:
    environment = {
        **os.environ,
        "TRACKER_DATABASE_URL": url,
        "TRACKER_WEBHOOK_ALLOW_HTTP": "true",
        "TRACKER_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "TRACKER_DISPATCHER_SWEEP_S": "1",
        "TRACKER_DISPATCHER_LEASE_S": str(lease_s),
        "TRACKER_LOG_LEVEL": "WARNING",
    }
    return await asyncio.create_subprocess_exec(
        str(TRACKER), "dispatch", env=environment, stderr=asyncio.subprocess.DEVNULL
    )


async def until(condition: Callable[[], Awaitable[bool]], seconds: float) -> None:
    """Poll what another process changes, for up to `seconds`."""
    for _ in range(int(seconds * 10)):
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not done within {seconds} s")


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)


def arrived_ids(receiver: Receiver) -> dict[str, set[bytes]]:
    """The bodies that arrived under each webhook id."""
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for request in receiver.requests:
        bodies[request.headers["webhook-id"]].add(request.body)
    return bodies


async def test_a_dispatcher_killed_mid_fan_out_loses_nothing_once_started_again(
    shared_database: str, receiver: Receiver
) -> None:
    expected = await fan_out(shared_database, receiver)
    first = await start_dispatcher(shared_database, lease_s=12)

    async def part_way() -> bool:
        return len(receiver.requests) >= len(expected) // 5

    await until(part_way, 60)
    first.kill()  # SIGKILL: no stop, no release; its claims stay until their lease ends
    await first.wait()
    assert len(arrived_ids(receiver)) < len(expected)

    second = await start_dispatcher(shared_database, lease_s=12)
    try:

        async def all_sent() -> bool:
            return await Delivery.filter(channel="webhook", status="sent").count() == len(expected)

        await until(all_sent, 120)
    finally:
        await stop(second)

    bodies = arrived_ids(receiver)
    assert set(bodies) == expected  # every delivery arrived, under its own id only
    assert all(len(same) == 1 for same in bodies.values())  # a duplicate is the same message again
    notes = {json.loads(next(iter(same)))["data"]["change"]["body"] for same in bodies.values()}
    assert len(notes) == NOTES


@pytest.mark.postgres_only
async def test_two_dispatchers_on_one_postgresql_deliver_each_webhook_exactly_once(
    shared_database: str, receiver: Receiver
) -> None:
    if shared_database.startswith("sqlite"):
        pytest.skip("several dispatchers share work through PostgreSQL's row locks")
    expected = await fan_out(shared_database, receiver)

    dispatchers = [await start_dispatcher(shared_database), await start_dispatcher(shared_database)]
    try:

        async def all_sent() -> bool:
            return await Delivery.filter(channel="webhook", status="sent").count() == len(expected)

        await until(all_sent, 120)
    finally:
        for process in dispatchers:
            await stop(process)

    ids = [request.headers["webhook-id"] for request in receiver.requests]
    assert sorted(ids) == sorted(expected)
