"""Completion-date ranges for many jobs at once: history model + queue wait + business calendar.

Everything is float64 arrays (POSIX seconds for instants, working seconds for durations), so the
scheduled recomputation of every open job is a few numpy operations per workflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tracker.estimates.calendar import BusinessCalendar
from tracker.estimates.model import HistoryModel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class JobClocks:
    """Where each job stands, one array element per job."""

    stage_codes: IntArray
    """Index of the current stage in the model's `stage_keys` (-2: a stage the model does not know)."""
    stages_completed: IntArray
    stage_entered: FloatArray
    held_since: FloatArray
    """When the job went on hold, NaN when it is not on hold: the clock stops there."""
    stage_held_s: FloatArray
    created: FloatArray
    """When each job was opened: its age in working time sharpens the estimate."""
    queue_wait_p50_s: FloatArray
    queue_wait_p90_s: FloatArray
    handlers: IntArray | None = None
    """Who finished each job's last stage, as the model's codes (:meth:`HistoryModel.handler_codes`)."""


@dataclass(frozen=True)
class EtaRanges:
    elapsed_s: FloatArray
    """Working seconds spent in the current stage (hold excluded)."""
    remaining_p50_s: FloatArray
    remaining_p90_s: FloatArray
    raw_p90_s: FloatArray
    """The remaining P90 before calibration: what later calibrations learn from."""
    eta_p50: FloatArray
    eta_p90: FloatArray


def eta_ranges(model: HistoryModel, calendar: BusinessCalendar, jobs: JobClocks, now: float) -> EtaRanges:
    """P50 and P90 completion instants, counted in working time from `now` (never in the past)."""
    clock_stop = np.where(np.isnan(jobs.held_since), now, jobs.held_since)
    worked = calendar.working_seconds_between_many(
        jobs.stage_entered, np.maximum(clock_stop, jobs.stage_entered)
    )
    elapsed = np.maximum(worked - jobs.stage_held_s, 0.0)
    positions = model.positions(jobs.stage_codes, np.full_like(jobs.stage_codes, -1))
    positions = np.where(jobs.stage_codes == -2, 2 * model.n_stages, positions)
    age = calendar.working_seconds_between_many(jobs.created, np.maximum(clock_stop, jobs.created))
    p50, p90, raw90 = model.remaining_arrays(positions, jobs.stages_completed, elapsed, age, jobs.handlers)
    p50 = p50 + jobs.queue_wait_p50_s
    p90 = np.maximum(p90 + jobs.queue_wait_p90_s, p50)
    start = np.full(p50.shape, now)
    return EtaRanges(
        elapsed_s=elapsed,
        remaining_p50_s=p50,
        remaining_p90_s=p90,
        raw_p90_s=raw90 + jobs.queue_wait_p90_s,
        eta_p50=calendar.add_working_seconds_many(start, p50),
        eta_p90=calendar.add_working_seconds_many(start, p90),
    )
