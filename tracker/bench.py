"""`make bench`: speed and memory figures, each against a baseline measured in the same run.

Prints one JSON object a line: {"name", "value", "unit", "baseline", "ratio"}.

- recompute_jobs_per_s: recomputing 100,000 open jobs on PostgreSQL (claim, estimate, write back), against
  the rows/s of a bare bulk UPDATE of the same estimate columns with precomputed values.
- board_ms: building the staff dashboard's board over those 100,000 open jobs, against a bare count of
  the open jobs per stage (tracker.services.dashboard).
- backtest_events_per_s and backtest_peak_rss_mb: `tracker backtest` on a generated log of 1,000,000
  events, against reading the same log alone.
- email_deliveries_per_s: the dispatcher delivering 1,000 emails of a fan-out (claim, compose, send,
  record) to a loopback SMTP sink, against bare aiosmtplib loops sending the same prebuilt messages over
  as many connections as the dispatcher's sender keeps; the two take turns, nine rounds each, and each
  figure is the median of its rounds (tracker/bench_email.py).
- backtest_real_events_per_s: `tracker backtest` on a real multi-year log shipped with the tests (BPIC 2015,
  municipality 1; tests/data/eventlogs), against reading it alone.
- status_page_req_per_s and status_page_p99_ms: a job's status page under load from this process, against a
  trivial Litestar endpoint served the same way (tracker/bench_pages.py).
- webhook_deliveries_per_s: the dispatcher and the outbox on PostgreSQL sending a fan-out of signed webhooks
  to a loopback receiver, against a bare httpx loop sending the same requests with the same concurrency.
- advance_to_webhook_p50_ms / _p99_ms: from a stage advance through the API to its webhook's arrival at
  the receiver, one at a time on an idle system (baseline: the same advance alone, with no endpoint).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import uvicorn
from tortoise import Tortoise
from tortoise.connection import get_connection
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from notifications import DispatcherSettings, WebhookMessage, generate_secret, signature_headers
from tracker.app import create_app
from tracker.bench_email import email_deliveries_per_s
from tracker.bench_pages import status_page_load
from tracker.clock import utc_now
from tracker.db import bulk
from tracker.db.config import tortoise_config
from tracker.db.models import Contact, Delivery, Job, WebhookEndpoint, WebhookSubscription
from tracker.db.session import apply_migrations
from tracker.demo import CAR_REPAIR
from tracker.dispatcher import HoldEmails, dispatching
from tracker.domain.events import EventType, NewEvent
from tracker.domain.money import Money
from tracker.domain.workflow import OPEN_STATUSES
from tracker.estimates.eventlog import read_log, write_csv
from tracker.estimates.synthetic import generate_log
from tracker.services import accounts, dashboard, keys, workflows
from tracker.services.accounts import ContactFields
from tracker.services.bootstrap import build_services
from tracker.services.events import Listeners, record_events
from tracker.services.jobs import NewJob, new_job_row
from tracker.services.outbox import DatabaseDeliveryStore
from tracker.services.snapshots import JobSnapshots
from tracker.settings import Settings

JOBS = 100_000
BATCH = 5_000
EVENTS = 1_000_000
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
COPIED = (
    "reference",
    "account_id",
    "workflow_id",
    "title",
    "title_search",
    "quote_amount",
    "currency",
    "promised_on",
    "status",
    "stage_key",
    "stage_entered_at",
    "version",
    "public_token",
    "created_at",
    "updated_at",
    "stages_completed",
    "actual_cost",
    "stage_held_seconds",
)
"""The job columns the bench writes with COPY, from rows built by `new_job_row`."""
REAL_LOG = Path(__file__).resolve().parents[1] / "tests" / "data" / "eventlogs" / "BPIC15_1.xes.gz"


def emit(name: str, value: float, unit: str, baseline: float) -> None:
    ratio = value / baseline if baseline else None
    print(
        json.dumps(
            {
                "name": name,
                "value": round(value, 2),
                "unit": unit,
                "baseline": round(baseline, 2),
                "ratio": None if ratio is None else round(ratio, 3),
            }
        ),
        flush=True,
    )


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _seed_jobs(url: str, workflow_id: int, account_id: int) -> None:
    """Open jobs spread over the stages, written with COPY (seeding is not what is measured)."""
    rng = np.random.default_rng(7)
    stages = [stage.key for stage in CAR_REPAIR.stages]
    rows = []
    for index in range(JOBS):
        stage = int(rng.integers(0, len(stages)))
        entered = NOW - timedelta(hours=float(rng.uniform(0, 72)))
        created = entered - timedelta(days=float(rng.uniform(0, 10)))
        rows.append(
            new_job_row(
                reference=f"B-{index:06d}",
                account_id=account_id,
                workflow_id=workflow_id,
                title="Bench job",
                quote=Money(Decimal(int(rng.integers(200, 3000))), "EUR"),
                promised_on=(NOW + timedelta(days=int(rng.integers(1, 30)))).date(),
                stage_key=stages[stage],
                stage_entered_at=entered,
                created_at=created,
                stages_completed=stage,
                actual_cost=Decimal(int(rng.integers(0, 900))),
            )
        )
    records = [tuple(getattr(row, column) for column in COPIED) for row in rows]
    connection = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await connection.copy_records_to_table(
            "job",
            records=records,
            columns=list(COPIED),
        )
        # Each job's stage visits, the current one open, so the per-job probes of stage_visit (who moved
        # the job on) read real index entries.
        jobs = await connection.fetch("SELECT id, stages_completed, stage_entered_at FROM job ORDER BY id")
        staff = ("staff:Ann", "staff:Bob", "staff:Chloe")
        visits = []
        for job in jobs:
            entered = job["stage_entered_at"]
            done = job["stages_completed"]
            for stage in range(done + 1):
                at = entered - timedelta(hours=8 * (done - stage))
                left = None if stage == done else at + timedelta(hours=8)
                by = staff[(job["id"] + stage) % len(staff)]
                visits.append((job["id"], stages[stage], at, left, by, None if left is None else by, 0.0))
        await connection.copy_records_to_table(
            "stage_visit",
            records=visits,
            columns=["job_id", "stage_key", "entered_at", "left_at", "entered_by", "left_by", "held_seconds"],
        )
        await connection.execute("ANALYZE job")
        await connection.execute("ANALYZE stage_visit")
    finally:
        await connection.close()


async def _bare_update_rows_per_s() -> float:
    """The same bulk UPDATE statement tracker uses, fed precomputed values: the floor of the write path."""
    connection = get_connection("default")
    ids = [int(row["id"]) for row in await connection.execute_query_dict("SELECT id FROM job ORDER BY id")]
    started = time.perf_counter()
    for start in range(0, len(ids), BATCH):
        chunk = np.array(ids[start : start + BATCH], dtype=np.int64)
        n = len(chunk)
        async with in_transaction() as tx:
            await bulk.write_estimates(
                tx,
                bulk.EstimateColumns(
                    ids=chunk,
                    eta_p50=np.full(n, NOW.timestamp() + 86_400.0),
                    eta_p90=np.full(n, NOW.timestamp() + 172_800.0),
                    cost_p50=np.full(n, 500.0),
                    cost_p90=np.full(n, 650.0),
                    basis=["history"] * n,
                ),
                now=NOW - timedelta(days=1),
            )
    return len(ids) / (time.perf_counter() - started)


async def _board_and_bare_count(snapshots: JobSnapshots, now: datetime) -> tuple[float, float]:
    """Seconds to build the staff board over every open job (median of three), against a bare count
    of the open jobs per stage, the least any board of them must read."""

    async def board_once() -> float:
        started = time.perf_counter()
        await dashboard.board(snapshots, now=now, locale="en")
        return time.perf_counter() - started

    async def count_once() -> float:
        started = time.perf_counter()
        await (
            Job.filter(status__in=[status.value for status in OPEN_STATUSES])
            .annotate(count=Count("id"))
            .group_by("workflow_id", "stage_key")
            .values_list("workflow_id", "stage_key", "count")
        )
        return time.perf_counter() - started

    boards = [await board_once() for _ in range(3)]
    counts = [await count_once() for _ in range(3)]
    return float(np.median(boards)), float(np.median(counts))


async def bench_recompute(base_url: str) -> None:
    name = f"tracker_bench_{secrets.token_hex(4)}"
    await _admin(base_url, f'CREATE DATABASE "{name}"')
    url = base_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        settings = Settings(database_url=url)
        await apply_migrations(settings)  # the schema production runs, table storage options included
        await Tortoise.init(config=tortoise_config(settings))
        stored = await workflows.create_workflow(
            "car-repair",
            CAR_REPAIR,
            "EUR",
            now=NOW - timedelta(days=90),
            calendar={
                "time_zone": "Europe/Paris",
                "country": "FR",
                "subdivision": None,
                "opening_hours": None,
                "closures": [],
            },
        )
        account = await accounts.create_account(
            "institutional",
            "Bench fleet",
            [ContactFields("Fleet desk", "fleet@example.com", "en", "Europe/Paris")],
            now=NOW,
        )
        await _seed_jobs(url, stored.row.id, account.id)
        estimates = build_services(settings).estimates
        await estimates.refit("car-repair", now=NOW)
        bare = await _bare_update_rows_per_s()
        # First pass: every job is estimated for the first time (history row and announced state each).
        started = time.perf_counter()
        done = await estimates.recompute_tick(now=NOW, tick_start=NOW, batch_size=BATCH)
        first = done / (time.perf_counter() - started)
        # The recurring cost: the next scheduled tick, five minutes later.
        later = NOW + timedelta(minutes=5)
        started = time.perf_counter()
        again = await estimates.recompute_tick(now=later, tick_start=later, batch_size=BATCH)
        steady = again / (time.perf_counter() - started)
        assert done == again == JOBS, (done, again)
        emit("recompute_jobs_per_s", steady, "jobs/s", bare)
        emit("recompute_first_pass_jobs_per_s", first, "jobs/s", bare)
        board_s, count_s = await _board_and_bare_count(build_services(settings).snapshots, later)
        emit("board_ms", board_s * 1000, "ms", count_s * 1000)
    finally:
        await Tortoise.close_connections()
        await _admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run_measured(command: list[str]) -> tuple[float, float]:
    """Run a command; return its wall time (s) and its own peak resident memory (MB)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{command} failed")
    return elapsed, usage.ru_maxrss / 1024


def bench_backtest() -> None:
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "bench.csv"
        write_csv(generate_log(EVENTS, seed=1, with_cost=True), log)
        events = read_log(log).n_events
        reader = [
            sys.executable,
            "-c",
            "import sys; from tracker.estimates.eventlog import read_log; read_log(sys.argv[1])",
            str(log),
        ]
        read_s, read_rss = _run_measured(reader)
        tracker_command = str(Path(sys.executable).with_name("tracker"))
        run_s, run_rss = _run_measured([tracker_command, "backtest", str(log), "--cost", "Cost", "--json"])
        emit("backtest_events_per_s", events / run_s, "events/s", events / read_s)
        emit("backtest_peak_rss_mb", run_rss, "MB", read_rss)
    real = REAL_LOG
    events = read_log(real).n_events
    read_s, _ = _run_measured([*reader[:3], str(real)])
    run_s, _ = _run_measured([tracker_command, "backtest", str(real), "--json"])
    emit("backtest_real_events_per_s", events / run_s, "events/s", events / read_s)


async def bench_email(base_url: str) -> None:
    name = f"tracker_bench_{secrets.token_hex(4)}"
    await _admin(base_url, f'CREATE DATABASE "{name}"')
    try:
        value, bare = await email_deliveries_per_s(base_url.rsplit("/", 1)[0] + f"/{name}")
        emit("email_deliveries_per_s", value, "emails/s", bare)
    finally:
        await _admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class LoopbackReceiver:
    """An ASGI app on loopback that answers every webhook at once and notes when each arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.arrived = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = dict(scope["headers"])
        self.arrivals.setdefault(headers.get(b"webhook-id", b"").decode(), time.perf_counter())
        self.arrived.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def until(self, count: int) -> None:
        """Wait until `count` distinct webhooks have arrived."""
        while len(self.arrivals) < count:
            self.arrived.clear()
            await self.arrived.wait()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        server = uvicorn.Server(
            uvicorn.Config(
                self, host="127.0.0.1", port=0, lifespan="off", log_level="warning", access_log=False
            )
        )
        task = asyncio.create_task(server.serve())
        for _ in range(500):  # uvicorn tells of its start only through this flag
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}/hook"
        finally:
            server.should_exit = True
            await task


WEBHOOK_ENDPOINTS = 8
WEBHOOK_NOTES = 500
LATENCY_SAMPLES = 200


@asynccontextmanager
async def _fresh_database(base_url: str) -> AsyncIterator[Settings]:
    name = f"tracker_bench_{secrets.token_hex(4)}"
    await _admin(base_url, f'CREATE DATABASE "{name}"')
    settings = Settings(
        database_url=base_url.rsplit("/", 1)[0] + f"/{name}",
        public_base_url="https://status.example.test",
        webhook_allow_http=True,
        webhook_allowed_networks="127.0.0.0/8",
    )
    try:
        await apply_migrations(settings)
        await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
        yield settings
    finally:
        await Tortoise.close_connections()
        await _admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _shop() -> tuple[int, str]:
    """A workflow and an account whose contact takes no email (webhooks are measured); the account id and
    an admin key."""
    await workflows.create_workflow("car-repair", CAR_REPAIR, "EUR", now=NOW - timedelta(days=90))
    account = await accounts.create_account(
        "individual", "Bench", [ContactFields("Bench", "bench@example.com", "en", "Europe/Paris")], now=NOW
    )
    await Contact.filter(account_id=account.id).update(progress_emails="off", note_emails="off")
    issued = await keys.create_key("bench", "admin", now=NOW)
    return account.id, issued.secret


async def _endpoints(url: str, count: int, webhook_type: str) -> None:
    for _ in range(count):
        endpoint = await WebhookEndpoint.create(
            url=url, secret=generate_secret(), created_at=NOW, updated_at=NOW
        )
        await WebhookSubscription.create(endpoint_id=endpoint.id, event_type=webhook_type)


async def bench_webhook_throughput(base_url: str) -> None:
    async with _fresh_database(base_url) as settings:
        account_id, _ = await _shop()
        services = build_services(settings)
        receiver = LoopbackReceiver()
        async with receiver.serving() as url:
            await _endpoints(url, WEBHOOK_ENDPOINTS, "job.note_added")
            job = await services.jobs.create(
                NewJob(account_id, "car-repair", "Bench job", Money(Decimal(500), "EUR")),
                actor="bench",
                now=NOW,
            )
            notes = [
                NewEvent(
                    job.id,
                    job.version,
                    EventType.NOTE_ADDED,
                    {"visibility": "public", "body": f"{n}"},
                    "b",
                    NOW,
                )
                for n in range(WEBHOOK_NOTES)
            ]
            async with in_transaction():
                await record_events(notes, Listeners())
            total = WEBHOOK_ENDPOINTS * WEBHOOK_NOTES
            # The baseline sends the very requests the dispatcher would, signed, with the same concurrency.
            store = DatabaseDeliveryStore(HoldEmails(), services.snapshots)
            claimed = await store.claim_due(total, NOW + timedelta(hours=1), NOW, total, ())
            messages = [d.message for d in claimed if isinstance(d.message, WebhookMessage)]
            for delivery in claimed:
                await store.release(delivery, NOW)
            dispatcher_settings = DispatcherSettings(max_in_flight=32, per_target=4)
            parallel = min(
                dispatcher_settings.max_in_flight, WEBHOOK_ENDPOINTS * dispatcher_settings.per_target
            )
            bare_s = await _bare_httpx(messages, parallel)
            receiver.arrivals.clear()
            started = time.perf_counter()
            async with dispatching(
                settings, services, utc_now, HoldEmails(), dispatcher_settings=dispatcher_settings
            ):
                await receiver.until(total)
            elapsed = time.perf_counter() - started  # the results of the last sends recorded too
            assert await Delivery.filter(status="sent").count() == total
        emit("webhook_deliveries_per_s", total / elapsed, "deliveries/s", len(messages) / bare_s)


async def _bare_httpx(messages: list[WebhookMessage], parallel: int) -> float:
    gate = asyncio.Semaphore(parallel)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=parallel)) as client:

        async def post(message: WebhookMessage) -> None:
            async with gate:
                headers = signature_headers(
                    message.message_id, int(time.time()), message.body, message.signing_secrets
                )
                response = await client.post(
                    message.url, content=message.body, headers={"content-type": "application/json", **headers}
                )
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(post(message) for message in messages))
        return time.perf_counter() - started


async def bench_advance_latency(base_url: str) -> None:
    async with _fresh_database(base_url) as settings:
        account_id, secret = await _shop()
        app = create_app(settings, clock=utc_now)
        receiver = LoopbackReceiver()
        headers = {"Authorization": f"Bearer {secret}"}
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with (
            receiver.serving() as url,
            httpx.AsyncClient(transport=transport, base_url="http://tracker.bench") as client,
        ):
            body = {
                "account_id": account_id,
                "workflow": "car-repair",
                "title": "Bench",
                "quote": {"amount": "500", "currency": "EUR"},
            }
            jobs = [
                (await client.post("/jobs", json=body, headers=headers)).json()
                for _ in range(LATENCY_SAMPLES * 2)
            ]
            alone = [await _advance(client, headers, job) for job in jobs[LATENCY_SAMPLES:]]
            await _endpoints(url, 1, "job.stage_changed")
            latencies = []
            async with dispatching(settings, app.state.services, utc_now, HoldEmails()):
                for job in jobs[:LATENCY_SAMPLES]:
                    expected = len(receiver.arrivals) + 1
                    started = time.perf_counter()
                    await _advance(client, headers, job)
                    await receiver.until(expected)
                    latencies.append((time.perf_counter() - started) * 1000)
        emit(
            "advance_to_webhook_p50_ms",
            float(np.percentile(latencies, 50)),
            "ms",
            float(np.percentile(alone, 50)),
        )
        emit(
            "advance_to_webhook_p99_ms",
            float(np.percentile(latencies, 99)),
            "ms",
            float(np.percentile(alone, 99)),
        )


async def _advance(client: httpx.AsyncClient, headers: dict[str, str], job: dict[str, Any]) -> float:
    started = time.perf_counter()
    response = await client.post(
        f"/jobs/{job['id']}/advance", json={"version": job["version"]}, headers=headers
    )
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


def bench_status_page() -> None:
    (per_s, p99), (trivial_per_s, trivial_p99) = asyncio.run(status_page_load())
    emit("status_page_req_per_s", per_s, "req/s", trivial_per_s)
    emit("status_page_p99_ms", p99, "ms", trivial_p99)


def main() -> None:
    base_url = os.environ.get("TRACKER_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
    only = set(sys.argv[1:])
    if not only or "recompute" in only:
        asyncio.run(bench_recompute(base_url))
    if not only or "backtest" in only:
        bench_backtest()
    if not only or "email" in only:
        asyncio.run(bench_email(base_url))
    if not only or "webhooks" in only:
        asyncio.run(bench_webhook_throughput(base_url))
        asyncio.run(bench_advance_latency(base_url))
    if not only or "pages" in only:
        bench_status_page()


if __name__ == "__main__":
    main()
