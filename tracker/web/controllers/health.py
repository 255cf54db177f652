"""Liveness and readiness probes (no key needed)."""

from __future__ import annotations

from litestar import Response, get
from litestar.openapi import ResponseSpec

from tracker.services.health import database_problem
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
    problem = await database_problem()
    if problem is not None:
        return Response({"status": "unavailable", "reason": problem}, status_code=503)
    return Response({"status": "ok"}, status_code=200)
