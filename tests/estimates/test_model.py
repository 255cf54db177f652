"""History model: censoring, elapsed conditioning, tails, transitions, cold start, calibration."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tracker.estimates.history import CaseHistory, JobProgress, PlannedStage, VisitRecord
from tracker.estimates.model import (
    ESTIMATORS,
    CalibrationEvidence,
    EstimatorName,
    HistoryModel,
    Selection,
    calibrate,
    evidence_window,
    fit_history,
)
from tracker.estimates.synthetic import REPAIR_SHOP, generate_workload

DAY = 86_400.0
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _case(
    case_id: str,
    visits: list[tuple[str, float, bool]],
    *,
    finished: bool,
    age_days: float = 30,
    handled_by: str | None = None,
) -> CaseHistory:
    """A case whose visits (stage, duration in days, finished) ran back to back, the finished ones
    finished by ``handled_by``."""
    at = NOW - timedelta(days=age_days)
    records = []
    for stage, days, done in visits:
        records.append(VisitRecord(case_id, stage, at, days * DAY, done, handled_by if done else None))
        at += timedelta(days=days)
    return CaseHistory(case_id, tuple(records), finished)


def _fresh(stage: str, elapsed_days: float = 0.0, completed: int = 0) -> JobProgress:
    return JobProgress(stage, elapsed_days * DAY, None, completed)


def _two_stage_cases(first: str, second: str, durations_days: np.ndarray) -> list[CaseHistory]:
    """Finished cases whose two stages ran back to back (``durations_days``: cases x 2)."""
    return [
        _case(f"c{i}", [(first, float(a), True), (second, float(b), True)], finished=True)
        for i, (a, b) in enumerate(durations_days)
    ]


def _single_stage_model(durations_days: np.ndarray, **kwargs: object) -> HistoryModel:
    cases = [_case(f"c{i}", [("paint", float(d), True)], finished=True) for i, d in enumerate(durations_days)]
    return fit_history(cases, [], now=NOW, **kwargs)  # type: ignore[arg-type]


def test_open_visits_make_a_stage_look_slower_not_faster() -> None:
    finished = [_case(f"f{i}", [("paint", 1.0, True)], finished=True) for i in range(40)]
    running = [_case(f"r{i}", [("paint", 5.0, False)], finished=False, age_days=5) for i in range(60)]

    ignoring_open = fit_history(finished, [], now=NOW).remaining(_fresh("paint"))
    with_open = fit_history(finished + running, [], now=NOW).remaining(_fresh("paint"))

    assert ignoring_open.p50_s == pytest.approx(DAY, rel=0.05)
    assert with_open.p50_s >= 5 * DAY


def test_job_three_days_into_a_two_to_five_day_stage_has_less_left_than_a_fresh_one() -> None:
    model = _single_stage_model(np.random.default_rng(1).uniform(2, 5, 3000))

    fresh = model.remaining(_fresh("paint"))
    three_days_in = model.remaining(_fresh("paint", elapsed_days=3))

    assert fresh.p50_s == pytest.approx(3.5 * DAY, rel=0.05)
    assert three_days_in.p50_s == pytest.approx(1.0 * DAY, rel=0.15)  # median of U(3, 5) - 3
    assert three_days_in.p90_s < fresh.p90_s


def test_p90_widens_when_job_runs_past_every_sample() -> None:
    model = _single_stage_model(np.random.default_rng(2).lognormal(np.log(2), 0.4, 500))
    longest = 2 * np.exp(0.4 * 4)  # beyond any of 500 draws

    past = [model.remaining(_fresh("paint", elapsed_days=longest * k)) for k in (1, 2, 4)]

    assert all(r.p50_s > 0 for r in past)
    assert past[0].p90_s < past[1].p90_s < past[2].p90_s
    assert past[2].p90_s > past[2].p50_s


def test_rework_loop_is_learned_from_observed_transitions() -> None:
    cases = [
        _case(
            f"c{i}",
            [("strip", 1, True), ("paint", 2, True), ("check", 0.5, True)]
            + ([("paint", 2, True), ("check", 0.5, True)] if i % 2 else []),
            finished=True,
        )
        for i in range(400)
    ]
    model = fit_history(cases, [], now=NOW)

    outlook = {s.key: s for s in model.remaining(_fresh("strip")).stages}

    assert outlook["paint"].expected_visits == pytest.approx(1.5, abs=0.1)
    assert outlook["paint"].probability == pytest.approx(1.0, abs=0.01)
    assert outlook["check"].expected_visits == pytest.approx(1.5, abs=0.1)


def test_stage_without_history_follows_the_declared_order() -> None:
    planned = [PlannedStage(k, 1 * DAY, 2 * DAY, 3 * DAY) for k in ("strip", "paint", "check")]

    work = fit_history([], planned, now=NOW).remaining(_fresh("strip"))

    assert work.basis == "planned"
    assert [s.key for s in work.stages] == ["strip", "paint", "check"]
    assert all(s.probability == pytest.approx(1.0) for s in work.stages)
    assert work.p50_s == pytest.approx(6 * DAY, rel=0.05)  # three PERT means of 2 days
    assert work.p90_s > work.p50_s


@pytest.mark.parametrize(("samples", "basis"), [(0, "planned"), (3, "blend"), (300, "history")])
def test_basis_moves_from_planned_to_blend_to_history(samples: int, basis: str) -> None:
    planned = [PlannedStage("paint", 8 * DAY, 10 * DAY, 12 * DAY)]
    cases = [_case(f"c{i}", [("paint", 1.0, True)], finished=True) for i in range(samples)]

    work = fit_history(cases, planned, now=NOW, min_samples=1000).remaining(_fresh("paint"))

    assert work.basis == basis
    assert work.stages[0].samples == samples


def test_few_samples_are_shrunk_towards_the_plan() -> None:
    planned = [PlannedStage("paint", 8 * DAY, 10 * DAY, 12 * DAY)]
    cases = [_case(f"c{i}", [("paint", 1.0, True)], finished=True) for i in range(5)]

    work = fit_history(cases, planned, now=NOW).remaining(_fresh("paint"))

    assert work.basis == "blend"
    assert DAY < work.stages[0].expected_duration_s < 10 * DAY
    assert work.p90_s > 5 * DAY  # half the weight is still on the plan


def test_p90_of_the_total_is_less_than_the_sum_of_stage_p90s() -> None:
    rng = np.random.default_rng(3)
    cases = _two_stage_cases(
        "one", "two", np.column_stack([rng.lognormal(0, 1, 2000), rng.lognormal(0, 1, 2000)])
    )
    model = fit_history(cases, [], now=NOW, min_samples=10**6)  # simulation only

    total = model.remaining(_fresh("one"))
    stage_p90 = model.remaining(_fresh("two")).p90_s

    sum_of_p90s = 2 * stage_p90
    assert total.p90_raw_s < 0.85 * sum_of_p90s
    assert total.p50_s > 2 * model.remaining(_fresh("two")).p50_s  # medians of skewed stages do not add up


def test_the_choice_says_how_many_finished_jobs_it_was_scored_on() -> None:
    rng = np.random.default_rng(6)
    durations = np.column_stack([rng.lognormal(0, 1, 80), rng.lognormal(1, 0.5, 80)])

    model = fit_history(_two_stage_cases("strip", "paint", durations), [], now=NOW)

    # Each job is replayed from each stage it went through: 160 predictions, 80 jobs.
    assert model.selection.outcomes == 80
    assert model.selection.why in {"clearly_best", "no_clear_winner"}
    saved = io.BytesIO()
    model.save(saved, extra={})
    saved.seek(0)
    assert HistoryModel.load(saved)[0].selection == model.selection


def test_a_job_between_stages_whose_next_stage_is_certain_has_the_futures_of_that_stage() -> None:
    rng = np.random.default_rng(5)
    cases = _two_stage_cases(
        "strip", "paint", np.column_stack([rng.lognormal(0, 1, 500), rng.lognormal(1, 0.5, 500)])
    )
    model = fit_history(cases, [], now=NOW).with_selection(Selection("simulation", "test"))
    elapsed = 0.3

    in_paint = model.remaining_many([_fresh("paint", elapsed, completed=1)])
    after_strip = model.remaining_many([JobProgress(None, elapsed * DAY, "strip", 1)])

    assert np.array_equal(in_paint[0], after_strip[0])
    assert model.remaining(_fresh("strip")).p50_s > in_paint[0][0] + DAY  # strip still lies ahead


def test_remaining_many_matches_remaining_and_is_fast() -> None:
    model = _single_stage_model(np.random.default_rng(4).uniform(2, 5, 500))
    jobs = [_fresh("paint", elapsed_days=(i % 50) / 10) for i in range(100_000)]

    p50, p90 = model.remaining_many(jobs)
    single = model.remaining(jobs[37])

    assert p50[37] == pytest.approx(single.p50_s)
    assert p90[37] == pytest.approx(single.p90_s)
    assert np.all(p90 >= p50)


def test_unknown_stage_is_estimated_as_a_whole_new_job() -> None:
    model = _single_stage_model(np.full(100, 2.0))

    p50, _ = model.remaining_many([_fresh("no-such-stage"), JobProgress(None, 0.0, None, 0)])

    assert p50[0] == pytest.approx(p50[1])
    assert p50[0] == pytest.approx(2 * DAY, rel=0.05)


def test_conformal_factor_brings_p90_coverage_to_target() -> None:
    rng = np.random.default_rng(5)
    raw = np.full(1000, 10.0 * DAY)
    observed = rng.exponential(6 * DAY, 1000)  # raw P90 covers only ~81 %

    calibration = calibrate(CalibrationEvidence(raw, observed, np.ones(1000, dtype=bool)))

    assert calibration.coverage_raw == pytest.approx(np.mean(observed <= raw), abs=0.01)
    assert calibration.p90_factor > 1.2
    assert calibration.coverage == pytest.approx(0.9, abs=0.01)


def _oracle_medians(
    jobs: list[tuple[int, float]], rng: np.random.Generator, futures: int = 400
) -> np.ndarray:
    """True conditional median of the remaining time of (stage, elapsed) under the known process."""
    process = REPAIR_SHOP
    pools = [np.sort(process.durations(np.full(200_000, s), rng)) for s in range(len(process.stages))]
    stage = np.repeat([s for s, _ in jobs], futures)
    elapsed = np.repeat([a for _, a in jobs], futures)
    residual = np.empty(stage.size)
    for s, pool in enumerate(pools):
        mask = stage == s
        lo = np.searchsorted(pool, elapsed[mask])
        pick = lo + (rng.random(mask.sum()) * (pool.size - lo)).astype(int)
        residual[mask] = pool[np.minimum(pick, pool.size - 1)] - elapsed[mask]
    matrix = np.cumsum(process.transition_matrix(), axis=1)
    nxt = (matrix[stage] < rng.random(stage.size)[:, None]).sum(axis=1)
    go_on = np.flatnonzero(nxt < len(process.stages))
    path, _, duration = process.simulate(nxt[go_on], rng)
    rest = np.zeros(stage.size)
    np.add.at(rest, go_on[path], duration)
    return np.median((residual + rest).reshape(len(jobs), futures), axis=1)


def test_calibrated_on_a_known_workload_p90_covers_90_percent_and_p50_is_near_the_best() -> None:
    workload = generate_workload(6000, seed=11, arrivals_per_day=200)
    now = float(workload.arrival[5000])
    model = fit_history(workload.cases_at(now), [], now=datetime.fromtimestamp(now, UTC))
    ends = workload.visit_end
    starts = ends - workload.visit_duration
    running = np.flatnonzero((starts <= now) & (ends > now))
    case = workload.visit_case[running]
    jobs = [
        JobProgress(
            REPAIR_SHOP.keys[workload.visit_stage[i]],
            now - starts[i],
            None,
            int(i - np.searchsorted(workload.visit_case, c)),
        )
        for i, c in zip(running, case, strict=True)
    ]
    case_end = ends[np.searchsorted(workload.visit_case, case, side="right") - 1]
    actual = case_end - now

    p50, p90 = model.remaining_many(jobs)
    oracle = _oracle_medians(
        [(int(workload.visit_stage[i]), now - starts[i]) for i in running], np.random.default_rng(0)
    )

    assert running.size > 1000
    assert 0.85 <= np.mean(actual <= p90) <= 0.95
    best = np.mean(np.abs(oracle - actual))
    assert np.mean(np.abs(p50 - actual)) <= 1.10 * best


def test_jobs_that_have_waited_long_are_expected_to_wait_longer_when_their_age_is_known() -> None:
    # Two kinds of job in the same stage: young ones finish in a day, old ones need ten more.
    young = [_case(f"y{i}", [("intake", 0.1, True), ("paint", 1.0, True)], finished=True) for i in range(200)]
    old = [_case(f"o{i}", [("intake", 20.0, True), ("paint", 10.0, True)], finished=True) for i in range(200)]
    model = fit_history(young + old, [], now=NOW)

    unknown = model.remaining(JobProgress("paint", 0.0, "intake", 1))
    fresh = model.remaining(JobProgress("paint", 0.0, "intake", 1, job_age_s=0.1 * DAY))
    aged = model.remaining(JobProgress("paint", 0.0, "intake", 1, job_age_s=20 * DAY))

    assert fresh.p50_s == pytest.approx(DAY, rel=0.05)
    assert aged.p50_s == pytest.approx(10 * DAY, rel=0.05)
    assert fresh.p50_s <= unknown.p50_s <= aged.p50_s


def test_who_finished_the_last_stage_tells_how_long_the_job_has_left(tmp_path: Path) -> None:
    # Painting after Ann's intake takes a day, after Bob's ten: the stages alone cannot tell.
    rng = np.random.default_rng(6)
    cases = [
        _case(
            f"{who}{i}",
            [("intake", 1.0, True), ("paint", days * rng.lognormal(0, 0.2), True)],
            finished=True,
            handled_by=f"staff:{who}",
        )
        for i in range(200)
        for who, days in (("Ann", 1.0), ("Bob", 10.0))
    ]
    model = fit_history(cases, [], now=NOW)

    def p50(who: str | None, loaded: HistoryModel = model) -> float:
        return loaded.remaining(JobProgress("paint", 0.0, None, 1, handled_by=who)).p50_s

    assert model.selection.estimator == "direct_by_resource"
    assert p50("staff:Ann") == pytest.approx(DAY, rel=0.2)
    assert p50("staff:Bob") == pytest.approx(10 * DAY, rel=0.2)
    assert p50("staff:Ann") < p50(None) < p50("staff:Bob")
    assert p50("staff:Carol") == p50(None)  # nobody's history: the position's
    path = tmp_path / "model.npz"
    with path.open("wb") as written:
        model.save(written)
    with path.open("rb") as read:
        loaded, _ = HistoryModel.load(read)
    assert p50("staff:Bob", loaded) == p50("staff:Bob")


def test_a_job_moved_on_by_nobody_named_or_someone_new_is_not_scaled_by_who_has_it() -> None:
    # Ann's paint jobs take a day and Bob's ten; jobs whose intake names nobody (visits recorded
    # before people were) took thirty. Someone with no history yet, or nobody, says nothing of the job.
    cases = [
        _case(
            f"{who}{i}",
            [("intake", 1.0, True), ("paint", days, True)],
            finished=True,
            handled_by=None if who == "nobody" else f"staff:{who}",
        )
        for i in range(100)
        for who, days in (("Ann", 1.0), ("Bob", 10.0), ("nobody", 30.0))
    ]
    fitted = fit_history(cases, [], now=NOW)
    by_resource = fitted.with_selection(replace(fitted.selection, estimator="direct_by_resource"))
    direct = fitted.with_selection(replace(fitted.selection, estimator="direct"))

    def p50(model: HistoryModel, who: str | None) -> float:
        return model.remaining(JobProgress("paint", 0.0, None, 1, handled_by=who)).p50_s

    assert p50(by_resource, "staff:Ann") < p50(direct, None) < p50(by_resource, "staff:Bob") * 2
    assert p50(by_resource, "staff:Carol") == p50(direct, "staff:Carol")
    assert p50(by_resource, None) == p50(direct, None)


def test_a_model_saved_before_handlers_were_learnt_still_loads() -> None:
    cases = _two_stage_cases("strip", "paint", np.random.default_rng(2).lognormal(0.0, 1.0, (100, 2)))
    model = fit_history(cases, [], now=NOW)
    saved = io.BytesIO()
    model.save(saved)
    saved.seek(0)
    with np.load(saved, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files if not name.startswith("handler_")}
    meta = json.loads(str(arrays["meta"]))
    del meta["handler_names"]
    arrays["meta"] = np.array(json.dumps(meta))
    older = io.BytesIO()
    np.savez_compressed(older, **arrays)
    older.seek(0)

    loaded, _ = HistoryModel.load(older)

    jobs = [_fresh("strip"), _fresh("paint", 0.5, completed=1)]
    for got, want in zip(loaded.remaining_many(jobs), model.remaining_many(jobs), strict=True):
        assert np.array_equal(got, want)


def test_saved_model_loads_with_the_same_estimates_and_extra(tmp_path: Path) -> None:
    planned = [PlannedStage("strip", DAY, 2 * DAY, 4 * DAY), PlannedStage("paint", DAY, 2 * DAY, 4 * DAY)]
    cases = [_case(f"c{i}", [("strip", 1.0 + i % 3, True)], finished=False) for i in range(50)]
    model = fit_history(cases, planned, now=NOW)
    jobs = [_fresh("strip", 0.5), _fresh("paint"), JobProgress(None, 0.0, "strip", 1, job_age_s=DAY)]
    path = tmp_path / "model.npz"

    with path.open("wb") as handle:
        model.save(handle, extra={"cost": {"strip": [1.0, 2.0]}})
    with path.open("rb") as handle:
        loaded, extra = HistoryModel.load(handle)

    assert extra == {"cost": {"strip": [1.0, 2.0]}}
    assert loaded.stage_keys == model.stage_keys
    assert repr(loaded.calibration) == repr(model.calibration)  # NaN coverage compares equal as text
    for got, want in zip(loaded.remaining_many(jobs), model.remaining_many(jobs), strict=True):
        assert np.array_equal(got, want)
    assert loaded.remaining(jobs[0]) == model.remaining(jobs[0])
    assert loaded.position_bases() == model.position_bases()
    assert loaded.selection == model.selection
    assert model.selection.longest_s == 8 * DAY  # no job seen ran longer than the plan at its slowest


def test_each_blend_answers_the_geometric_mean_of_direct_and_its_partner() -> None:
    durations = np.random.default_rng(3).lognormal(0.0, 1.0, (400, 2))
    cases = _two_stage_cases("strip", "paint", durations)
    model = fit_history(cases, [], now=NOW)
    jobs = [_fresh("strip"), _fresh("strip", elapsed_days=2.0), _fresh("paint", 0.5, completed=1)]

    def p50(estimator: EstimatorName) -> np.ndarray:
        return model.with_selection(Selection(estimator, "test")).remaining_many(jobs)[0]

    assert not np.allclose(p50("direct"), p50("median"))  # the median ignores the time already spent
    assert np.allclose(p50("direct_simulation_blend"), np.sqrt(p50("direct") * p50("simulation")))
    assert np.allclose(p50("direct_median_blend"), np.sqrt(p50("direct") * p50("median")))


def test_a_job_running_late_gets_a_later_p90_whichever_predictor_gives_its_p50() -> None:
    model = _single_stage_model(np.random.default_rng(4).lognormal(0.0, 0.8, 2000))
    jobs = [_fresh("paint"), _fresh("paint", elapsed_days=4.0)]  # the second: past most of the history

    for estimator in ESTIMATORS:
        p50, p90 = model.with_selection(Selection(estimator, "test")).remaining_many(jobs)
        assert p90[1] > p90[0], estimator  # from the jobs that had run as long, whatever the P50
        assert (p50 <= p90).all()
    median_p50, _ = model.with_selection(Selection("median", "test")).remaining_many(jobs)
    assert median_p50[0] == median_p50[1]  # the plain median ignores the time already spent


def test_stage_p90_and_bases_describe_each_stage() -> None:
    planned = [PlannedStage("strip", DAY, 2 * DAY, 3 * DAY), PlannedStage("paint", DAY, 2 * DAY, 3 * DAY)]
    cases = [_case(f"c{i}", [("strip", 5.0, True)], finished=False) for i in range(300)]

    model = fit_history(cases, planned, now=NOW)

    strip, paint = model.stage_p90_s()
    assert strip == pytest.approx(5 * DAY, rel=0.05)  # history outweighs the plan
    assert 2 * DAY < paint < 3 * DAY  # no history: the plan's PERT P90
    bases = model.position_bases()
    assert len(bases) == 2 * len(model.stage_keys) + 1
    assert bases[model.stage_keys.index("paint")] == "planned"


def test_open_jobs_past_their_p90_count_as_misses_and_widen_it() -> None:
    raw = np.full(60, 10.0 * DAY)
    since = np.full(60, 30.0 * DAY)  # every prediction made 30 days ago
    resolved = np.r_[np.ones(30, dtype=bool), np.zeros(30, dtype=bool)]
    observed = np.r_[np.full(30, 5.0 * DAY), since[30:]]  # half closed early, half still open

    calibration = calibrate(CalibrationEvidence(raw, observed, resolved, since, raw / 2))

    assert calibration.coverage_raw == pytest.approx(0.5)
    assert calibration.p90_factor > 2.0


def _fresh_open_jobs_and_old_outcomes(old_hits: int) -> CalibrationEvidence:
    """100 predictions with a P50 of 5 days and a P90 of 10: 20 made 40 days ago (``old_hits`` of
    them closed after 3 days, the rest still open), 80 made 2 days ago and still open."""
    raw = np.full(100, 10.0 * DAY)
    since = np.r_[np.full(20, 40.0), np.full(80, 2.0)] * DAY
    resolved = np.r_[np.ones(old_hits, dtype=bool), np.zeros(100 - old_hits, dtype=bool)]
    observed = np.where(resolved, 3.0 * DAY, since)
    return CalibrationEvidence(raw, observed, resolved, since, raw / 2)


def test_jobs_still_within_their_p90_count_as_their_chance_of_making_it() -> None:
    # A log-logistic law through P50 5 days and P90 10: S(2 days) = 1 / (1 + 0.4 ** (ln 9 / ln 2)).
    survival_at_2_days = 1.0 / (1.0 + 0.4 ** (np.log(9.0) / np.log(2.0)))
    chance = 1.0 - 0.1 / survival_at_2_days

    half_missed = calibrate(_fresh_open_jobs_and_old_outcomes(old_hits=10))

    # 10 hits and 10 misses decided, and 80 chances of about 0.89: not 90 hits of 100.
    assert half_missed.coverage_raw == pytest.approx((10 + 80 * chance) / 100)
    assert half_missed.p90_factor > 1.5


def test_fresh_open_jobs_never_vouch_for_more_than_the_closed_ones_show() -> None:
    none_missed = calibrate(_fresh_open_jobs_and_old_outcomes(old_hits=20))
    half_missed = calibrate(_fresh_open_jobs_and_old_outcomes(old_hits=10))

    assert none_missed.coverage_raw >= 0.9
    assert none_missed.p90_factor <= 1.0 < half_missed.p90_factor


def test_since_and_p50_come_together() -> None:
    raw = np.full(3, DAY)
    with pytest.raises(ValueError, match="together"):
        CalibrationEvidence(raw, raw, np.ones(3, dtype=bool), since_s=raw)


def test_a_few_outcomes_move_the_factor_less_than_many() -> None:
    def factor(n: int) -> float:
        raw = np.full(n, 10.0 * DAY)
        observed = np.full(n, 20.0 * DAY)  # every job took twice its P90
        return calibrate(CalibrationEvidence(raw, observed, np.ones(n, dtype=bool))).p90_factor

    assert 1.0 < factor(5) < factor(50) < factor(500) <= 2.05
    assert factor(500) == pytest.approx(2.0, rel=0.05)


def test_long_p90s_missed_count_though_few_have_passed_yet() -> None:
    # Half the predictions have a 1-day P90 that covers 95 %, half a 20-day P90 that covers 60 %;
    # all were made 0 to 30 days ago, so only a third of the long ones have had their P90 pass.
    n = 600
    since = np.tile(np.linspace(0.0, 30.0, n // 2), 2) * DAY
    raw = np.r_[np.full(n // 2, 1.0), np.full(n // 2, 20.0)] * DAY
    rng = np.random.default_rng(2)
    covered = np.r_[rng.random(n // 2) < 0.95, rng.random(n // 2) < 0.60]
    outcome = np.where(covered, 0.5 * raw, 1.5 * raw)
    resolved = outcome <= since
    observed = np.where(resolved, outcome, since)

    calibration = calibrate(CalibrationEvidence(raw, observed, resolved, since, raw / 2))

    assert calibration.coverage_raw < 0.9
    assert np.mean(outcome <= calibration.p90_factor * raw) >= 0.9  # the long P90s' misses heeded


def test_calibration_looks_at_the_newest_predictions_old_enough_for_their_jobs_to_have_closed() -> None:
    since = np.arange(100.0, 0.0, -1.0) * DAY  # one prediction a day for 100 days, oldest first
    closed_remaining = np.linspace(0.0, 50.0, 101) * DAY  # P80: 40 days

    window = evidence_window(since, closed_remaining, size=30)

    assert since[window].tolist() == (np.arange(70.0, 40.0, -1.0) * DAY).tolist()
    # Too few that old (4 made over 96 days ago, of 30 wanted): the newest 30, whatever their age.
    assert evidence_window(since, closed_remaining * 2.4, size=30) == slice(70, 100)
    assert evidence_window(since, np.zeros(0), size=30) == slice(70, 100)


def test_a_thin_group_of_past_jobs_moves_the_direct_estimate_only_part_of_the_way() -> None:
    # 200 jobs: strip for a day, then paint for two. 12 jobs stripped twice, then painted for 20 days.
    usual = [_case(f"u{i}", [("strip", 1.0, True), ("paint", 2.0, True)], finished=True) for i in range(200)]
    redone = [
        _case(f"r{i}", [("strip", 1.0, True), ("strip", 1.0, True), ("paint", 20.0, True)], finished=True)
        for i in range(12)
    ]
    model = fit_history(usual + redone, [], now=NOW).with_selection(Selection("direct", "test"))

    once, twice = model.remaining_many(
        [JobProgress(None, 0.0, "strip", 1), JobProgress(None, 0.0, "strip", 2)]
    )[0]

    assert once == pytest.approx(2 * DAY, rel=0.1)
    # Twelve jobs say 20 days; they pull the estimate from the position's 2 days, not all the way.
    assert 3 * DAY < twice < 15 * DAY


def test_a_few_outcomes_move_the_factor_a_little_from_the_prior_and_many_all_the_way() -> None:
    def factor(n: int) -> float:
        raw = np.full(n, 10.0 * DAY)
        observed = np.full(n, 4.0 * DAY)  # every job done well within its P90: half of it would do
        evidence = CalibrationEvidence(raw, observed, np.ones(n, dtype=bool))
        return calibrate(evidence, prior_factor=2.0).p90_factor

    assert 1.0 < factor(5) < 2.0
    assert factor(500) < 0.55
