"""Liveness and readiness probes (no key needed)."""

from __future__ import annotations

from litestar import Response, get
from litestar.openapi import ResponseSpec
from tortoise.connection import get_connection

from tracker.web.auth import PUBLIC


@get("/health/live", opt={PUBLIC: True}, tags=["Operations"], operation_id="Live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/health/ready",
    opt={PUBLIC: True},
    tags=["Operations"],
    operation_id="Ready",
    responses={503: ResponseSpec(dict[str, str], description="The database does not answer")},
)
async def ready() -> Response[dict[str, str]]:
    """Ready when the database answers."""
    try:
        await get_connection("default").execute_query("SELECT 1")
    except Exception as error:  # any failure to reach the database means not ready
        return Response({"status": "unavailable", "reason": type(error).__name__}, status_code=503)
    return Response({"status": "ok"}, status_code=200)
