"""Forecast accuracy and the geometry of its charts: pure, with explicit times."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tracker.estimates.accuracy import ForecastOutcome, MonthShare, monthly_p90_shares
from tracker.web.dashboard_charts import MAX_BAR_WIDTH, Frame, error_chart, nice_step, share_chart

END = datetime(2026, 3, 10, 12, tzinfo=UTC)
FRAME = Frame(width=600, height=300, left=100, right=20, top=20, bottom=40)


def outcome(
    reference: str = "J-1",
    *,
    finished_at: datetime = END,
    first_p50_days: float = 0,
    first_p90_days: float = 2,
    last_p50_days: float = 0,
) -> ForecastOutcome:
    """A job that finished at `finished_at`; estimates given as days after that end (negative: before)."""

    def at(days: float) -> datetime:
        return finished_at + timedelta(days=days)

    return ForecastOutcome(
        reference,
        finished_at,
        at(first_p50_days),
        at(first_p90_days),
        at(last_p50_days),
        at(last_p50_days + 1),
    )


def test_errors_are_days_after_the_p50_so_late_is_positive() -> None:
    late = outcome(first_p50_days=-3, last_p50_days=-0.5)
    assert late.first_error_days == 3
    assert late.last_error_days == 0.5
    early = outcome(first_p50_days=2)
    assert early.first_error_days == -2


def test_finishing_exactly_at_the_first_p90_counts_as_within_it() -> None:
    assert outcome(first_p90_days=0).within_first_p90
    assert not outcome(first_p90_days=-0.01).within_first_p90


def test_monthly_shares_group_by_month_of_completion_oldest_first() -> None:
    outcomes = [
        outcome("a", finished_at=datetime(2026, 3, 1, tzinfo=UTC), first_p90_days=1),
        outcome("b", finished_at=datetime(2026, 1, 31, 23, tzinfo=UTC), first_p90_days=-1),
        outcome("c", finished_at=datetime(2026, 3, 31, tzinfo=UTC), first_p90_days=-1),
        outcome("d", finished_at=datetime(2026, 1, 2, tzinfo=UTC), first_p90_days=1),
    ]
    assert monthly_p90_shares(outcomes) == [
        MonthShare(date(2026, 1, 1), finished=2, within_p90=1),
        MonthShare(date(2026, 3, 1), finished=2, within_p90=1),
    ]
    assert monthly_p90_shares([]) == []
    assert MonthShare(date(2026, 3, 1), finished=4, within_p90=3).share == 0.75


@pytest.mark.parametrize(
    ("span", "most", "step"),
    [(10, 5, 2), (12, 6, 2), (2, 6, 0.5), (700, 6, 200), (1, 10, 0.1), (0, 5, 1)],
)
def test_steps_are_one_two_or_five_times_a_power_of_ten(span: float, most: int, step: float) -> None:
    assert nice_step(span, most) == pytest.approx(step)


def test_the_error_axis_is_symmetric_around_zero_and_covers_the_largest_error() -> None:
    chart = error_chart([outcome(first_p50_days=-7, last_p50_days=1)], FRAME)
    plot_middle = FRAME.left + FRAME.plot_width / 2
    assert chart.zero_x == plot_middle == 340
    values = [tick.value for tick in chart.ticks]
    assert values == [-10, -5, 0, 5, 10]  # 14 days across cut in at most 6 steps: steps of 5
    assert chart.ticks[0].position == FRAME.left
    assert chart.ticks[-1].position == FRAME.width - FRAME.right
    (row,) = chart.rows
    # 7 days late of 10 either side: seven tenths of the way from zero to the right edge.
    assert row.first_x == pytest.approx(340 + 7 / 10 * 240)
    assert row.last_x == pytest.approx(340 - 1 / 10 * 240)
    assert (row.first_days, row.last_days) == (7, -1)


def test_error_rows_share_the_plot_height_one_row_a_job_in_order() -> None:
    chart = error_chart([outcome("a"), outcome("b"), outcome("c"), outcome("d")], FRAME)
    assert [row.reference for row in chart.rows] == ["a", "b", "c", "d"]
    assert [row.y for row in chart.rows] == [50, 110, 170, 230]
    assert all(row.first_x == row.last_x == chart.zero_x for row in chart.rows)


def test_small_errors_still_get_an_axis_of_at_least_a_day_each_way() -> None:
    chart = error_chart([outcome(first_p50_days=-0.1)], FRAME)
    assert min(tick.value for tick in chart.ticks) <= -1 and max(tick.value for tick in chart.ticks) >= 1
    assert error_chart([], FRAME).rows == ()


def test_with_many_months_a_bar_takes_seventy_percent_of_its_slot() -> None:
    months = [MonthShare(date(2026, m, 1), finished=1, within_p90=1) for m in range(1, 13)]
    chart = share_chart(months, FRAME)
    slot = FRAME.plot_width / 12
    assert [bar.width for bar in chart.bars] == pytest.approx([slot * 0.7] * 12, abs=0.05)
    assert [bar.x for bar in chart.bars] == pytest.approx(
        [FRAME.left + slot * i + slot * 0.15 for i in range(12)], abs=0.1
    )


def test_share_bars_rise_from_the_base_to_their_share_with_the_target_at_ninety_percent() -> None:
    months = [
        MonthShare(date(2026, 1, 1), finished=4, within_p90=4),
        MonthShare(date(2026, 2, 1), finished=4, within_p90=2),
    ]
    chart = share_chart(months, FRAME)
    base = FRAME.top + FRAME.plot_height
    full, half = chart.bars
    assert (full.y, full.height) == (FRAME.top, FRAME.plot_height)
    assert (half.y, half.height) == (base - FRAME.plot_height / 2, FRAME.plot_height / 2)
    assert chart.target_y == pytest.approx(base - 0.9 * FRAME.plot_height)
    slot = FRAME.plot_width / 2
    assert full.width == half.width == MAX_BAR_WIDTH  # 70 % of a slot would be wider
    assert full.x == pytest.approx(FRAME.left + (slot - MAX_BAR_WIDTH) / 2)
    assert half.x == pytest.approx(FRAME.left + slot + (slot - MAX_BAR_WIDTH) / 2)
    assert [tick.value for tick in chart.ticks] == [0, 0.25, 0.5, 0.75, 1]
    assert [tick.position for tick in chart.ticks] == [base, 200, 140, 80, FRAME.top]
