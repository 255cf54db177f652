"""Estimates: each workflow's fitted history model, and the recomputation of open jobs.

A recomputation is vectorised per workflow version (history model + queue + calendar + cost), written
back with one statement per batch, and compared with what customers were last told: changes that matter
become job events (`eta_moved`, `cost_moved`, `at_risk`, `back_on_track`, `stuck`) for the notifications
to pick up. An estimate-history row is kept whenever a job's estimate moves noticeably.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from tracker.db import bulk
from tracker.db.bulk import OpenJobs
from tracker.db.models import HistoryFit, Job, Workflow
from tracker.domain.errors import Conflict
from tracker.domain.events import NewEvent
from tracker.domain.workflow import JobStatus, StageDefinition, WorkflowDefinition
from tracker.estimates.changes import (
    FIRST_ETA_P90,
    AnnouncedState,
    ChangeThresholds,
    FreshEstimate,
    detect_changes,
    may_have_changed,
    overdue_many,
    promise_deadline,
    stage_visit_id,
)
from tracker.estimates.cost import (
    COST_BASES,
    overrun_quantiles,
    project_costs_many,
    ratio_quantiles,
    stage_shares,
)
from tracker.estimates.eta import JobClocks, eta_ranges
from tracker.estimates.history import JobProgress
from tracker.estimates.model import Basis, Calibration, HistoryModel, RemainingWork, Selection, fit_history
from tracker.estimates.queueing import ServiceTimes, WaitingJob, simulate_queue_waits
from tracker.services.events import Listeners, record_events
from tracker.services.history import estimate_outcomes, gather_history, planned_stages
from tracker.services.jobs import get_job
from tracker.services.keys import person_of
from tracker.services.signals import DeliveriesQueued
from tracker.services.workflows import WorkflowVersion, WorkflowVersions

log = logging.getLogger("tracker.estimates")
ESTIMATOR = "tracker:estimator"
REFIT_LOCK = 0x7472_6B72  # PostgreSQL advisory lock key of the history refit
HISTORY_STEP_S = 3600.0
"""An estimate-history row is kept when an ETA moves by more than this (or the cost by 0.5 %)."""
KEPT_FITS = 3

FloatArray = npt.NDArray[np.float64]
EPOCH_DAY = date(1970, 1, 1)
QueueCache = dict[tuple[str, str], asyncio.Future[dict[int, tuple[float, float]]]]
"""Queue waits per (workflow, stage), computed once per tick and shared by the tick's sweeps."""
SWEEPS_PER_PROCESS = 2
COST_HISTORY = "cost_against_plan"
"""Key of the per-stage cost quantiles in a stored fit."""


@dataclass(frozen=True)
class FittedWorkflow:
    key: str
    model: HistoryModel
    fitted_at: datetime
    cost_quantiles: dict[str, tuple[float, float, int, float, float, int]]
    """Per stage: spent / planned ratio P50, P90, n and overrun P50, P90, n of finished jobs."""


@dataclass(frozen=True)
class StageAhead:
    key: str
    label: str
    current: bool
    """The stage the job is in now (listed first)."""
    probability: float
    expected_visits: float
    expected_duration_s: float
    samples: int
    basis: Basis


@dataclass(frozen=True)
class Explanation:
    """What a job's estimate is made of; durations in working seconds."""

    current_stage: str
    elapsed_s: float
    current_stage_remaining_s: float | None
    queue_wait_s: float
    remaining_p50_s: float
    """The queue wait included, as in the completion range."""
    remaining_p90_s: float
    stages_ahead: tuple[StageAhead, ...]
    """In the order the job meets them: the current stage, the earlier ones it may go back to, the rest."""
    non_working_days: list[date]
    calibration: Calibration
    time_zone: str
    basis: Basis
    samples: int
    selection: Selection


def stages_in_meeting_order(
    remaining: RemainingWork, definition: WorkflowDefinition, current: str, *, locale: str
) -> tuple[StageAhead, ...]:
    """The stages ahead as the job meets them: the one it is in, then those it may be sent back to (rework
    comes right after the current stage), then the stages after it, each group in the workflow's order."""
    position = {stage.key: index for index, stage in enumerate(definition.stages)}
    here = position.get(current, 0)

    def order(key: str) -> tuple[int, int]:
        index = position.get(key, len(position))
        return (0 if key == current else 1 if index < here else 2), index

    return tuple(
        StageAhead(
            key=stage.key,
            label=definition.stage(stage.key).label(locale) if stage.key in position else stage.key,
            current=stage.key == current,
            probability=stage.probability,
            expected_visits=stage.expected_visits,
            expected_duration_s=stage.expected_duration_s,
            samples=stage.samples,
            basis=stage.basis,
        )
        for stage in sorted(remaining.stages, key=lambda stage: order(stage.key))
    )


@dataclass
class EstimateService:
    """Fits, recomputations and explanations; one per app (from `build_services`), holding its fits."""

    versions: WorkflowVersions = field(default_factory=WorkflowVersions)
    thresholds: ChangeThresholds = field(default_factory=ChangeThresholds)
    listeners: Listeners = field(default_factory=Listeners)
    """Who besides contacts and endpoints hears about the events of the scheduled recompute."""
    deliveries_queued: DeliveriesQueued = field(default_factory=DeliveriesQueued)
    _fits: dict[str, FittedWorkflow] = field(default_factory=dict)
    _planned: dict[tuple[str, int], FittedWorkflow] = field(default_factory=dict)

    # ------------------------------------------------------------------ fitting

    async def refit(self, workflow_key: str, *, now: datetime) -> FittedWorkflow:
        """Fit a workflow's history model from its jobs and store it for every process."""
        current = await Workflow.get(key=workflow_key, is_current=True)
        version = await self.versions.get(current.id)
        history = await gather_history(workflow_key, self.versions, now=now)
        evidence = await estimate_outcomes(workflow_key, self.versions, now=now)
        model = await asyncio.to_thread(
            fit_history, history.cases, planned_stages(version), now=now, evidence=evidence
        )
        costs = {
            key: (*ratio_quantiles(h), *overrun_quantiles(h)) for key, h in history.cost_by_stage.items()
        }
        fitted = FittedWorkflow(workflow_key, model, now, costs)
        calibration = model.calibration
        await HistoryFit.create(
            workflow_key=workflow_key,
            fitted_at=now,
            payload=_dump(fitted),
            summary={
                "cases": len(history.cases),
                "p90_factor": _finite(calibration.p90_factor),
                "p90_coverage": _finite(calibration.coverage),
                "calibration_samples": calibration.samples,
                "calibration_source": calibration.source,
            },
        )
        stale = await HistoryFit.filter(workflow_key=workflow_key).order_by("-fitted_at").offset(KEPT_FITS)
        await HistoryFit.filter(id__in=[f.id for f in stale]).delete()
        self._fits[workflow_key] = fitted
        return fitted

    async def refit_all(self, *, now: datetime) -> list[str]:
        """Refit every workflow; with several processes on PostgreSQL only one does it at a time.

        On SQLite nothing is wrapped in a transaction: there is one process, and a transaction would hold
        the single writer lock (and so every API change) while the models fit.
        """
        if not bulk.is_postgres(get_connection("default")):
            return await self._refit_current(now=now)
        async with in_transaction() as connection:
            locked = await connection.execute_query_dict(
                "SELECT pg_try_advisory_xact_lock($1) AS ok", [REFIT_LOCK]
            )
            if not locked[0]["ok"]:
                return []
            return await self._refit_current(now=now)

    async def _refit_current(self, *, now: datetime) -> list[str]:
        keys = [
            str(key)
            for key in await Workflow.filter(is_current=True, archived=False).values_list("key", flat=True)
        ]
        for key in keys:
            await self.refit(key, now=now)
        return keys

    async def fitted(self, version: WorkflowVersion, *, now: datetime) -> FittedWorkflow:
        """The newest stored fit of the workflow; the plan of this version until a refit stores one.

        Fitting history is the scheduled (or an explicit) refit's work, never a request's: it would hold
        the request's transaction (on SQLite, the only write lock) for the whole fit.
        """
        workflow_key = version.key
        # Asked on every change and every batch: compare times first, fetch the model only when it is newer.
        newest = (
            await HistoryFit.filter(workflow_key=workflow_key)
            .order_by("-fitted_at")
            .only("id", "fitted_at")
            .first()
        )
        cached = self._fits.get(workflow_key)
        if newest is None:
            return cached or self._planned_fit(version, now=now)
        if cached is None or cached.fitted_at < newest.fitted_at:
            stored = await HistoryFit.get(id=newest.id)
            cached = _load(workflow_key, stored.fitted_at, bytes(stored.payload))
            self._fits[workflow_key] = cached
        return cached

    def _planned_fit(self, version: WorkflowVersion, *, now: datetime) -> FittedWorkflow:
        """A model of the version's plan alone (no history: quick, and kept for the app's life)."""
        key = (version.key, version.version)
        planned = self._planned.get(key)
        if planned is None:
            model = fit_history([], planned_stages(version), now=now)
            planned = self._planned[key] = FittedWorkflow(version.key, model, now, {})
        return planned

    # ------------------------------------------------------------------ explanation

    async def explain(self, job_id: int, *, now: datetime, locale: str = "en") -> Explanation:
        """What an open job's estimate is made of: the stages ahead, the queue, the days off in between."""
        job = await get_job(job_id)
        if not JobStatus(job.status).is_open:
            raise Conflict(f"the job is {job.status}: it has no estimate", code="job_closed")
        version = await self.versions.get(job.workflow_id)
        fitted = await self.fitted(version, now=now)
        jobs = await bulk.jobs_by_id(get_connection("default"), [job.id])
        waits = await _queue_waits(version, jobs, now, {}) if len(jobs) else (np.zeros(1), np.zeros(1))
        calendar = version.calendar
        until = job.held_since or now
        elapsed = max(
            calendar.working_seconds_between(job.stage_entered_at, until) - job.stage_held_seconds, 0.0
        )
        age = calendar.working_seconds_between(job.created_at, max(until, job.created_at))
        handled_by = _people(jobs.handled_by)[0] if len(jobs) else None
        remaining = fitted.model.remaining(
            JobProgress(job.stage_key, elapsed, None, job.stages_completed, age, handled_by)
        )
        # Queue wait and work add up as in `eta_ranges`, so the hours explain the completion range.
        wait_p50, wait_p90 = float(waits[0][0]), float(waits[1][0])
        remaining_p50 = remaining.p50_s + wait_p50
        remaining_p90 = max(remaining.p90_s + wait_p90, remaining_p50)
        p90_end = job.eta_p90 or calendar.add_working_seconds(now, remaining_p90)
        return Explanation(
            current_stage=job.stage_key,
            elapsed_s=elapsed,
            current_stage_remaining_s=remaining.current_stage_remaining_s,
            queue_wait_s=wait_p50,
            remaining_p50_s=remaining_p50,
            remaining_p90_s=remaining_p90,
            stages_ahead=stages_in_meeting_order(remaining, version.definition, job.stage_key, locale=locale),
            non_working_days=calendar.non_working_days_between(now, p90_end),
            calibration=fitted.model.calibration,
            time_zone=calendar.timezone.key,
            basis=remaining.basis,
            samples=remaining.samples,
            selection=fitted.model.selection,
        )

    # ------------------------------------------------------------------ recomputation

    async def recompute_job(self, job_id: int, now: datetime) -> list[NewEvent]:
        """Refresh one job's estimate in the transaction that just changed it; return the events found,
        for that transaction to record with its own."""
        return await self.recompute_jobs([job_id], now=now)

    async def recompute_jobs(self, job_ids: Sequence[int], *, now: datetime) -> list[NewEvent]:
        """Recompute the given open jobs now (inside the caller's transaction, if any); return the events
        to record."""
        connection = get_connection("default")
        jobs = await bulk.jobs_by_id(connection, list(job_ids))
        return await self._estimate(connection, jobs, now=now, queues={})

    async def recompute_tick(self, *, now: datetime, tick_start: datetime, batch_size: int) -> int:
        """Recompute every open job not yet estimated since `tick_start`, batch by batch.

        Safe with several processes: each batch is claimed in the database, so no job is computed twice
        in a tick and none is skipped (a batch whose process dies is released and taken again). On
        PostgreSQL a process runs two sweeps side by side, so one computes while the other waits for its
        write; SQLite has a single writer.
        """
        queues: QueueCache = {}  # queue waits hardly move within a tick: compute them once per stage
        sweeps = SWEEPS_PER_PROCESS if bulk.is_postgres(get_connection("default")) else 1
        tasks = [
            asyncio.ensure_future(
                self._sweep(now=now, tick_start=tick_start, batch_size=batch_size, queues=queues)
            )
            for _ in range(sweeps)
        ]
        try:
            return sum(await asyncio.gather(*tasks))
        finally:
            for task in tasks:  # one sweep failed: stop the other too (its open batch rolls back)
                task.cancel()

    async def _sweep(
        self, *, now: datetime, tick_start: datetime, batch_size: int, queues: QueueCache
    ) -> int:
        done = 0
        while True:
            # After a round that found work, one more: it picks up batches another sweep claimed and then
            # gave up (its process died or it rolled back); jobs still held by others are theirs to finish.
            found = 0
            for status in bulk.SWEPT_STATUSES:
                found += await self._sweep_status(
                    status, now=now, tick_start=tick_start, batch_size=batch_size, queues=queues
                )
            if not found:
                return done
            done += found

    async def _sweep_status(
        self, status: str, *, now: datetime, tick_start: datetime, batch_size: int, queues: QueueCache
    ) -> int:
        done, after_id = 0, 0
        while True:
            async with in_transaction() as connection:
                jobs = await bulk.claim_jobs(
                    connection, status=status, after_id=after_id, tick_start=tick_start, limit=batch_size
                )
                if not len(jobs):
                    return done
                events = await self._estimate(connection, jobs, now=now, queues=queues)
                await record_events(events, self.listeners, connection=connection)
            if events:
                self.deliveries_queued.fire()
            done += len(jobs)
            after_id = int(jobs.id.max())  # not the last element: the batch's arrays need not be sorted

    async def _estimate(
        self, connection: BaseDBAsyncClient, jobs: OpenJobs, *, now: datetime, queues: QueueCache
    ) -> list[NewEvent]:
        """Estimate and write back a batch of jobs; return the events to record."""
        events: list[NewEvent] = []
        for workflow_id in np.unique(jobs.workflow_id).tolist():
            same = jobs.workflow_id == workflow_id
            group = jobs if same.all() else jobs.take(np.flatnonzero(same))
            version = await self.versions.get(workflow_id)
            fitted = await self.fitted(version, now=now)
            waits = await _queue_waits(version, group, now, queues)
            events += await self._estimate_group(connection, version, fitted, group, waits, now=now)
        return events

    async def _estimate_group(
        self,
        connection: BaseDBAsyncClient,
        version: WorkflowVersion,
        fitted: FittedWorkflow,
        jobs: OpenJobs,
        waits: tuple[FloatArray, FloatArray],
        *,
        now: datetime,
    ) -> list[NewEvent]:
        model, calendar, definition = fitted.model, version.calendar, version.definition
        codes = {key: i for i, key in enumerate(model.stage_keys)}
        plan_index = {stage.key: i for i, stage in enumerate(definition.stages)}
        stage_codes = _codes(jobs.stage_key, codes, missing=-2)
        clocks = JobClocks(
            stage_codes=stage_codes,
            stages_completed=jobs.stages_completed,
            stage_entered=jobs.stage_entered_s,
            held_since=jobs.held_since_s,
            stage_held_s=jobs.stage_held_seconds,
            created=jobs.created_s,
            queue_wait_p50_s=waits[0],
            queue_wait_p90_s=waits[1],
            handlers=model.handler_codes(_people(jobs.handled_by)),
        )
        now_s = now.timestamp()
        eta = eta_ranges(model, calendar, clocks, now_s)

        # Cost: the quote spread over the stages by the plan, blended with what finished jobs spent
        # from each stage on.
        position = _codes(jobs.stage_key, plan_index, missing=0)
        planned = [stage.planned_cost for stage in definition.stages]
        share, after = stage_shares(planned)
        quantiles = np.array(
            [
                fitted.cost_quantiles.get(s.key, (np.nan, np.nan, 0, np.nan, np.nan, 0))
                for s in definition.stages
            ],
            dtype=np.float64,
        ).reshape(len(definition.stages), 6)
        per_job = quantiles[position]
        costs = project_costs_many(
            actual_cost=jobs.actual_cost_f,
            stage_cost=np.clip(jobs.stage_cost_f, 0.0, jobs.actual_cost_f),
            share_current=share[position],
            share_after=after[position],
            planned_total=float(sum(planned)),
            budget=jobs.quote_f,
            ratio_p50=per_job[:, 0],
            ratio_p90=per_job[:, 1],
            ratio_samples=per_job[:, 2].astype(np.int64),
            overrun_p50=per_job[:, 3],
            overrun_p90=per_job[:, 4],
            overrun_samples=per_job[:, 5].astype(np.int64),
        )
        basis = [
            _basis_label(time_basis, COST_BASES[int(c)])
            for time_basis, c in zip(_time_bases(model, stage_codes), costs.basis, strict=True)
        ]
        await bulk.write_estimates(
            connection,
            bulk.EstimateColumns(
                ids=jobs.id,
                eta_p50=eta.eta_p50,
                eta_p90=eta.eta_p90,
                cost_p50=costs.p50,
                cost_p90=costs.p90,
                basis=basis,
            ),
            now=now,
        )
        return await self._record_changes(
            connection, version, fitted, jobs, eta, costs.p50, costs.p90, basis, now=now
        )

    async def _record_changes(
        self,
        connection: BaseDBAsyncClient,
        version: WorkflowVersion,
        fitted: FittedWorkflow,
        jobs: OpenJobs,
        eta: Any,
        cost_p50: FloatArray,
        cost_p90: FloatArray,
        basis: list[str],
        *,
        now: datetime,
    ) -> list[NewEvent]:
        """Keep estimate history where it moved; return the changes customers should hear about, as events."""
        calendar = version.calendar
        promised = _promised_epochs(jobs.promised_day, version)
        stage_p90 = _stage_p90(fitted.model, jobs.stage_key)
        visit_ids = [
            stage_visit_id(job_id, completed)
            for job_id, completed in zip(jobs.id.tolist(), jobs.stages_completed.tolist(), strict=True)
        ]
        mask = may_have_changed(
            announced_eta_p50=jobs.announced_eta_s,
            fresh_eta_p50=eta.eta_p50,
            fresh_eta_p90=eta.eta_p90,
            promised_at=promised,
            announced_at_risk=jobs.announced_at_risk,
            announced_cost_p50=jobs.announced_cost_f,
            fresh_cost_p50=cost_p50,
            stage_elapsed_s=eta.elapsed_s,
            stage_p90_s=stage_p90,
            stuck_announced=np.array(
                [stuck == visit for stuck, visit in zip(jobs.announced_stuck, visit_ids, strict=True)],
                np.bool_,
            ),
            now=now,
            calendar=calendar,
            thresholds=self.thresholds,
        )
        old_p50, old_p90, old_cost = jobs.eta_p50_s, jobs.eta_p90_s, jobs.cost_p50_f
        moved = (
            np.isnan(old_p50)
            | (np.abs(old_p50 - eta.eta_p50) > HISTORY_STEP_S)
            | (np.abs(old_p90 - eta.eta_p90) > HISTORY_STEP_S)
            | ~(np.abs(old_cost - cost_p50) <= 0.005 * np.maximum(old_cost, 1.0))
            | np.array([old != new for old, new in zip(jobs.estimate_basis, basis, strict=True)])
        )
        kept = np.flatnonzero(moved)
        await bulk.write_history(
            connection,
            bulk.HistoryRows(
                job_ids=jobs.id[kept].tolist(),
                eta_p50=eta.eta_p50[kept].tolist(),
                eta_p90=eta.eta_p90[kept].tolist(),
                cost_p50=cost_p50[kept].tolist(),
                cost_p90=cost_p90[kept].tolist(),
                basis=[basis[i] for i in kept],
                overdue=overdue_many(jobs.first_eta_p90_s[kept], now.timestamp()).tolist(),
                detail=[
                    json.dumps(
                        {
                            "remaining_p50_s": round(float(eta.remaining_p50_s[i])),
                            "remaining_p90_s": round(float(eta.remaining_p90_s[i])),
                            "raw_p90_s": round(float(eta.raw_p90_s[i])),
                            "stage_elapsed_s": round(float(eta.elapsed_s[i])),
                        }
                    )
                    for i in kept
                ],
            ),
            now=now,
        )
        announcements: list[tuple[int, dict[str, Any]]] = []
        events: list[NewEvent] = []
        for i in np.flatnonzero(mask):
            job_id = int(jobs.id[i])
            raw = jobs.announced[i]
            payload: dict[str, Any] | None = json.loads(raw) if raw is not None else None
            previous = AnnouncedState.from_payload(payload) if payload is not None else None
            fresh = FreshEstimate(
                eta_p50=_instant(eta.eta_p50[i]),
                eta_p90=_instant(eta.eta_p90[i]),
                cost_p50=_money(cost_p50[i]),
                promised_at=None if np.isnan(promised[i]) else _instant(promised[i]),
                stage_visit_id=visit_ids[i],
                stage_elapsed_s=float(eta.elapsed_s[i]),
                stage_p90_s=None if np.isnan(stage_p90[i]) else float(stage_p90[i]),
            )
            changes = detect_changes(
                previous,
                fresh,
                now=now,
                calendar=calendar,
                thresholds=self.thresholds,
            )
            first_p90 = (payload or {}).get(FIRST_ETA_P90) or _instant(eta.eta_p90[i]).isoformat()
            if changes.announced != previous:
                announcements.append((job_id, changes.announced.to_payload() | {FIRST_ETA_P90: first_p90}))
            events.extend(
                NewEvent(job_id, int(jobs.version[i]), event.type, event.payload, ESTIMATOR, now)
                for event in changes.events
            )
        await bulk.write_announced(connection, announcements)
        return events


async def _queue_waits(
    version: WorkflowVersion, jobs: OpenJobs, now: datetime, queues: QueueCache
) -> tuple[FloatArray, FloatArray]:
    """Expected wait of jobs queued at stages with limited capacity (first come, first served)."""
    p50 = np.zeros(len(jobs))
    p90 = np.zeros(len(jobs))
    present = set(jobs.stage_key)
    for stage in version.definition.stages:
        if stage.capacity is None or stage.key not in present:
            continue
        key = (version.key, stage.key)
        if key not in queues:
            queues[key] = asyncio.ensure_future(_stage_queue(version.key, stage, now))
        waits = await queues[key]
        for i, job_id in enumerate(jobs.id.tolist()):
            p50[i], p90[i] = waits.get(job_id, (p50[i], p90[i]))
    return p50, p90


async def _stage_queue(
    workflow_key: str, stage: StageDefinition, now: datetime
) -> dict[int, tuple[float, float]]:
    """Waits of the jobs in a stage beyond its first `capacity` (those in service), by job id."""
    assert stage.capacity is not None
    in_stage = (
        await Job.filter(workflow__key=workflow_key, stage_key=stage.key, status=JobStatus.OPEN.value)
        .order_by("stage_entered_at", "id")
        .values("id", "stage_entered_at")
    )
    if len(in_stage) <= stage.capacity:
        return {}
    serving, waiting = in_stage[: stage.capacity], in_stage[stage.capacity :]
    mean = float(stage.duration.pert_mean) * 3600
    spread = float(stage.duration.pessimistic - stage.duration.optimistic) * 3600 / 6
    waits = simulate_queue_waits(
        stage.capacity,
        [WaitingJob(str(j["id"]), j["stage_entered_at"]) for j in waiting],
        [(now - j["stage_entered_at"]).total_seconds() for j in serving],
        ServiceTimes.from_mean_sd(mean, max(spread, mean * 0.1)),
        runs=500,
    )
    return {int(w.job_id): (w.expected_wait_s, w.p90_wait_s) for w in waits}


def _time_bases(model: HistoryModel, stage_codes: npt.NDArray[np.int64]) -> list[str]:
    bases = model.position_bases()
    return [bases[int(code)] if code >= 0 else "planned" for code in stage_codes]


def _basis_label(time_basis: str, cost_basis: str) -> str:
    return time_basis if time_basis == cost_basis or cost_basis == "actual" else f"{time_basis}/{cost_basis}"


BASIS_LABELS: tuple[str, ...] = tuple(
    sorted({_basis_label(t, c) for t in ("planned", "blend", "history") for c in COST_BASES})
)
"""Every `basis` an estimate can show: the time basis, and the cost basis after a slash when it differs."""


def _stage_p90(model: HistoryModel, stage_keys: list[str]) -> FloatArray:
    p90 = model.stage_p90_s()
    codes = {key: i for i, key in enumerate(model.stage_keys)}
    return np.array([p90[codes[k]] if k in codes else np.nan for k in stage_keys], dtype=np.float64)


def _promised_epochs(days: FloatArray, version: WorkflowVersion) -> FloatArray:
    """The deadline of each promised date (days since 1970-01-01), NaN where nothing was promised.
    Computed once per distinct date: a batch promises few of them."""
    promised = np.isfinite(days)
    distinct, where = np.unique(days[promised], return_inverse=True)
    ends = np.array(
        [
            promise_deadline(EPOCH_DAY + timedelta(days=int(day)), version.calendar).timestamp()
            for day in distinct
        ],
        dtype=np.float64,
    )
    epochs = np.full(len(days), np.nan)
    epochs[promised] = ends[where]
    return epochs


def _finite(value: float) -> float | None:
    """JSON has no NaN: a figure that could not be measured is null."""
    return float(value) if np.isfinite(value) else None


def _people(actors: Sequence[str | None]) -> list[str | None]:
    """Who moved each job into its current stage, as the model names people (:func:`person_of`)."""
    return [None if actor is None else person_of(actor) for actor in actors]


def _codes(keys: list[str], codes: dict[str, int], *, missing: int) -> npt.NDArray[np.int64]:
    """Each key's code, `missing` for keys without one."""
    return np.array([codes.get(key, missing) for key in keys], dtype=np.int64)


def _instant(epoch: float) -> datetime:
    return datetime.fromtimestamp(float(epoch), UTC)


def _money(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def _dump(fitted: FittedWorkflow) -> bytes:
    buffer = io.BytesIO()
    fitted.model.save(buffer, extra={COST_HISTORY: fitted.cost_quantiles})
    return buffer.getvalue()


def _load(key: str, fitted_at: datetime, payload: bytes) -> FittedWorkflow:
    model, extra = HistoryModel.load(io.BytesIO(payload))
    # A fit stored before costs were learned against the plan has none: it is used without them until the
    # next refit.
    costs = {k: tuple(v) for k, v in extra.get(COST_HISTORY, {}).items()}
    return FittedWorkflow(key, model, fitted_at, costs)
