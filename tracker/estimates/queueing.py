"""Waiting time before a capacity-limited stage (paint booth, inspector) can start a job.

A stage with ``capacity`` parallel slots serves waiting jobs first come, first served. Two ways
to estimate the wait of each job in line, both in working seconds:

* :func:`simulate_queue_waits` replays the line many times (fixed seed) with service times
  resampled from past jobs; jobs already in service finish after a residual drawn from the past
  service times longer than what they have already spent. Deep in a long line, where a wait is the
  sum of dozens of service times per slot, it continues the simulated waits with their normal
  limit instead of replaying every position.
* :func:`queue_waits_from_throughput` uses only the recent completion rate (Little's law): with
  ``k`` jobs to finish before a slot frees for you, the wait is ``k / rate``; its P90 treats
  completions as a Poisson process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

_Z90 = 1.2815515655446004  # standard normal 90th percentile
_POOL = 4096  # synthetic service-time samples drawn from a mean and a standard deviation
SIMULATED_POSITIONS_PER_SLOT = 64
"""Positions in line replayed one by one, per slot; beyond them the central limit takes over."""


@dataclass(frozen=True)
class WaitingJob:
    job_id: str
    entered_queue_at: datetime


@dataclass(frozen=True)
class QueueWait:
    job_id: str
    position: int  # 1 = next to be served
    jobs_ahead: int  # jobs in service plus jobs waiting ahead
    expected_wait_s: float
    p90_wait_s: float


@dataclass(frozen=True, eq=False)  # eq=False: arrays do not compare to a single bool
class ServiceTimes:
    """Service-time distribution of a stage, in working seconds."""

    samples: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        if self.samples.ndim != 1 or self.samples.size == 0:
            raise ValueError("service times need at least one sample")
        if not (np.isfinite(self.samples).all() and (self.samples >= 0).all()):
            raise ValueError("service times must be finite and >= 0")

    @classmethod
    def from_samples(cls, samples: Sequence[float] | npt.ArrayLike) -> ServiceTimes:
        return cls(np.asarray(samples, dtype=np.float64))

    @classmethod
    def from_mean_sd(cls, mean: float, sd: float, *, seed: int = 0) -> ServiceTimes:
        """A gamma distribution with that mean and standard deviation (constant when sd is 0)."""
        if mean <= 0 or sd < 0:
            raise ValueError("mean must be > 0 and sd >= 0")
        if sd == 0:
            return cls(np.array([float(mean)]))
        shape, scale = (mean / sd) ** 2, sd**2 / mean
        return cls(np.random.default_rng(seed).gamma(shape, scale, _POOL))


def _in_line(waiting: Sequence[WaitingJob]) -> list[WaitingJob]:
    """First come, first served; ties broken by job id so the order is stable."""
    return sorted(waiting, key=lambda job: (job.entered_queue_at, job.job_id))


def simulate_queue_waits(
    capacity: int | None,
    waiting: Sequence[WaitingJob],
    in_service_elapsed_s: Sequence[float],
    service: ServiceTimes,
    *,
    runs: int = 2000,
    seed: int = 0,
    simulated_positions: int | None = None,
) -> list[QueueWait]:
    """Expected and P90 wait of each waiting job (in line order), by Monte Carlo.

    ``capacity=None`` means unlimited: nobody waits. A job in service for longer than every past
    service time is assumed to finish now.

    Only the first ``simulated_positions`` (default: 64 per slot) are replayed. Each later job
    starts after ``k`` more completions spread over ``capacity`` slots; by renewal theory that adds
    ``k * mean / capacity`` to the mean wait and ``k * variance / capacity**2`` to its variance, and
    the wait is then close to normal. This keeps a tick's cost and memory flat however long the
    line grows.
    """
    line = _in_line(waiting)
    busy = len(in_service_elapsed_s)
    if capacity is None or not line:
        return [QueueWait(job.job_id, i + 1, busy + i, 0.0, 0.0) for i, job in enumerate(line)]
    if capacity < 1:
        raise ValueError("capacity must be >= 1 (or None for unlimited)")
    rng = np.random.default_rng(seed)
    samples = np.sort(service.samples)
    residuals = np.zeros((runs, max(capacity, busy)))
    for column, elapsed in enumerate(in_service_elapsed_s):
        longer = samples[np.searchsorted(samples, elapsed, side="right") :]
        if longer.size:
            residuals[:, column] = rng.choice(longer, runs) - elapsed
    # With more jobs in service than slots (capacity lowered), slots free up only as the extra
    # jobs finish: the slots become free at the latest `capacity` completion times.
    free_at = np.sort(residuals, axis=1)[:, -capacity:]
    rows = np.arange(runs)
    replayed = min(len(line), simulated_positions or SIMULATED_POSITIONS_PER_SLOT * capacity)
    waits = np.empty((replayed, runs))
    for i in range(replayed):
        slot = free_at.argmin(axis=1)
        waits[i] = free_at[rows, slot]
        free_at[rows, slot] += rng.choice(samples, runs)
    mean, p90 = waits.mean(axis=1), np.quantile(waits, 0.9, axis=1)
    if replayed < len(line):
        more = np.arange(1, len(line) - replayed + 1)
        deep_mean = mean[-1] + more * samples.mean() / capacity
        deep_sd = np.sqrt(waits[-1].var() + more * samples.var() / capacity**2)
        mean = np.concatenate([mean, deep_mean])
        p90 = np.concatenate([p90, deep_mean + _Z90 * deep_sd])
    return [
        QueueWait(job.job_id, i + 1, busy + i, float(mean[i]), float(p90[i])) for i, job in enumerate(line)
    ]


def queue_waits_from_throughput(
    capacity: int | None,
    waiting: Sequence[WaitingJob],
    in_service: int,
    completions_per_s: float,
) -> list[QueueWait]:
    """Waits from the recent completion rate of the stage (completions per working second)."""
    line = _in_line(waiting)
    if capacity is None:
        return [QueueWait(job.job_id, i + 1, in_service + i, 0.0, 0.0) for i, job in enumerate(line)]
    if capacity < 1:
        raise ValueError("capacity must be >= 1 (or None for unlimited)")
    if completions_per_s <= 0:
        raise ValueError("completions_per_s must be > 0")
    waits = []
    for i, job in enumerate(line):
        ahead = in_service + i
        needed = max(ahead - capacity + 1, 0)  # completions before a slot is free for this job
        waits.append(
            QueueWait(
                job.job_id, i + 1, ahead, needed / completions_per_s, _gamma_p90(needed) / completions_per_s
            )
        )
    return waits


def _gamma_p90(shape: int) -> float:
    """90th percentile of Gamma(shape, 1), the time to ``shape`` unit-rate Poisson events.

    Wilson-Hilferty approximation (within ~1 % from shape 1 on), to avoid a SciPy dependency.
    """
    if shape == 0:
        return 0.0
    return shape * (1 - 1 / (9 * shape) + _Z90 / (3 * math.sqrt(shape))) ** 3
