"""Chart geometry for the dashboard's forecast-accuracy charts: pure, so the SVG templates only draw.

Coordinates are in the SVG's user units with the origin at the top left; every number is rounded to one
decimal so the markup stays small and stable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tracker.estimates.accuracy import ForecastOutcome, MonthShare

P90_TARGET = 0.9
"""Nine in ten jobs should finish by their P90: the line drawn across the monthly chart."""
MAX_BAR_WIDTH = 48.0
"""A month's bar is at most this wide, so a few months do not draw slabs."""


@dataclass(frozen=True)
class Frame:
    width: float
    height: float
    left: float = 64.0
    right: float = 16.0
    top: float = 16.0
    bottom: float = 40.0

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom


@dataclass(frozen=True)
class Tick:
    position: float
    """x for a horizontal axis, y for a vertical one."""
    value: float


@dataclass(frozen=True)
class ErrorRow:
    """One job: a line from its first estimate's error to its last's, on a row of its own."""

    reference: str
    y: float
    first_x: float
    last_x: float
    first_days: float
    last_days: float


@dataclass(frozen=True)
class ErrorChart:
    frame: Frame
    zero_x: float
    """Where "ended exactly on the P50" is."""
    rows: tuple[ErrorRow, ...]
    ticks: tuple[Tick, ...]


@dataclass(frozen=True)
class Bar:
    month: MonthShare
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class ShareChart:
    frame: Frame
    bars: tuple[Bar, ...]
    target_y: float
    ticks: tuple[Tick, ...]


def _round(value: float) -> float:
    return round(value, 1)


def nice_step(span: float, most: int) -> float:
    """The smallest of 1, 2 or 5 times a power of ten that cuts `span` into at most `most` steps."""
    if span <= 0:
        return 1.0
    raw = span / most
    power = 10.0 ** math.floor(math.log10(raw))
    return next(float(m * power) for m in (1, 2, 5, 10) if m * power >= raw)


def error_chart(outcomes: Sequence[ForecastOutcome], frame: Frame) -> ErrorChart:
    """Days late (right of zero) or early (left) of the first and the last estimate's P50, a row a job.

    The axis is symmetric around zero, wide enough for the largest error and at least one day each way.
    """
    reach = max(
        [1.0, *(abs(o.first_error_days) for o in outcomes), *(abs(o.last_error_days) for o in outcomes)]
    )
    step = nice_step(2 * reach, 6)
    reach = math.ceil(reach / step) * step
    zero_x = frame.left + frame.plot_width / 2

    def x_of(days: float) -> float:
        return _round(zero_x + days / reach * frame.plot_width / 2)

    row_height = frame.plot_height / max(len(outcomes), 1)
    rows = tuple(
        ErrorRow(
            reference=outcome.reference,
            y=_round(frame.top + row_height * (index + 0.5)),
            first_x=x_of(outcome.first_error_days),
            last_x=x_of(outcome.last_error_days),
            first_days=round(outcome.first_error_days, 1),
            last_days=round(outcome.last_error_days, 1),
        )
        for index, outcome in enumerate(outcomes)
    )
    count = round(reach / step)
    ticks = tuple(Tick(x_of(i * step), round(i * step, 6)) for i in range(-count, count + 1))
    return ErrorChart(frame, _round(zero_x), rows, ticks)


def share_chart(months: Sequence[MonthShare], frame: Frame) -> ShareChart:
    """A bar a month, its height the share of jobs that finished by their first P90 (0 to 100 %)."""
    slot = frame.plot_width / max(len(months), 1)
    bar_width = _round(min(slot * 0.7, MAX_BAR_WIDTH))
    base = frame.top + frame.plot_height

    def y_of(share: float) -> float:
        return _round(base - share * frame.plot_height)

    bars = tuple(
        Bar(
            month=month,
            x=_round(frame.left + slot * index + (slot - bar_width) / 2),
            y=y_of(month.share),
            width=bar_width,
            height=_round(base - y_of(month.share)),
        )
        for index, month in enumerate(months)
    )
    ticks = tuple(Tick(y_of(share / 4), share / 4) for share in range(5))
    return ShareChart(frame, bars, y_of(P90_TARGET), ticks)
