"""Never absurd: over random histories, no estimate exceeds a bounded multiple of the longest job seen.

Also the parts the bound rests on: the censoring-aware residual (Lindy growth past the evidence,
a bounded tail where too much is still open), shrinkage by sample count, and the model choice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tracker.estimates.history import CaseHistory, JobProgress, VisitRecord
from tracker.estimates.model import BOUND, ESTIMATORS, fit_history
from tracker.estimates.residual import grouped_quantiles, residual_quantiles, shrink
from tracker.estimates.selection import choose

DAY = 86_400.0
NOW = datetime(2025, 1, 1, tzinfo=UTC)
STAGES = ("a", "b", "c")

visit = st.tuples(st.sampled_from(STAGES), st.floats(0.0, 400.0))  # stage, days
case = st.tuples(st.lists(visit, min_size=1, max_size=6), st.booleans())  # visits, closed


def _history(cases: list[tuple[list[tuple[str, float]], bool]]) -> tuple[list[CaseHistory], float]:
    histories, longest = [], 0.0
    for i, (visits, closed) in enumerate(cases):
        at = NOW - timedelta(days=sum(d for _, d in visits) + 1)
        records = []
        for j, (stage, days) in enumerate(visits):
            records.append(VisitRecord(f"c{i}", stage, at, days * DAY, closed or j < len(visits) - 1))
            at += timedelta(days=days)
        histories.append(CaseHistory(f"c{i}", tuple(records), closed))
        longest = max(longest, sum(d for _, d in visits) * DAY)
    return histories, longest


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cases=st.lists(case, min_size=1, max_size=25),
    elapsed=st.floats(0.0, 1.0),
    age=st.floats(0.0, 1.0),
    completed=st.integers(0, 30),
    stage=st.sampled_from(STAGES),
)
def test_no_estimate_exceeds_a_bounded_multiple_of_the_longest_job_seen(
    cases: list[tuple[list[tuple[str, float]], bool]], elapsed: float, age: float, completed: int, stage: str
) -> None:
    histories, longest = _history(cases)
    model = fit_history(histories, [], now=NOW)
    # A job no older than the longest one seen, somewhere in the workflow.
    job = JobProgress(stage, elapsed * age * longest, None, completed, age * longest)

    for name in ESTIMATORS:
        chosen = model.with_selection(type(model.selection)(name, "test", model.selection.longest_s))
        estimate = chosen.remaining(job)
        assert 0.0 <= estimate.p50_s <= estimate.p90_s
        assert estimate.p90_s <= BOUND * max(longest, 60.0) + 1e-6


def test_a_job_older_than_any_seen_widens_in_proportion_to_its_age_not_exponentially() -> None:
    durations = np.random.default_rng(3).lognormal(np.log(10 * DAY), 0.5, 400)
    done = np.ones(durations.size, dtype=np.bool_)
    longest = float(durations.max())

    ages = np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0]) * longest
    quantiles, at_risk = residual_quantiles(durations, done, ages)

    beyond = quantiles[2:, 1] / ages[2:]
    assert np.all(np.diff(quantiles[2:, 1]) > 0)  # still widening
    assert np.allclose(beyond, beyond[0], rtol=1e-6)  # in proportion to age
    assert np.all(at_risk[2:] == 0)


def test_a_small_risk_set_does_not_explode_the_tail() -> None:
    # Most jobs still open: the survival curve never gets to 10 %.
    times = np.array([1.0, 2.0, 3.0, 50.0, 60.0, 70.0, 80.0]) * DAY
    done = np.array([True, True, True, False, False, False, False])

    q, size = grouped_quantiles(np.zeros(times.size, dtype=np.int64), times, done, 1)

    assert size[0] == 7
    assert 70 * DAY < q[0, 1] <= (1 + np.log(10)) * 80 * DAY


def test_open_jobs_keep_early_estimates_from_being_too_short() -> None:
    # Early in a history only the quick jobs have closed; the slow ones are open and long already.
    closed_quick = np.full(20, 2 * DAY)
    open_slow = np.full(30, 20 * DAY)
    times = np.r_[closed_quick, open_slow]
    done = np.r_[np.ones(20, dtype=np.bool_), np.zeros(30, dtype=np.bool_)]

    (finished_only,), _ = residual_quantiles(closed_quick, np.ones(20, dtype=np.bool_), np.zeros(1))
    (with_open,), _ = residual_quantiles(times, done, np.zeros(1))

    assert finished_only[0] == 2 * DAY
    assert with_open[0] > 20 * DAY


def test_thin_groups_move_the_estimate_only_as_far_as_their_samples_allow() -> None:
    coarse = np.array([[10 * DAY, 20 * DAY]])
    fine = np.array([[1 * DAY, 2 * DAY]])

    one = shrink(fine, np.array([1.0]), coarse)
    many = shrink(fine, np.array([1000.0]), coarse)
    empty = shrink(np.full((1, 2), np.nan), np.array([0.0]), coarse)

    assert 1 * DAY < many[0, 0] < 1.1 * DAY
    assert 8 * DAY < one[0, 0] < 10 * DAY
    assert np.allclose(empty, coarse)


def test_the_choice_counts_open_jobs_past_their_estimate_as_errors() -> None:
    observed = np.r_[np.full(50, 1.0), np.full(50, 10.0)] * DAY
    resolved = np.r_[np.ones(50, dtype=np.bool_), np.zeros(50, dtype=np.bool_)]  # half still open
    short, honest = np.full(100, 1.0 * DAY), np.r_[np.full(50, 1.0), np.full(50, 12.0)] * DAY

    choice = choose(("short", "honest"), np.vstack([short, honest]), observed, resolved, default="short")

    assert choice.name == "honest"
    assert choice.reason.startswith("lowest mean error on the 100 newest predictions (50 closed)")
    assert "clearly below short's" in choice.reason and choice.errors["short"] > choice.errors["honest"]
    assert (choice.why, choice.outcomes) == ("clearly_best", 50)
    few = choose(
        ("short", "honest"), np.vstack([short, honest])[:, :10], observed[:10], resolved[:10], default="short"
    )
    assert few.name == "short" and "fewer than" in few.reason
    assert (few.why, few.outcomes) == ("few_outcomes", 10)


def test_candidates_that_predict_alike_score_alike_and_the_first_listed_wins() -> None:
    rng = np.random.default_rng(8)
    observed = rng.exponential(10 * DAY, 997)
    resolved = np.ones(997, dtype=np.bool_)
    default, good = np.full(997, 30.0 * DAY), observed * rng.uniform(0.8, 1.2, 997)
    names = ("median", "direct", "blend", "simulation", "service", "by_resource")
    others = [rng.exponential(10 * DAY, 997) for _ in range(3)]

    choice = choose(names, np.vstack([default, good, *others, good]), observed, resolved, default="median")

    assert choice.errors["direct"] == choice.errors["by_resource"]
    assert choice.name == "direct"


def test_a_challenger_ahead_by_noise_does_not_replace_the_default() -> None:
    rng = np.random.default_rng(3)
    observed = rng.exponential(10 * DAY, 200)
    resolved = np.ones(200, dtype=np.bool_)
    default = np.full(200, 7.0 * DAY)
    lucky = default.copy()
    lucky[0] = observed[0]  # one prediction right on: 1 % ahead on average, from a single row

    choice = choose(("median", "lucky"), np.vstack([default, lucky]), observed, resolved, default="median")

    assert choice.errors["lucky"] < choice.errors["median"]
    assert choice.name == "median"
    assert choice.reason.startswith("median, the default: no candidate beats it clearly (by 1% and 2 ")
    assert (choice.why, choice.outcomes) == ("no_clear_winner", 200)


def test_outcomes_are_counted_by_job_not_by_prediction() -> None:
    observed = np.r_[np.full(40, 1.0), np.full(40, 10.0)] * DAY
    resolved = np.ones(80, dtype=np.bool_)
    short, honest = np.full(80, 1.0 * DAY), observed.copy()
    p50 = np.vstack([short, honest])
    few_jobs = np.repeat(np.arange(8), 10)  # 80 predictions of 8 jobs: 8 outcomes

    by_job = choose(("short", "honest"), p50, observed, resolved, default="short", cases=few_jobs)
    by_prediction = choose(("short", "honest"), p50, observed, resolved, default="short")

    assert by_job.name == "short" and "8 outcomes known" in by_job.reason
    assert by_prediction.name == "honest"


def test_weights_give_each_evidence_set_its_share_however_many_rows_it_has() -> None:
    # 90 open predictions already 20 days in, 10 closed after 2 days: a "long" candidate wins the
    # pooled rows, a "short" one the closed ones; with equal shares the closed set counts as much.
    observed = np.r_[np.full(90, 20.0), np.full(10, 2.0)] * DAY
    resolved = np.r_[np.zeros(90, dtype=np.bool_), np.ones(10, dtype=np.bool_)]
    long, short = np.full(100, 30.0 * DAY), np.full(100, 2.0 * DAY)
    p50 = np.vstack([short, long])
    shares = np.r_[np.full(90, 1 / 90), np.full(10, 1 / 10)]

    pooled = choose(("short", "long"), p50, observed, resolved, default="short", min_resolved=5)
    shared = choose(
        ("short", "long"), p50, observed, resolved, default="short", min_resolved=5, weights=shares
    )

    assert pooled.name == "long"
    assert shared.errors["long"] == pytest.approx(0.5 * 0.0 + 0.5 * 28.0 * DAY)
    assert shared.errors["short"] == pytest.approx(0.5 * 18.0 * DAY + 0.5 * 0.0)
    assert shared.name == "short"
