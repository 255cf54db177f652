"""`make bench`: speed and memory figures, each against a baseline measured in the same run.

Prints one JSON object a line: {"name", "value", "unit", "baseline", "ratio"}.

- recompute_jobs_per_s: recomputing 100,000 open jobs on PostgreSQL (claim, estimate, write back), against
  the rows/s of a bare bulk UPDATE of the same estimate columns with precomputed values.
- backtest_events_per_s and backtest_peak_rss_mb: `tracker backtest` on a generated log of 1,000,000
  events, against reading the same log alone.
- backtest_real_events_per_s: `tracker backtest` on a real multi-year log shipped with the tests (BPIC 2015,
  municipality 1; tests/data/eventlogs), against reading it alone.
- status_page_req_per_s and status_page_p99_ms: a job's status page (SQLite, served by uvicorn in its own
  process) under `LOAD_CONNECTIONS` concurrent keep-alive clients from this process, against a trivial
  Litestar endpoint served the same way in the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import numpy as np
from litestar import Litestar, get
from tortoise import Tortoise
from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from tracker.db import bulk
from tracker.db.config import tortoise_config
from tracker.db.session import apply_migrations
from tracker.demo import CAR_REPAIR
from tracker.domain.money import Money
from tracker.estimates.eventlog import read_log, write_csv
from tracker.estimates.synthetic import generate_log
from tracker.services import accounts, workflows
from tracker.services.accounts import ContactFields
from tracker.services.bootstrap import build_services
from tracker.services.jobs import NewJob, new_job_row
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
        await connection.execute("ANALYZE job")
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


LOAD_CONNECTIONS = 16
LOAD_WARMUP_S = 1.0
LOAD_S = 5.0


@get("/", sync_to_thread=False)
def _hello() -> str:
    return "ok"


def trivial_app() -> Litestar:
    """The baseline of the page bench: the least a Litestar endpoint does, served the same way."""
    return Litestar([_hello])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _serve(factory: str, environment: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """Start uvicorn on `factory` in its own process; return it and its address."""
    port = _free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "--factory", factory),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"),
        ],
        env={**os.environ, **environment},
    )
    return server, f"http://127.0.0.1:{port}"


async def _until_up(address: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(400):
            try:
                await client.get(address)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing answers at {address}")


async def _load(url: str) -> tuple[float, float]:
    """Requests per second and the 99th percentile latency (ms) of `url` under concurrent clients."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=LOAD_CONNECTIONS, max_keepalive_connections=LOAD_CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker(until: float, record: bool) -> None:
            while time.perf_counter() < until:
                started = time.perf_counter()
                response = await client.get(url)
                if response.status_code != 200:
                    raise RuntimeError(f"{url} answered {response.status_code}")
                if record:
                    latencies.append(time.perf_counter() - started)

        warm_until = time.perf_counter() + LOAD_WARMUP_S
        await asyncio.gather(*(worker(warm_until, False) for _ in range(LOAD_CONNECTIONS)))
        started = time.perf_counter()
        until = started + LOAD_S
        await asyncio.gather(*(worker(until, True) for _ in range(LOAD_CONNECTIONS)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, float(np.percentile(latencies, 99)) * 1000


async def _seed_status_page(settings: Settings) -> str:
    """One job with its estimate, a French contact and a public note; returns its status-page path."""
    await apply_migrations(settings)
    await Tortoise.init(config=tortoise_config(settings))
    try:
        services = build_services(settings)
        await workflows.create_workflow("car-repair", CAR_REPAIR, "EUR", now=NOW - timedelta(days=1))
        account = await accounts.create_account(
            "individual",
            "Marie Dubois",
            [ContactFields("Marie Dubois", "marie@example.com", "fr_FR", "Europe/Paris")],
            now=NOW,
        )
        new = NewJob(account.id, "car-repair", "Brake discs", Money(Decimal("640.00"), "EUR"))
        job = await services.jobs.create(new, actor="bench", now=NOW)
        return "/status/" + job.public_url.rsplit("/", 1)[-1]
    finally:
        await Tortoise.close_connections()


async def bench_status_page() -> None:
    with tempfile.TemporaryDirectory() as folder:
        database_url = f"sqlite://{Path(folder) / 'bench.sqlite3'}"
        path = await _seed_status_page(Settings(database_url=database_url))
        environment = {
            "TRACKER_DATABASE_URL": database_url,
            "TRACKER_SCHEDULER_ENABLED": "false",
            "TRACKER_DISPATCHER_ENABLED": "false",
            "TRACKER_LOG_LEVEL": "WARNING",
            "TRACKER_PAGE_REQUESTS_PER_MINUTE": "1000000000",  # one client here: the limit is not measured
        }
        measured = {}
        for name, factory, target in (
            ("trivial", "tracker.bench:trivial_app", "/"),
            ("status_page", "tracker.app:create_app", path),
        ):
            server, address = _serve(factory, environment)
            try:
                await _until_up(address)
                measured[name] = await _load(address + target)
            finally:
                server.terminate()
                server.wait()
    (pages_per_s, pages_p99), (trivial_per_s, trivial_p99) = measured["status_page"], measured["trivial"]
    emit("status_page_req_per_s", pages_per_s, "req/s", trivial_per_s)
    emit("status_page_p99_ms", pages_p99, "ms", trivial_p99)


def main() -> None:
    base_url = os.environ.get("TRACKER_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
    asyncio.run(bench_status_page())
    asyncio.run(bench_recompute(base_url))
    bench_backtest()


if __name__ == "__main__":
    main()
