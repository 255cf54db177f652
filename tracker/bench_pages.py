"""`make bench` status_page_req_per_s and status_page_p99_ms: a job's status page (SQLite, served by uvicorn
in its own process) under `LOAD_CONNECTIONS` concurrent keep-alive clients from the bench process, against a
trivial Litestar endpoint served the same way in the same run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import numpy as np
from litestar import Litestar, get
from tortoise import Tortoise

from tracker.db.config import tortoise_config
from tracker.db.session import apply_migrations
from tracker.demo import CAR_REPAIR
from tracker.domain.money import Money
from tracker.services import accounts, workflows
from tracker.services.accounts import ContactFields
from tracker.services.bootstrap import build_services
from tracker.services.jobs import NewJob
from tracker.settings import Settings

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


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


async def status_page_load() -> tuple[tuple[float, float], tuple[float, float]]:
    """(req/s, p99 ms) of the status page, then of the trivial endpoint."""
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
            ("trivial", "tracker.bench_pages:trivial_app", "/"),
            ("status_page", "tracker.app:create_app", path),
        ):
            server, address = _serve(factory, environment)
            try:
                await _until_up(address)
                measured[name] = await _load(address + target)
            finally:
                server.terminate()
                server.wait()
    return measured["status_page"], measured["trivial"]
