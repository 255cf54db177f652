"""Fixtures: each database test runs on SQLite and, when TRACKER_TEST_POSTGRES_URL is set, on PostgreSQL.

PostgreSQL tests use one throwaway database for the session (created here, dropped at the end), with
every table truncated before each test. In CI (`CI=true`) a missing PostgreSQL fails the run.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.connection import get_connection

from notifications.ssrf import IPAddress
from tracker.app import create_app
from tracker.db.config import tortoise_config
from tracker.services import keys
from tracker.settings import Settings

CURRENT_TIME = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PG_ENV = "TRACKER_TEST_POSTGRES_URL"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep `make test` fast: the slowest tests (`ci_only`) run in CI only."""
    if _in_ci():
        return
    slow = pytest.mark.skip(reason="slow: runs in CI (CI=true)")
    for item in items:
        if item.get_closest_marker("ci_only") is not None:
            item.add_marker(slow)


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """Each test starts with the run's logging, whatever ran before it in the same worker: a command run
    in-process sets logging up as `tracker serve` does (its own stderr handler, INFO, quieter libraries)."""
    root = logging.getLogger()
    root_level = root.level
    levels = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    # pytest's own capture handlers are its subclasses; a plain StreamHandler is the command's.
    root.handlers[:] = [handler for handler in root.handlers if type(handler) is not logging.StreamHandler]
    root.setLevel(root_level)
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def new_postgres_database(server: str, prefix: str) -> Iterator[str]:
    """A brand-new, empty database on the PostgreSQL `server` (not the suite's shared one), dropped
    afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(server, name)
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        if _in_ci():
            pytest.fail(f"{PG_ENV} is not set: CI must run the suite on PostgreSQL too")
        pytest.skip(f"{PG_ENV} is not set")
    name = f"tracker_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as error:
        if _in_ci():
            pytest.fail(f"PostgreSQL at {base} is unreachable: {error}")
        pytest.skip(f"PostgreSQL unreachable: {error}")
    yield _with_database(base, name)
    asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite://:memory:"
    return request.getfixturevalue("postgres_url")


async def _truncate_all() -> None:
    tables = ", ".join(f'"{model._meta.db_table}"' for model in Tortoise.apps["tracker"].values())
    await get_connection("default").execute_script(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[str]:
    """An empty database with the schema, open for the test (and for the app under test)."""
    # Tortoise caches compiled INSERTs by connection name; both engines call theirs "default".
    EXECUTOR_CACHE.clear()
    await Tortoise.init(
        config=tortoise_config(Settings(database_url=database_url)), _enable_global_fallback=True
    )
    try:
        await Tortoise.generate_schemas(safe=True)
        if not database_url.startswith("sqlite"):
            await _truncate_all()
        yield database_url
    finally:
        await Tortoise.close_connections()


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: datetime = CURRENT_TIME

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(db: str) -> Settings:
    return Settings(database_url=db, public_base_url="https://status.example.test", max_body_bytes=64 * 1024)


HOSTS = {
    "localhost": ("127.0.0.1", "::1"),
    "hooks.example.com": ("93.184.215.14",),
    "intranet.example.com": ("10.0.0.1",),
    "split.example.com": ("93.184.215.14", "192.168.1.20"),
}
"""What the tests' resolver answers: these names and no other (nothing leaves the machine)."""


async def offline_resolver(host: str, port: int) -> Sequence[IPAddress]:
    """Webhook host lookups in tests: the HOSTS table; any other name does not resolve."""
    if host.lower() not in HOSTS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [ipaddress.ip_address(address) for address in HOSTS[host.lower()]]


@pytest.fixture
async def client(settings: Settings, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, clock=clock, resolver=offline_resolver)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://tracker.test") as http:
        yield http


@dataclass(frozen=True)
class Keys:
    admin: dict[str, str]
    staff: dict[str, str]
    integrator: dict[str, str]


@pytest.fixture
async def auth(db: str) -> Keys:
    """Authorization headers for one key of each role."""

    async def header(role: str) -> dict[str, str]:
        issued = await keys.create_key(f"test {role}", role, now=CURRENT_TIME)
        return {"Authorization": f"Bearer {issued.secret}"}

    return Keys(
        admin=await header("admin"), staff=await header("staff"), integrator=await header("integrator")
    )
