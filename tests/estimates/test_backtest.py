"""Backtest: no look-ahead, honest scores, prediction file, CLI, and the two real logs."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner

from tracker.cli.backtest import backtest_command
from tracker.estimates.backtest import CANDIDATES, ESTIMATORS, PREDICTION_HEADER, run_backtest
from tracker.estimates.calendar import BusinessCalendar
from tracker.estimates.eventlog import EventLog, read_log, write_csv
from tracker.estimates.synthetic import generate_workload

REAL_LOGS = Path(__file__).resolve().parents[3] / "shared" / "data" / "eventlogs"
SHIPPED_LOG = Path(__file__).resolve().parents[1] / "data" / "eventlogs" / "BPIC15_1.xes.gz"
DAY = 86_400.0


@pytest.fixture(scope="module")
def log_synthetic() -> EventLog:
    return generate_workload(3000, seed=5, arrivals_per_day=40).event_log(with_cost=True)


def test_predictions_made_before_an_instant_ignore_everything_after_it(log_synthetic: EventLog) -> None:
    cut = float(np.quantile(log_synthetic.time, 0.6))
    later = log_synthetic.time >= cut
    # Another future: everything after the cut happens 30 days later and in another order.
    future = replace(log_synthetic, time=np.where(later, log_synthetic.time + 30 * DAY, log_synthetic.time))
    future = EventLog.from_arrays(
        future.case,
        np.where(later, future.activity[::-1], future.activity),
        future.time,
        future.cost,
        future.case_names,
        future.activity_names,
    )

    actual = run_backtest(log_synthetic).predictions
    other = run_backtest(future).predictions

    before = actual.predicted_at < cut
    assert before.sum() > 1000
    assert np.array_equal(other.predicted_at[other.predicted_at < cut], actual.predicted_at[before])
    assert np.array_equal(other.p50_end[other.predicted_at < cut], actual.p50_end[before])
    assert np.array_equal(other.p90_end[other.predicted_at < cut], actual.p90_end[before])
    assert not np.array_equal(other.p50_end, actual.p50_end)  # the future did change later estimates


def test_on_a_known_process_p90_is_honest_and_p50_is_no_worse_than_the_baseline(
    log_synthetic: EventLog,
) -> None:
    report = run_backtest(log_synthetic).report

    assert report.predictions == log_synthetic.n_events - log_synthetic.n_cases
    assert 0.85 <= report.p90_coverage <= 0.95
    assert report.mae_days <= 1.02 * report.baseline_mae_days
    assert report.cost is not None
    assert report.cost.mae < report.cost.baseline_mae
    assert 0.8 <= report.cost.p90_coverage <= 1.0


def test_prediction_file_has_the_header_and_one_row_per_prediction(
    tmp_path: Path, log_synthetic: EventLog
) -> None:
    small = EventLog.from_arrays(
        log_synthetic.case[:400],
        log_synthetic.activity[:400],
        log_synthetic.time[:400],
        None if log_synthetic.cost is None else log_synthetic.cost[:400],
        log_synthetic.case_names,
        log_synthetic.activity_names,
    )
    source, out = tmp_path / "log.csv", tmp_path / "predictions.csv"
    write_csv(small, source)

    result = CliRunner().invoke(
        backtest_command, [str(source), "--cost", "Cost", "--predictions", str(out), "--json"]
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    with out.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == (*PREDICTION_HEADER, "cost_so_far", "cost_p50", "cost_p90", "actual_cost")
    assert len(rows) - 1 == report["predictions"] == small.n_events - small.n_cases
    assert rows[1][2].endswith("Z") and rows[1][2] <= rows[1][3] <= rows[1][4]


def test_the_baseline_is_the_median_remaining_time_after_the_same_activity_of_cases_closed_before(
    log_synthetic: EventLog,
) -> None:
    p = run_backtest(log_synthetic).predictions
    end = log_synthetic.time[log_synthetic.case_start[1:] - 1]  # per case code of the log
    start = log_synthetic.case_start[:-1]
    rng = np.random.default_rng(0)

    for row in rng.choice(p.predicted_at.size, 40, replace=False):
        at, activity = p.predicted_at[row], p.activity[row]
        closed = [c for c in range(log_synthetic.n_cases) if end[c] < at]
        after: list[float] = []
        pooled: list[float] = []
        for c in closed:
            for i in range(start[c], log_synthetic.case_start[c + 1] - 1):  # every event but the last
                pooled.append(end[c] - log_synthetic.time[i])
                if log_synthetic.activity[i] == activity:
                    after.append(end[c] - log_synthetic.time[i])
        expected = np.median(after) if after else (np.median(pooled) if pooled else 0.0)
        assert p.baseline_end[row] - at == pytest.approx(expected, abs=1e-3)


def test_the_report_scores_each_tenth_of_the_log_and_names_the_estimators_chosen(
    log_synthetic: EventLog,
) -> None:
    report = run_backtest(log_synthetic).report

    assert [t.tenth for t in report.by_tenth] == list(range(1, 11))
    assert sum(t.predictions for t in report.by_tenth) == report.predictions
    assert sum(report.estimators.values()) == report.predictions
    assert set(report.estimators) <= set(ESTIMATORS)
    # Each candidate alone: the plain median is the bar itself; no resources, no candidate by resource.
    assert set(report.candidates_mae_days) == set(CANDIDATES) - {"direct_by_resource"}
    assert report.candidates_mae_days["median"] == pytest.approx(report.baseline_mae_days)
    assert "each alone, MAE   direct " in report.render()
    for tenth in report.by_tenth[1:]:
        assert 0.75 <= tenth.p90_coverage <= 1.0
        assert tenth.mae_days <= 1.5 * tenth.baseline_mae_days


def _three_step_log(opened: npt.ArrayLike, worked: npt.ArrayLike, closed: npt.ArrayLike) -> EventLog:
    """Cases of three events each, at the given times (one case per position)."""
    times = np.column_stack([opened, worked, closed]).astype(np.float64)
    n = times.shape[0]
    return EventLog.from_arrays(
        np.repeat(np.arange(n), 3),
        np.tile([0, 1, 2], n),
        times.ravel(),
        None,
        tuple(f"case {i}" for i in range(n)),
        ("opened", "worked", "closed"),
    )


def test_before_any_case_has_closed_a_running_case_is_not_expected_to_end_now() -> None:
    # One case a day for 80 days; none closes before day 100 (a log of cases closed in one year).
    rng = np.random.default_rng(3)
    n = 80
    start = np.arange(n) * DAY
    end = (100 + rng.uniform(0, 20, n)) * DAY
    middle = start + rng.uniform(0.1, 0.9, n) * (end - start)
    log = _three_step_log(start, middle, end)

    p = run_backtest(log).predictions
    early = p.predicted_at < end.min()

    assert early.sum() > 50
    assert np.all(p.baseline_end[early] == p.predicted_at[early])  # the bar: "ends now"
    assert np.all(p.p50_end[early] >= p.baseline_end[early])
    error = np.abs(p.p50_end - p.actual_end)[early].mean()
    assert error < 0.8 * np.abs(p.baseline_end - p.actual_end)[early].mean()


def test_a_log_ending_with_a_few_long_cases_is_not_treated_as_a_cold_start() -> None:
    # Short cases for 200 days; 20 long ones, five events a day, close between days 250 and 320. At
    # the end only the long ones run: the newest evidence holds fewer than 30 cases, a thin end of
    # the log, not its start, when the running cases' age would say how long they have left.
    rng = np.random.default_rng(2)
    short_start = np.sort(rng.uniform(0, 200, 200)) * DAY
    short_mid = short_start + rng.exponential(4, 200) * DAY
    short_end = short_mid + rng.exponential(6, 200) * DAY
    cases = [np.array([a, b, c]) for a, b, c in zip(short_start, short_mid, short_end, strict=True)]
    long_start, long_end = rng.uniform(0, 50, 20), rng.uniform(250, 320, 20)
    cases += [np.r_[np.arange(a, b, 0.2), b] * DAY for a, b in zip(long_start, long_end, strict=True)]
    log = EventLog.from_arrays(
        np.concatenate([np.full(t.size, i) for i, t in enumerate(cases)]),
        np.concatenate([np.minimum(np.arange(t.size), 2) for t in cases]),
        np.concatenate(cases),
        None,
        tuple(f"case {i}" for i in range(len(cases))),
        ("opened", "worked", "closed"),
    )

    p = run_backtest(log).predictions
    end = p.predicted_at > long_end.min() * DAY

    assert end.sum() > 1000
    assert not np.any(p.estimator[p.predicted_at > 100 * DAY] == ESTIMATORS.index("running"))
    error = np.abs(p.p50_end - p.actual_end)[end].mean()
    assert error < 1.25 * np.abs(p.baseline_end - p.actual_end)[end].mean()


def test_when_who_has_a_case_says_how_long_it_has_left_the_backtest_learns_it() -> None:
    # Every case is opened, checked, then closed; after the check, cases handled by Ann close in
    # about a day, Bob's in about ten. The activities alone cannot tell them apart.
    rng = np.random.default_rng(4)
    n = 1500
    start = np.sort(rng.uniform(0, 300, n)) * DAY
    checked = start + rng.exponential(2, n) * DAY
    slow = rng.random(n) < 0.5
    close = checked + np.where(slow, 10, 1) * rng.lognormal(0, 0.3, n) * DAY
    handled = np.column_stack([np.zeros(n), slow, slow]).ravel().astype(np.int64)
    log = replace(_three_step_log(start, checked, close), resource=handled, resource_names=("Ann", "Bob"))

    with_resources = run_backtest(log)
    without = run_backtest(replace(log, resource=None, resource_names=()))

    assert (
        with_resources.report.estimators.get("direct_by_resource", 0) > with_resources.report.predictions / 2
    )
    assert without.report.estimators.get("direct_by_resource", 0) == 0  # no resources: nothing to learn
    p = with_resources.predictions
    after_check = (p.prefix_length == 2) & (p.predicted_at > 100 * DAY)
    error = np.abs(p.p50_end - p.actual_end)[after_check].mean()
    error_without = np.abs(without.predictions.p50_end - p.actual_end)[after_check].mean()
    assert error < 0.5 * error_without
    remaining = (p.p50_end - p.predicted_at)[after_check]
    bob = slow[p.case[after_check]]
    assert np.median(remaining[bob]) > 5 * np.median(remaining[~bob])


def test_a_log_naming_someone_new_on_every_event_is_estimated_as_without_names(
    log_synthetic: EventLog,
) -> None:
    anyone = np.arange(log_synthetic.n_events)
    named = replace(log_synthetic, resource=anyone, resource_names=tuple(map(str, anyone)))

    report = run_backtest(named).report
    without = run_backtest(log_synthetic).report

    assert report.mae_days == pytest.approx(without.mae_days, rel=0.01)
    assert report.p90_coverage == pytest.approx(without.p90_coverage, abs=0.01)


def test_coverage_within_the_log_leaves_out_the_p90s_past_its_last_event(log_synthetic: EventLog) -> None:
    result = run_backtest(log_synthetic)
    p = result.predictions
    within = p.p90_end <= log_synthetic.time.max()
    last = result.report.by_tenth[-1]
    in_last = (p.predicted_at - log_synthetic.time.min()) >= 0.9 * np.ptp(log_synthetic.time)

    # Near the end of the log, many P90s reach past it: those could never be seen missed.
    assert last.decidable == int((in_last & within).sum()) < last.predictions
    covered = p.actual_end[in_last & within] <= p.p90_end[in_last & within]
    assert last.p90_coverage_decidable == pytest.approx(covered.mean())
    assert all(t.decidable <= t.predictions for t in result.report.by_tenth)


def test_cli_rejects_an_unknown_calendar(tmp_path: Path, log_synthetic: EventLog) -> None:
    source = tmp_path / "log.csv"
    write_csv(log_synthetic, source)

    result = CliRunner().invoke(backtest_command, [str(source), "--calendar", "Narnia"])

    assert result.exit_code == 2
    assert "--calendar" in result.output


def test_country_calendar_counts_only_working_time(log_synthetic: EventLog) -> None:
    calendar = BusinessCalendar.for_country("FR")

    result = run_backtest(log_synthetic, calendar=calendar, calendar_name="FR")

    p = result.predictions
    worked = calendar.working_seconds_between_many(p.predicted_at, p.p50_end)
    assert np.all(p.p50_end >= p.predicted_at)
    assert np.all(worked <= p.p50_end - p.predicted_at + 1e-6)
    assert 0.8 <= result.report.p90_coverage <= 0.97


def test_on_the_shipped_real_log_p50_beats_the_baseline_and_p90_holds_through_the_log() -> None:
    report = run_backtest(read_log(SHIPPED_LOG), name=SHIPPED_LOG.name).report

    assert report.cases == 1199
    assert report.mae_days < 0.95 * report.baseline_mae_days  # who handled each step tells much here
    assert report.estimators.get("direct_by_resource", 0) > report.predictions / 2
    assert 0.85 <= report.p90_coverage <= 0.95
    for tenth in report.by_tenth:
        assert tenth.mae_days <= 1.5 * tenth.baseline_mae_days
    assert all(t.p90_coverage >= 0.8 for t in report.by_tenth[1:-1])  # the last tenth: cases cut short


@pytest.mark.skipif(not REAL_LOGS.is_dir(), reason="shared real event logs not present")
@pytest.mark.parametrize(
    ("name", "cases"),
    [
        ("bpi12_w.csv", 9658),
        ("BPI_Challenge_2012_W_Complete.xes.gz", 9658),
        ("BPI_Challenge_2012_O.xes.gz", 5015),
    ],
)
def test_real_log_beats_the_baseline_with_an_honest_p90(name: str, cases: int) -> None:
    report = run_backtest(read_log(REAL_LOGS / name), name=name).report

    assert report.cases == cases
    assert report.mae_days < 0.95 * report.baseline_mae_days
    assert 0.85 <= report.p90_coverage <= 0.95
    # The misses of the first weeks' young model do not widen the P90s of the model that follows.
    assert 0.85 <= report.by_tenth[1].p90_coverage <= 0.95


def test_a_backlog_that_closed_nothing_for_a_year_does_not_widen_later_p90s() -> None:
    # For a year jobs open and none closes (the plain median's P90 is zero then: nothing to go on);
    # from then on each job closes within weeks of its second step.
    rng = np.random.default_rng(1)
    n = 400
    start = np.sort(rng.uniform(0, 500, n)) * DAY
    second = start + rng.uniform(1, 5, n) * DAY
    close = np.maximum(second, 365 * DAY) + rng.exponential(20, n) * DAY
    log = _three_step_log(start, second, close)

    p = run_backtest(log).predictions

    after_backlog = p.predicted_at > 365 * DAY
    assert after_backlog.sum() > 100
    # Its P90s stay within the longest job seen, not a multiple learnt from the zero P90s.
    reach = p.p90_end[after_backlog] - p.predicted_at[after_backlog]
    assert np.median(reach) < np.max(close - start)
