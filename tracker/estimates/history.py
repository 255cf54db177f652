"""What the estimator learns from: planned stages, past stage visits, and the progress of open jobs.

A job is a sequence of stage visits. Durations are in *working* seconds (the caller converts with
the business calendar), so weekends and holidays do not blur the learned distributions. A visit
that is still running is a right-censored observation: the stage took *at least* that long.

:class:`VisitTable` is the compact, array form of many case histories that the model is fitted
from; the backtest builds it straight from an event log without creating Python objects per visit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class PlannedStage:
    """A workflow stage with its planned three-point duration (working seconds)."""

    key: str
    optimistic_s: float
    most_likely_s: float
    pessimistic_s: float

    def __post_init__(self) -> None:
        if not 0 <= self.optimistic_s <= self.most_likely_s <= self.pessimistic_s:
            raise ValueError(f"stage {self.key!r}: need 0 <= optimistic <= most likely <= pessimistic")

    @property
    def pert_mean_s(self) -> float:
        """Mean of the PERT beta distribution: (a + 4m + b) / 6."""
        return (self.optimistic_s + 4 * self.most_likely_s + self.pessimistic_s) / 6


@dataclass(frozen=True)
class VisitRecord:
    """One visit of a job to a stage; ``duration_s`` is working time so far when not finished.
    ``handled_by`` is who finished the visit (moved the job on), when known."""

    case_id: str
    stage_key: str
    entered_at: datetime
    duration_s: float
    finished: bool
    handled_by: str | None = None


@dataclass(frozen=True)
class CaseHistory:
    """The visits of one job in order, and whether the job is closed.

    ``open_s`` is for an open job whose last visit is finished but whose next stage is not yet
    known (the usual situation in an event log, which records completions only): the working
    seconds since that last visit ended.
    """

    case_id: str
    visits: tuple[VisitRecord, ...]
    finished: bool
    open_s: float = 0.0


@dataclass(frozen=True)
class JobProgress:
    """Where an open job stands.

    ``current_stage`` is None when the job is between stages (it has completed
    ``last_completed_stage`` and the next one is not known) or has not started yet.
    ``elapsed_in_stage_s`` is the working time spent in the current stage, or since the last
    completion when between stages. ``completed_stages`` counts finished visits, repeats included.
    ``job_age_s``, when known, is the working time since the job's first stage began: jobs that
    have been waiting long tend to wait longer, and the model conditions on it where history allows.
    ``handled_by`` is who finished the job's last completed stage, when known.
    """

    current_stage: str | None
    elapsed_in_stage_s: float
    last_completed_stage: str | None
    completed_stages: int
    job_age_s: float | None = None
    handled_by: str | None = None


@dataclass(frozen=True)
class VisitTable:
    """Visits of many cases as parallel arrays, grouped by case in visit order.

    ``case_start[c]:case_start[c + 1]`` indexes the visits of case ``c``. ``informative`` is False
    for visits whose duration carries no information (the first event of a case in an event log
    has no known start). ``entered`` is POSIX seconds and only orders visits in time. ``handler``
    codes who finished each visit (names in ``handler_names``; -1 unknown), None when no visit says.
    """

    stage_keys: tuple[str, ...]
    case_start: IntArray
    stage: IntArray
    entered: FloatArray
    duration: FloatArray
    finished: BoolArray
    informative: BoolArray
    case_finished: BoolArray
    case_open_s: FloatArray
    handler: IntArray | None = None
    handler_names: tuple[str, ...] = ()

    @property
    def n_cases(self) -> int:
        return len(self.case_start) - 1

    @property
    def case_of_visit(self) -> IntArray:
        return np.repeat(np.arange(self.n_cases, dtype=np.int64), np.diff(self.case_start))

    @classmethod
    def from_cases(cls, cases: Iterable[CaseHistory], stage_keys: Sequence[str] = ()) -> VisitTable:
        """Encode case histories; stage keys not in ``stage_keys`` are appended in order of appearance."""
        codes = {key: i for i, key in enumerate(stage_keys)}
        starts = [0]
        stage: list[int] = []
        entered: list[float] = []
        duration: list[float] = []
        finished: list[bool] = []
        case_finished: list[bool] = []
        case_open: list[float] = []
        handlers: dict[str, int] = {}
        handler: list[int] = []
        for case in cases:
            for visit in case.visits:
                stage.append(codes.setdefault(visit.stage_key, len(codes)))
                who = visit.handled_by
                handler.append(-1 if who is None else handlers.setdefault(who, len(handlers)))
                entered.append(visit.entered_at.timestamp())
                duration.append(max(float(visit.duration_s), 0.0))
                finished.append(visit.finished)
            starts.append(len(stage))
            case_finished.append(case.finished)
            case_open.append(0.0 if case.finished else max(float(case.open_s), 0.0))
        return cls(
            stage_keys=tuple(codes),
            case_start=np.asarray(starts, dtype=np.int64),
            stage=np.asarray(stage, dtype=np.int64),
            entered=np.asarray(entered, dtype=np.float64),
            duration=np.asarray(duration, dtype=np.float64),
            finished=np.asarray(finished, dtype=np.bool_),
            informative=np.ones(len(stage), dtype=np.bool_),
            case_finished=np.asarray(case_finished, dtype=np.bool_),
            case_open_s=np.asarray(case_open, dtype=np.float64),
            handler=np.asarray(handler, dtype=np.int64) if handlers else None,
            handler_names=tuple(handlers),
        )
