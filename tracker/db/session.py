"""Open the database outside the web app (CLI commands, benchmarks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tortoise import Tortoise

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
