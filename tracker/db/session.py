"""Open the database outside the web app (CLI commands, benchmarks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tortoise import Tortoise
from tortoise.connection import get_connection
from tortoise.migrations.executor import MigrationExecutor

from tracker.db.config import tortoise_config
from tracker.settings import Settings


def ensure_sqlite_directory(settings: Settings) -> None:
    if settings.is_sqlite:
        path = settings.database_url.removeprefix("sqlite://").split("?")[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[None]:
    ensure_sqlite_directory(settings)
    await Tortoise.init(config=tortoise_config(settings))
    try:
        yield
    finally:
        await Tortoise.close_connections()


async def apply_migrations(settings: Settings) -> None:
    from tortoise.migrations.api.migrate import migrate

    ensure_sqlite_directory(settings)
    try:
        await migrate(config=tortoise_config(settings))
    finally:
        await Tortoise.close_connections()


async def pending_migrations(settings: Settings) -> list[str]:
    """The migrations not yet applied to the database, in order; empty when it is up to date."""
    async with open_database(settings):
        connection = get_connection("default")
        await connection.execute_query("SELECT 1")  # the recorder reads an unreachable database as empty
        executor = MigrationExecutor(connection, tortoise_config(settings)["apps"])
        return [step.migration.name for step in await executor.plan() if not step.backward]
