"""Whether this process can serve: the database answers."""

from __future__ import annotations

from tortoise.connection import get_connection


async def database_problem() -> str | None:
    """None when the database answers a query; otherwise the kind of error it gave."""
    try:
        await get_connection("default").execute_query("SELECT 1")
    except Exception as error:  # any failure to reach the database means not ready
        return type(error).__name__
    return None
