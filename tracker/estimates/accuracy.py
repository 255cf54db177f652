"""How good the forecasts were: completed jobs' first and last estimates against their real end. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

DAY_S = 86_400.0


@dataclass(frozen=True)
class ForecastOutcome:
    """A completed job: its first and its last kept estimate, and when it really ended."""

    reference: str
    finished_at: datetime
    first_p50: datetime
    first_p90: datetime
    last_p50: datetime
    last_p90: datetime

    @property
    def first_error_days(self) -> float:
        """Days the job ended after the first estimate's P50 (negative: before it)."""
        return (self.finished_at - self.first_p50).total_seconds() / DAY_S

    @property
    def last_error_days(self) -> float:
        return (self.finished_at - self.last_p50).total_seconds() / DAY_S

    @property
    def within_first_p90(self) -> bool:
        """The promise we could make when the job started: finished by its first P90."""
        return self.finished_at <= self.first_p90


@dataclass(frozen=True)
class MonthShare:
    month: date
    """The first day of the month the jobs finished in."""
    finished: int
    within_p90: int

    @property
    def share(self) -> float:
        return self.within_p90 / self.finished


def monthly_p90_shares(outcomes: Sequence[ForecastOutcome]) -> list[MonthShare]:
    """Per month of completion, oldest first, how many jobs finished by the P90 of their first estimate."""
    counts: dict[date, tuple[int, int]] = {}
    for outcome in outcomes:
        month = outcome.finished_at.date().replace(day=1)
        finished, within = counts.get(month, (0, 0))
        counts[month] = (finished + 1, within + outcome.within_first_p90)
    return [MonthShare(month, *counts[month]) for month in sorted(counts)]
