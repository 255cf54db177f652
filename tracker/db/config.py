"""Tortoise configuration built from settings."""

from __future__ import annotations

from typing import Any

import asyncpg
from tortoise.backends.base.config_generator import expand_db_url

from tracker.settings import Settings

MODELS_MODULE = "tracker.db.models"
MIGRATIONS_MODULE = "tracker.db.migrations"


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A PostgreSQL connection that goes back to the pool without asyncpg's reset query (advisory locks,
    cursors, LISTEN and session settings reset): a round trip after every statement run outside a
    transaction, for state tracker never leaves on a pooled connection. asyncpg still rolls back a
    transaction left open. Whoever sets session state (SET, advisory locks, LISTEN) on a pooled
    connection must undo it, or use a connection of their own (as LISTEN/NOTIFY does)."""

    def get_reset_query(self) -> str:
        return ""


def tortoise_config(settings: Settings) -> dict[str, Any]:
    url = settings.database_url
    if url.startswith("postgresql://"):
        url = "postgres://" + url.removeprefix("postgresql://")
    connection: str | dict[str, Any] = url
    if url.startswith(("postgres://", "asyncpg://")):
        connection = expand_db_url(url)
        connection["credentials"]["connection_class"] = PooledConnection
    return {
        "connections": {"default": connection},
        "apps": {
            "tracker": {
                "models": [MODELS_MODULE],
                "migrations": MIGRATIONS_MODULE,
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }
