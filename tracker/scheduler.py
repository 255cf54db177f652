"""Periodic ticks in each process: recompute open jobs, refit the history models, queue daily emails.

APScheduler only ticks; the database decides who does what (claims and an advisory lock), so every process
may run the same ticks at once. Tick boundaries are aligned on the interval, so processes agree on which
tick a recomputation belongs to.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from litestar import Litestar

from tracker.clock import Clock
from tracker.services import daily_emails
from tracker.services.bootstrap import Services
from tracker.services.estimates import EstimateService
from tracker.settings import Settings

log = logging.getLogger("tracker.scheduler")


def tick_start(now: datetime, interval_s: int) -> datetime:
    """The start of the tick `now` falls in: ticks are aligned on multiples of the interval."""
    seconds = now.timestamp()
    return datetime.fromtimestamp(seconds - seconds % interval_s, UTC)


async def recompute_open_jobs(estimates: EstimateService, settings: Settings, clock: Clock) -> int:
    now = clock()
    done = await estimates.recompute_tick(
        now=now,
        tick_start=tick_start(now, settings.recompute_interval_s),
        batch_size=settings.recompute_batch_size,
    )
    log.info("recomputed open jobs", extra={"fields": {"jobs": done}})
    return done


async def refit_history(estimates: EstimateService, clock: Clock) -> list[str]:
    keys = await estimates.refit_all(now=clock())
    log.info("refitted history models", extra={"fields": {"workflows": keys}})
    return keys


DAILY_EMAILS_INTERVAL_S = 300
"""How often each process looks for daily emails that became due (queuing them twice writes nothing)."""


async def queue_daily_emails(settings: Settings, services: Services, clock: Clock) -> int:
    due = await daily_emails.queue_daily_emails(settings, clock())
    if due:
        services.deliveries_queued.fire()
    return due


@asynccontextmanager
async def scheduler(app: Litestar) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if not settings.scheduler_enabled:
        yield
        return
    services: Services = app.state.services
    estimates = services.estimates
    clock: Clock = app.state.clock
    ticker = AsyncIOScheduler(
        timezone=UTC,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": max(60, settings.recompute_interval_s // 2),
        },
    )
    ticker.add_job(
        recompute_open_jobs,
        "interval",
        seconds=settings.recompute_interval_s,
        args=[estimates, settings, clock],
        id="recompute",
        replace_existing=True,
        next_run_time=clock(),
    )
    ticker.add_job(
        refit_history,
        "interval",
        seconds=settings.refit_interval_s,
        args=[estimates, clock],
        id="refit",
        replace_existing=True,
    )
    ticker.add_job(
        queue_daily_emails,
        "interval",
        seconds=DAILY_EMAILS_INTERVAL_S,
        args=[settings, services, clock],
        id="daily-emails",
        replace_existing=True,
    )
    ticker.start()
    try:
        yield
    finally:
        ticker.shutdown(wait=False)
