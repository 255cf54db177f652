"""Synthetic stage-based workloads with known duration distributions, for tests and benchmarks.

A process is a Markov chain over stages (rework loops and skips allowed) whose visit durations are
log-normal. Because the truth is known, the best possible estimate can be computed and compared
with what the history model learns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from tracker.estimates.eventlog import EventLog
from tracker.estimates.history import CaseHistory, FloatArray, IntArray, VisitRecord

END = "END"
_HOUR = 3600.0
_DAY = 86_400.0


@dataclass(frozen=True)
class SyntheticStage:
    """A stage whose visits last log-normally: ``median_s`` * exp(``sigma`` * N(0, 1))."""

    key: str
    median_s: float
    sigma: float
    cost_per_hour: float = 0.0


@dataclass(frozen=True)
class SyntheticProcess:
    """Stages, where a job starts, and next-stage probabilities (``END`` closes the job)."""

    stages: tuple[SyntheticStage, ...]
    first: str
    transitions: Mapping[str, Mapping[str, float]]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(stage.key for stage in self.stages)

    def transition_matrix(self) -> FloatArray:
        """Row-stochastic matrix over stages, END as the last column."""
        index = {key: i for i, key in enumerate(self.keys)}
        index[END] = len(self.stages)
        matrix = np.zeros((len(self.stages), len(self.stages) + 1))
        for here, row in self.transitions.items():
            for there, p in row.items():
                matrix[index[here], index[there]] = p
        return np.asarray(matrix / matrix.sum(axis=1, keepdims=True), dtype=np.float64)

    def durations(self, stages: IntArray, rng: np.random.Generator) -> FloatArray:
        median = np.array([stage.median_s for stage in self.stages])[stages]
        sigma = np.array([stage.sigma for stage in self.stages])[stages]
        return np.asarray(median * np.exp(sigma * rng.standard_normal(stages.size)), dtype=np.float64)

    def simulate(
        self, start_stages: IntArray, rng: np.random.Generator, max_steps: int = 200
    ) -> tuple[IntArray, IntArray, FloatArray]:
        """Paths from the given entry stages: (path index, stage, duration) per visit, in order."""
        matrix = np.cumsum(self.transition_matrix(), axis=1)
        end = len(self.stages)
        current = start_stages.copy()
        alive = np.arange(current.size)
        out_path: list[IntArray] = []
        out_stage: list[IntArray] = []
        out_duration: list[FloatArray] = []
        for _ in range(max_steps):
            if alive.size == 0:
                break
            out_path.append(alive)
            out_stage.append(current[alive])
            out_duration.append(self.durations(current[alive], rng))
            u = rng.random(alive.size)
            current[alive] = (matrix[current[alive]] < u[:, None]).sum(axis=1)
            alive = alive[current[alive] < end]
        path = np.concatenate(out_path)
        order = np.argsort(path, kind="stable")  # steps stay in order within a path
        return path[order], np.concatenate(out_stage)[order], np.concatenate(out_duration)[order]


REPAIR_SHOP = SyntheticProcess(
    stages=(
        SyntheticStage("intake", 2 * _HOUR, 0.5, 20.0),
        SyntheticStage("diagnose", 1 * _DAY, 0.6, 40.0),
        SyntheticStage("parts", 3 * _DAY, 0.8, 5.0),
        SyntheticStage("repair", 2 * _DAY, 0.7, 60.0),
        SyntheticStage("inspect", 4 * _HOUR, 0.5, 30.0),
        SyntheticStage("deliver", 1 * _DAY, 0.5, 10.0),
    ),
    first="intake",
    transitions={
        "intake": {"diagnose": 1.0},
        "diagnose": {"parts": 0.4, "repair": 0.55, END: 0.05},
        "parts": {"repair": 1.0},
        "repair": {"inspect": 1.0},
        "inspect": {"repair": 0.25, "deliver": 0.75},
        "deliver": {END: 1.0},
    },
)


@dataclass(frozen=True)
class SyntheticWorkload:
    """Generated jobs: arrival times and the visits of each (durations in seconds, 24x7)."""

    process: SyntheticProcess
    arrival: FloatArray
    visit_case: IntArray
    visit_stage: IntArray
    visit_duration: FloatArray

    @property
    def visit_end(self) -> FloatArray:
        """Completion instant of every visit."""
        csum = np.cumsum(self.visit_duration)
        first = np.searchsorted(self.visit_case, np.arange(self.arrival.size))
        before_case = (csum - self.visit_duration)[first]
        return np.asarray(
            self.arrival[self.visit_case] + csum - before_case[self.visit_case], dtype=np.float64
        )

    def event_log(self, *, with_cost: bool = False) -> EventLog:
        """Each visit's completion as an event named by its stage."""
        rates = np.array([stage.cost_per_hour for stage in self.process.stages])
        return EventLog.from_arrays(
            self.visit_case,
            self.visit_stage,
            self.visit_end,
            rates[self.visit_stage] * self.visit_duration / _HOUR if with_cost else None,
            tuple(f"job-{i}" for i in range(self.arrival.size)),
            self.process.keys,
        )

    def cases_at(self, now: float) -> list[CaseHistory]:
        """What a service would know at ``now``: finished visits, open visits censored."""
        ends = self.visit_end
        starts = ends - self.visit_duration
        bounds = np.searchsorted(self.visit_case, np.arange(self.arrival.size + 1))
        keys = self.process.keys
        cases: list[CaseHistory] = []
        for c in np.flatnonzero(self.arrival <= now):
            lo, hi = int(bounds[c]), int(bounds[c + 1])
            visits = tuple(
                VisitRecord(
                    case_id=f"job-{c}",
                    stage_key=keys[self.visit_stage[i]],
                    entered_at=datetime.fromtimestamp(starts[i], UTC),
                    duration_s=float(min(ends[i], now) - starts[i]),
                    finished=bool(ends[i] <= now),
                )
                for i in range(lo, hi)
                if starts[i] <= now
            )
            cases.append(CaseHistory(f"job-{c}", visits, finished=bool(ends[hi - 1] <= now)))
        return cases


def generate_workload(
    n_cases: int,
    *,
    seed: int = 0,
    process: SyntheticProcess = REPAIR_SHOP,
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    arrivals_per_day: float = 50.0,
) -> SyntheticWorkload:
    """``n_cases`` jobs arriving as a Poisson stream and walking through ``process``."""
    rng = np.random.default_rng(seed)
    arrival = start.timestamp() + np.cumsum(rng.exponential(_DAY / arrivals_per_day, n_cases))
    first = np.full(n_cases, process.keys.index(process.first), dtype=np.int64)
    case, stage, duration = process.simulate(first, rng)
    return SyntheticWorkload(process, arrival, case, stage, duration)


def generate_log(n_events: int, *, seed: int = 0, with_cost: bool = False) -> EventLog:
    """A repair-shop event log of about ``n_events`` events spread over about a year."""
    per_case = generate_workload(2000, seed=seed).visit_stage.size / 2000
    n_cases = max(int(n_events / per_case), 1)
    workload = generate_workload(n_cases, seed=seed, arrivals_per_day=max(n_cases / 365, 1.0))
    return workload.event_log(with_cost=with_cost)
