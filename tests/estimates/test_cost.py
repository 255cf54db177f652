"""Projected final cost: anchored to the quote, spread over the stages by the plan, learned from history."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from tracker.estimates.cost import (
    COST_BASES,
    CostHistory,
    CostParams,
    is_over_budget,
    overrun_quantiles,
    project_cost,
    project_costs_many,
    ratio_quantiles,
    stage_shares,
)

D = Decimal
# The demo garage's plan: intake, diagnosis, parts, repair, quality check, ready (960 in all).
CAR_PLAN = (D(0), D(90), D(350), D(480), D(40), D(0))
INTAKE, DIAGNOSIS, PARTS, REPAIR, QUALITY, READY = range(6)
BRAKES_QUOTE = D(640)
TOLERANCE = D("0.05")


def brakes(stage: int, actual: str = "0", in_stage: str = "0", **kwargs: object) -> Decimal:
    """P50 of the 640 EUR brake job at a stage, having spent ``actual`` (``in_stage`` of it there)."""
    return project_cost(
        actual_cost=D(actual),
        stage_cost=D(in_stage),
        planned_costs=CAR_PLAN,
        stage_index=stage,
        budget=BRAKES_QUOTE,
        **kwargs,  # type: ignore[arg-type]
    ).p50


def planned_from(stage: int, quote: Decimal = BRAKES_QUOTE) -> Decimal:
    """The quote's share planned for this stage and the ones after it."""
    return quote * sum(CAR_PLAN[stage:], D(0)) / sum(CAR_PLAN, D(0))


# ------------------------------------------------------------------ the rule for over budget


def test_over_budget_means_above_the_quote_by_more_than_the_tolerance() -> None:
    assert not is_over_budget(D("672.00"), D(640), TOLERANCE)  # exactly 5 % above
    assert is_over_budget(D("672.01"), D(640), TOLERANCE)
    assert not is_over_budget(D(640), D(640), D(0))
    assert is_over_budget(D("640.01"), D(640), D(0))
    assert not is_over_budget(D(500), D(640), TOLERANCE)


# ------------------------------------------------------------------ the demo's scenarios


def test_a_new_brake_job_projects_its_quote_and_is_not_over_budget() -> None:
    projection = project_cost(actual_cost=D(0), planned_costs=CAR_PLAN, budget=BRAKES_QUOTE)

    assert projection.p50 == D("640.00")  # not the plan's 960
    assert projection.p90 == D("800.00")  # the plan's 25 % margin on what is left
    assert projection.basis == "planned"
    assert not is_over_budget(projection.p50, BRAKES_QUOTE, TOLERANCE)


def test_a_cost_within_the_current_stages_share_does_not_raise_the_projection() -> None:
    # Diagnosis has 90 / 960 of the quote: 60 EUR.
    assert brakes(DIAGNOSIS) == D("640.00")
    assert brakes(DIAGNOSIS, actual="55", in_stage="55") == D("640.00")
    assert brakes(DIAGNOSIS, actual="60", in_stage="60") == D("640.00")


def test_spending_beyond_the_current_stages_share_is_an_overrun_that_raises_it() -> None:
    assert brakes(DIAGNOSIS, actual="100", in_stage="100") == D("680.00")  # 40 over the 60 planned
    # Repair has 320 of the quote: 380 spent there is 60 over, whatever the stages before cost.
    assert brakes(REPAIR, actual="673.33", in_stage="380") == D("700.00")
    assert brakes(REPAIR, actual="500", in_stage="380") == D("700.00")


def test_stages_left_without_their_costs_do_not_lower_the_projection() -> None:
    # Costs are often recorded late: until the job completes, earlier stages count their share.
    assert brakes(REPAIR) == brakes(QUALITY) == brakes(READY) == D("640.00")
    assert brakes(REPAIR, actual="400") == D("746.67")  # spent 400 where 293.33 was planned


def test_moving_from_diagnosis_to_repair_keeps_what_remains_planned() -> None:
    in_diagnosis = brakes(DIAGNOSIS, actual="60", in_stage="60")
    in_parts = brakes(PARTS, actual="60")
    in_repair = brakes(REPAIR, actual="293.33")

    assert in_diagnosis == in_parts == D("640.00")
    assert in_repair >= D("293.33") + planned_from(REPAIR)
    assert in_repair == D("640.00")


def test_no_stage_change_drops_the_projection_below_what_remains_planned() -> None:
    rng = np.random.default_rng(8)
    for _ in range(3000):
        stage = int(rng.integers(0, len(CAR_PLAN)))
        quote = D(int(rng.integers(50, 5000)))
        before = D(int(rng.integers(0, 500000))) / 100  # spent in earlier stages, on plan or not
        in_stage = D(int(rng.integers(0, 100000))) / 100 * int(rng.random() < 0.6)
        projection = project_cost(
            actual_cost=before + in_stage,
            stage_cost=in_stage,
            planned_costs=CAR_PLAN,
            stage_index=stage,
            budget=quote,
        )
        after_this_stage = planned_from(min(stage + 1, len(CAR_PLAN)), quote)
        assert projection.p50 >= (before + planned_from(stage, quote)).quantize(D("0.01")) - D("0.01")
        assert projection.p50 >= (before + in_stage + after_this_stage).quantize(D("0.01")) - D("0.01")


# ------------------------------------------------------------------ history


def on_plan(n: int) -> CostHistory:
    return CostHistory(ratios=(1.0,) * n, overruns=(D(0),) * n)


def test_a_new_job_starts_at_its_quote_when_past_jobs_kept_to_theirs() -> None:
    projection = project_cost(
        actual_cost=D(0), planned_costs=CAR_PLAN, budget=BRAKES_QUOTE, history=on_plan(200)
    )
    assert (projection.p50, projection.basis, projection.samples) == (D("640.00"), "blend", 200)


def test_a_new_job_starts_above_its_quote_when_past_jobs_like_it_overran() -> None:
    # Past jobs spent 30 % more than planned from intake on, whatever their size.
    history = CostHistory(ratios=(1.3,) * 90, overruns=(D(192),) * 90)

    projection = project_cost(actual_cost=D(0), planned_costs=CAR_PLAN, budget=BRAKES_QUOTE, history=history)

    assert projection.p50 == D("812.80")  # 640 + 0.9 x 192
    assert is_over_budget(projection.p50, BRAKES_QUOTE, TOLERANCE)


def test_few_samples_stay_near_earned_value() -> None:
    history = CostHistory(ratios=(2.0,) * 2, overruns=(D(640),) * 2)

    projection = project_cost(actual_cost=D(0), planned_costs=CAR_PLAN, budget=BRAKES_QUOTE, history=history)

    assert projection.p50 == D("746.67")  # weight 2 / (2 + 10) on 1280


def test_ratio_and_additive_history_are_averaged() -> None:
    # From repair on the plan leaves 346.67; past jobs spent 1.5 x that, or 40 more than it.
    history = CostHistory(ratios=(1.5,) * 10, overruns=(D(40),) * 10)

    p50 = brakes(REPAIR, actual="300", history=history)

    history_m = (D(346.6667) * D("1.5") + D(346.6667) + 40) / 2
    expected = D(300) + (history_m + D(346.6667)) / 2  # weight 10 / (10 + 10)
    assert abs(p50 - expected) <= D("0.01")


def test_history_alone_serves_a_job_without_budget() -> None:
    projection = project_cost(actual_cost=D(100), history=CostHistory(overruns=(D(50), D(150), D(250))))
    assert (projection.p50, projection.p90, projection.basis) == (D("250.00"), D("330.00"), "history")


def test_history_saying_jobs_spend_less_lowers_the_projection_but_not_below_actual() -> None:
    history = CostHistory(ratios=(0.0,) * 1000, overruns=(D(-5000),) * 1000)
    p50 = brakes(REPAIR, actual="700", in_stage="100", history=history)
    assert D(700) <= p50 < D(705)


def test_quantile_helpers() -> None:
    history = CostHistory(ratios=(-0.5, *(1.0 + i / 10 for i in range(10))), overruns=(D(-5), D(10)))
    assert ratio_quantiles(history) == pytest.approx((1.4, 1.8, 11))  # -0.5 counts as 0
    assert overrun_quantiles(history) == pytest.approx((2.5, 8.5, 2))  # overruns may be negative
    assert np.isnan(ratio_quantiles(CostHistory())[:2]).all()
    assert ratio_quantiles(CostHistory())[2] == overrun_quantiles(CostHistory())[2] == 0


# ------------------------------------------------------------------ edges and invariants


def test_a_completed_job_projects_its_actual_cost() -> None:
    projection = project_cost(
        actual_cost=D("4321.09"),
        planned_costs=CAR_PLAN,
        stage_index=len(CAR_PLAN),
        budget=D(4000),
        history=on_plan(10),
    )
    assert (projection.p50, projection.p90, projection.basis) == (D("4321.09"), D("4321.09"), "actual")


def test_nothing_known_projects_the_cost_so_far() -> None:
    projection = project_cost(actual_cost=D("12.34"))
    assert (projection.p50, projection.p90, projection.basis) == (D("12.34"), D("12.34"), "actual")


def test_without_a_quote_the_planned_total_is_the_budget() -> None:
    projection = project_cost(actual_cost=D(0), planned_costs=CAR_PLAN)
    assert (projection.p50, projection.budget) == (D("960.00"), D(960))


def test_a_plan_with_no_prices_spreads_the_quote_evenly() -> None:
    share, after = stage_shares((D(0), D(0), D(0), D(0)))
    assert share.tolist() == [0.25, 0.25, 0.25, 0.25, 0.0]
    assert after.tolist() == [0.75, 0.5, 0.25, 0.0, 0.0]
    projection = project_cost(
        actual_cost=D(150), stage_cost=D(150), planned_costs=(D(0),) * 4, stage_index=2, budget=D(400)
    )
    assert projection.p50 == D("450.00")  # 50 over the third stage's 100


@pytest.mark.parametrize(("minor_units", "expected"), [(0, D(681)), (2, D("680.91")), (3, D("680.906"))])
def test_amounts_are_rounded_to_minor_units(minor_units: int, expected: Decimal) -> None:
    projection = project_cost(
        actual_cost=D(100),
        stage_cost=D(100),
        planned_costs=CAR_PLAN,
        stage_index=DIAGNOSIS,
        budget=D(641),
        minor_units=minor_units,
    )
    assert projection.p50 == expected
    assert projection.p50.as_tuple().exponent == -minor_units


def test_projection_never_drops_below_unrounded_actual_cost() -> None:
    projection = project_cost(actual_cost=D("10.001"), planned_costs=(D(10),), stage_index=1)
    assert projection.p50 == D("10.01")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"actual_cost": D(-1)},
        {"actual_cost": D(1), "planned_costs": (D(-5),)},
        {"actual_cost": D(1), "budget": D(-1)},
        {"actual_cost": D(1), "stage_cost": D(2)},
        {"actual_cost": D(1), "stage_cost": D(-1)},
        {"actual_cost": D(1), "planned_costs": CAR_PLAN, "stage_index": 7},
    ],
)
def test_invalid_inputs_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        project_cost(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"actual_cost": [-1.0]},
        {"actual_cost": [np.nan]},
        {"actual_cost": [1.0], "stage_cost": [2.0]},
        {"actual_cost": [1.0], "share_current": [0.7], "share_after": [0.7]},
        {"actual_cost": [1.0], "share_current": [-0.1]},
        {"actual_cost": [1.0], "planned_total": [-1.0]},
        {"actual_cost": [1.0], "budget": [-1.0]},
        {"actual_cost": [1.0], "ratio_samples": [3], "budget": [5.0]},  # NaN quantiles
    ],
)
def test_many_rejects_invalid_inputs(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        project_costs_many(**kwargs)  # type: ignore[arg-type]


def _random_history(rng: np.random.Generator) -> CostHistory:
    n = int(rng.integers(0, 30)) * int(rng.random() < 0.7)
    return CostHistory(
        ratios=tuple(rng.uniform(0.3, 3.0, n)),
        overruns=tuple(D(int(r)) for r in rng.integers(-1000, 3000, n + int(rng.integers(0, 3)))),
    )


def test_p90_is_at_least_p50_which_is_at_least_actual_cost() -> None:
    rng = np.random.default_rng(2024)
    for _ in range(2000):
        stages = int(rng.integers(0, 6))
        plan = tuple(D(int(c)) for c in rng.integers(0, 5000, stages))
        actual = D(int(rng.integers(0, 20000))) / 100 * int(rng.integers(0, 2))
        projection = project_cost(
            actual_cost=actual,
            stage_cost=actual * D(int(rng.integers(0, 2))),
            planned_costs=plan,
            stage_index=int(rng.integers(0, stages + 1)),
            budget=D(int(rng.integers(0, 20000))) if rng.random() < 0.7 else None,
            history=_random_history(rng),
            params=CostParams(history_prior_n=float(rng.uniform(0, 20))),
        )
        assert projection.p90 >= projection.p50 >= actual >= 0


def test_scalar_and_vectorised_projections_agree() -> None:
    """The caller's bulk path: per-stage quantiles precomputed once per workflow, gathered per job."""
    rng = np.random.default_rng(31)
    params = CostParams(history_prior_n=5.0, planned_p90_margin=0.3)
    plans = [
        tuple(D(int(c) * int(kind > 0.3)) for c in rng.integers(0, 5000, int(rng.integers(1, 6))))
        for kind in rng.random(12)
    ]
    histories = [[_random_history(rng) for _ in range(len(plan) + 1)] for plan in plans]
    tables = [np.array([(*ratio_quantiles(h), *overrun_quantiles(h)) for h in hs]) for hs in histories]
    n = 1000
    workflow = rng.integers(0, len(plans), n)
    stage = np.array([rng.integers(0, len(plans[w]) + 1) for w in workflow])
    actual = np.round(rng.uniform(0, 20000, n) * (rng.random(n) < 0.8), 2)
    in_stage = np.round(actual * rng.random(n) * (rng.random(n) < 0.5), 2)
    budget = np.where(rng.random(n) < 0.8, rng.integers(0, 20000, n).astype(float), np.nan)

    share, after, total = np.zeros(n), np.zeros(n), np.zeros(n)
    for w, plan in enumerate(plans):
        jobs = workflow == w
        shares, afters = stage_shares(plan)
        share[jobs], after[jobs] = shares[stage[jobs]], afters[stage[jobs]]
        total[jobs] = float(sum(plan))
    quantiles = np.array([tables[w][s] for w, s in zip(workflow, stage, strict=True)])
    many = project_costs_many(
        actual_cost=actual,
        stage_cost=in_stage,
        share_current=share,
        share_after=after,
        budget=budget,
        planned_total=total,
        completed=stage == np.array([len(plans[w]) for w in workflow]),
        ratio_p50=quantiles[:, 0],
        ratio_p90=quantiles[:, 1],
        ratio_samples=quantiles[:, 2].astype(int),
        overrun_p50=quantiles[:, 3],
        overrun_p90=quantiles[:, 4],
        overrun_samples=quantiles[:, 5].astype(int),
        params=params,
    )

    bases = set()
    for i in range(n):
        scalar = project_cost(
            actual_cost=D(repr(float(actual[i]))),
            stage_cost=D(repr(float(in_stage[i]))),
            planned_costs=plans[workflow[i]],
            stage_index=int(stage[i]),
            budget=None if np.isnan(budget[i]) else D(repr(float(budget[i]))),
            history=histories[workflow[i]][stage[i]],
            params=params,
        )
        assert (D(repr(float(many.p50[i]))), D(repr(float(many.p90[i])))) == (scalar.p50, scalar.p90)
        assert (COST_BASES[many.basis[i]], int(many.samples[i])) == (scalar.basis, scalar.samples)
        bases.add(scalar.basis)
    assert bases == set(COST_BASES)
    assert (many.p90 >= many.p50).all()
    assert (many.p50 >= actual).all()
