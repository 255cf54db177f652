from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from tracker.estimates.cost import (
    COST_BASES,
    CostHistory,
    CostParams,
    percent_complete_many,
    project_cost,
    project_costs_many,
    ratio_quantiles,
    remaining_quantiles,
)

D = Decimal
PLAN = (D(1000), D(2000), D(1000))  # planned cost per stage, BAC 4000


def test_a_job_on_plan_projects_its_budget() -> None:
    projection = project_cost(
        actual_cost=D(2000), planned_costs=PLAN, completed_stages=1, current_fraction=0.5
    )
    assert projection.p50 == D("4000.00")
    assert projection.basis == "planned"
    assert projection.percent_complete == 0.5
    assert projection.cpi == 1.0


def test_overspending_raises_the_projection_shrunk_by_progress() -> None:
    # Half done for 2500: CPI 0.8, shrunk halfway toward 1 -> 0.9; EAC = 2500 + 2000 / 0.9.
    projection = project_cost(
        actual_cost=D(2500), planned_costs=PLAN, completed_stages=1, current_fraction=0.5, budget=D(4000)
    )
    assert projection.cpi == pytest.approx(0.9)
    assert projection.p50 == D("4722.22")
    assert projection.over_budget
    assert projection.at_risk_budget


def test_underspending_lowers_the_projection_but_not_below_actual() -> None:
    # Three quarters done for 2000: CPI 1.5, shrunk to 1.375; EAC = 2000 + 1000 / 1.375.
    projection = project_cost(
        actual_cost=D(2000), planned_costs=PLAN, completed_stages=2, current_fraction=0.0, budget=D(4000)
    )
    assert projection.p50 == D("2727.27")
    assert not projection.over_budget


def test_an_early_extreme_cpi_is_barely_trusted() -> None:
    # 5 % done for 800: the raw CPI (0.25) would project 16,000; shrunk it stays near plan.
    projection = project_cost(
        actual_cost=D(800), planned_costs=PLAN, completed_stages=0, current_fraction=0.2
    )
    assert projection.cpi == pytest.approx(0.05 * 0.25 + 0.95)
    assert D(4500) < projection.p50 < D(5000)


def test_zero_actual_cost_projects_the_budget() -> None:
    projection = project_cost(actual_cost=D(0), planned_costs=PLAN, budget=D(3800))
    assert projection.p50 == D("3800.00")
    assert projection.p90 == D("4750.00")  # planned margin of 25 % on the remaining cost


def test_without_budget_the_planned_total_is_the_baseline() -> None:
    projection = project_cost(actual_cost=D(0), planned_costs=PLAN)
    assert projection.p50 == D("4000.00")
    assert projection.budget is None
    assert not projection.over_budget
    assert not projection.at_risk_budget


def test_the_population_cpi_moves_the_baseline() -> None:
    params = CostParams(population_cpi=0.8)
    assert project_cost(actual_cost=D(0), planned_costs=PLAN, params=params).p50 == D("5000.00")


def test_a_completed_job_projects_its_actual_cost() -> None:
    projection = project_cost(
        actual_cost=D("4321.09"),
        planned_costs=PLAN,
        completed_stages=3,
        budget=D(4000),
        history=CostHistory(ratios=(1.5, 2.0)),
    )
    assert (projection.p50, projection.p90, projection.basis) == (D("4321.09"), D("4321.09"), "actual")
    assert projection.over_budget


def test_history_alone_uses_ratio_quantiles() -> None:
    history = CostHistory(ratios=tuple(1.0 + i / 10 for i in range(11)))  # 1.0 .. 2.0
    projection = project_cost(actual_cost=D(1000), history=history)
    assert (projection.p50, projection.p90) == (D("1500.00"), D("1900.00"))
    assert (projection.basis, projection.samples) == ("history", 11)


def test_history_without_cost_so_far_uses_remaining_cost_samples() -> None:
    history = CostHistory(ratios=(3.0,), remaining=(D(100), D(200), D(300)))
    projection = project_cost(actual_cost=D(0), history=history)
    assert (projection.p50, projection.p90, projection.samples) == (D("200.00"), D("280.00"), 3)


def test_ratios_below_one_are_treated_as_no_further_cost() -> None:
    projection = project_cost(actual_cost=D(1000), history=CostHistory(ratios=(0.5, 0.7)))
    assert projection.p50 == projection.p90 == D("1000.00")


def test_history_and_plan_blend_by_sample_count() -> None:
    plan_only = project_cost(
        actual_cost=D(2000), planned_costs=PLAN, completed_stages=1, current_fraction=0.5
    )
    history = CostHistory(ratios=(3.0,) * 10)  # history says 6000
    blended = project_cost(
        actual_cost=D(2000), planned_costs=PLAN, completed_stages=1, current_fraction=0.5, history=history
    )
    assert plan_only.p50 == D("4000.00")
    assert (blended.p50, blended.basis, blended.samples) == (D("5000.00"), "blend", 10)  # weight 10 / 20
    many = project_cost(
        actual_cost=D(2000),
        planned_costs=PLAN,
        completed_stages=1,
        current_fraction=0.5,
        history=CostHistory(ratios=(3.0,) * 90),
    )
    assert many.p50 == D("5800.00")  # weight 90 / 100


def test_nothing_known_projects_the_cost_so_far() -> None:
    projection = project_cost(actual_cost=D("12.34"))
    assert (projection.p50, projection.p90, projection.basis) == (D("12.34"), D("12.34"), "actual")


@pytest.mark.parametrize(("minor_units", "expected"), [(0, D(4722)), (2, D("4722.22")), (3, D("4722.222"))])
def test_amounts_are_rounded_to_minor_units(minor_units: int, expected: Decimal) -> None:
    projection = project_cost(
        actual_cost=D(2500),
        planned_costs=PLAN,
        completed_stages=1,
        current_fraction=0.5,
        minor_units=minor_units,
    )
    assert projection.p50 == expected
    assert projection.p50.as_tuple().exponent == -minor_units


def test_projection_never_drops_below_unrounded_actual_cost() -> None:
    projection = project_cost(actual_cost=D("10.001"), planned_costs=(D(10),), completed_stages=1)
    assert projection.p50 == D("10.01")


def test_a_plan_with_no_prices_weighs_stages_equally() -> None:
    projection = project_cost(actual_cost=D(100), planned_costs=(D(0), D(0)), completed_stages=1)
    assert projection.percent_complete == 0.5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"actual_cost": D(-1)},
        {"actual_cost": D(1), "planned_costs": (D(-5),)},
        {"actual_cost": D(1), "budget": D(-1)},
        {"actual_cost": D(1), "planned_costs": PLAN, "completed_stages": 4},
        {"actual_cost": D(1), "planned_costs": PLAN, "current_fraction": 1.5},
    ],
)
def test_invalid_inputs_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        project_cost(**kwargs)  # type: ignore[arg-type]


def test_p90_is_at_least_p50_which_is_at_least_actual_cost() -> None:
    rng = np.random.default_rng(2024)
    for _ in range(2000):
        stages = int(rng.integers(1, 6))
        plan = tuple(D(int(c)) for c in rng.integers(0, 5000, stages))
        actual = D(int(rng.integers(0, 20000))) / 100 * int(rng.integers(0, 2))
        completed = int(rng.integers(0, stages + 1))
        history = CostHistory(
            ratios=tuple(rng.uniform(0.5, 3.0, int(rng.integers(0, 30)))),
            remaining=tuple(D(int(r)) for r in rng.integers(-100, 3000, int(rng.integers(0, 5)))),
        )
        projection = project_cost(
            actual_cost=actual,
            planned_costs=plan if rng.random() < 0.8 else (),
            completed_stages=completed if rng.random() < 0.8 else 0,
            current_fraction=float(rng.random()),
            budget=D(int(rng.integers(0, 20000))) if rng.random() < 0.5 else None,
            history=history,
            params=CostParams(population_cpi=float(rng.uniform(0.5, 1.5))),
        )
        assert projection.p90 >= projection.p50 >= actual >= 0


def test_a_plan_with_nothing_left_to_earn_projects_the_actual_cost() -> None:
    # Last unpriced stage fully done: CPI is 0 but so is the work to go (this used to divide 0 by 0).
    projection = project_cost(actual_cost=D(5), planned_costs=(D(0),), current_fraction=1.0)
    assert (projection.p50, projection.p90, projection.basis) == (D("5.00"), D("5.00"), "planned")


def test_history_quantile_helpers() -> None:
    history = CostHistory(ratios=(0.5, *(1.0 + i / 10 for i in range(10))), remaining=(D(-5), D(10)))
    assert ratio_quantiles(history) == pytest.approx((1.4, 1.8, 11))  # 0.5 counts as 1.0
    assert remaining_quantiles(history) == pytest.approx((5.0, 9.0, 2))  # -5 counts as 0
    assert np.isnan(ratio_quantiles(CostHistory())[:2]).all()
    assert ratio_quantiles(CostHistory())[2] == remaining_quantiles(CostHistory())[2] == 0


def test_percent_complete_many_follows_one_plan() -> None:
    result = percent_complete_many(PLAN, [0, 1, 2, 3, 1], [0.0, 0.5, 0.0, 0.7, 1.0])
    assert result.tolist() == [0.0, 0.5, 0.75, 1.0, 0.75]
    assert percent_complete_many((D(0), D(0)), [1], [0.5]).tolist() == [0.75]  # equal weights


def test_many_uses_basis_codes_and_broadcasts_scalars() -> None:
    result = project_costs_many(
        actual_cost=[0.0, 2000.0, 2000.0, 12.34, 4321.09],
        percent_complete=[0.0, 0.5, np.nan, np.nan, 1.0],
        planned_total=4000.0,
        completed=[False, False, False, False, True],
        ratio_p50=[np.nan, 3.0, 3.0, np.nan, 3.0],
        ratio_p90=[np.nan, 3.0, 3.0, np.nan, 3.0],
        ratio_samples=[0, 10, 10, 0, 10],
    )
    assert [COST_BASES[b] for b in result.basis] == ["planned", "blend", "history", "actual", "actual"]
    assert result.p50.tolist() == [4000.0, 5000.0, 6000.0, 12.34, 4321.09]
    assert result.samples.tolist() == [0, 10, 10, 0, 0]
    assert result.cpi[:2].tolist() == [1.0, 1.0]
    assert np.isnan(result.cpi[2:]).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"actual_cost": [-1.0], "percent_complete": [np.nan]},
        {"actual_cost": [np.nan], "percent_complete": [np.nan]},
        {"actual_cost": [1.0], "percent_complete": [1.5]},
        {"actual_cost": [1.0], "percent_complete": [0.5], "planned_total": [-1.0]},
        {"actual_cost": [1.0], "percent_complete": [0.5], "budget": [-1.0]},
        {"actual_cost": [1.0], "percent_complete": [np.nan], "ratio_samples": [3]},  # NaN quantiles
    ],
)
def test_many_rejects_invalid_inputs(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        project_costs_many(**kwargs)  # type: ignore[arg-type]


def _random_workflow(rng: np.random.Generator) -> tuple[tuple[Decimal, ...], list[CostHistory]]:
    """A plan (possibly empty or unpriced) and a cost history per stage, plus one once completed."""
    stages = int(rng.integers(1, 6))
    kind = rng.random()
    plan = () if kind < 0.15 else tuple(D(int(c) * int(kind > 0.3)) for c in rng.integers(0, 5000, stages))
    histories = [
        CostHistory(
            ratios=tuple(rng.uniform(0.5, 3.0, int(rng.integers(0, 30)) * int(rng.random() < 0.7))),
            remaining=tuple(D(int(r)) for r in rng.integers(-100, 3000, int(rng.integers(0, 5)))),
        )
        for _ in range(stages + 1)
    ]
    return plan, histories


def test_scalar_and_vectorised_projections_agree() -> None:
    """The caller's bulk path: per-stage quantiles precomputed once per workflow, gathered per job."""
    rng = np.random.default_rng(31)
    workflows = [_random_workflow(rng) for _ in range(12)]
    params = CostParams(population_cpi=0.9, history_prior_n=5.0, planned_p90_margin=0.3)
    tables = [
        np.array([(*ratio_quantiles(h), *remaining_quantiles(h)) for h in histories])
        for _, histories in workflows
    ]
    n = 1000
    workflow = rng.integers(0, len(workflows), n)
    stage = np.array([rng.integers(0, max(len(workflows[w][0]), 1) + 1) for w in workflow])
    stage = np.where([len(workflows[w][0]) == 0 for w in workflow], 0, stage)
    fraction = np.where(rng.random(n) < 0.1, 1.0, rng.random(n))
    actual = np.round(rng.uniform(0, 20000, n) * (rng.random(n) < 0.8), 2)
    budget = np.where(rng.random(n) < 0.5, rng.integers(0, 20000, n).astype(float), np.nan)

    percent = np.full(n, np.nan)
    planned_total = np.zeros(n)
    completed = np.zeros(n, dtype=bool)
    for w, (plan, _) in enumerate(workflows):
        jobs = workflow == w
        if plan:
            percent[jobs] = percent_complete_many(plan, stage[jobs], fraction[jobs])
            planned_total[jobs] = float(sum(plan))
            completed[jobs] = stage[jobs] == len(plan)
    quantiles = np.array([tables[w][s] for w, s in zip(workflow, stage, strict=True)])
    many = project_costs_many(
        actual_cost=actual,
        percent_complete=percent,
        planned_total=planned_total,
        budget=budget,
        completed=completed,
        ratio_p50=quantiles[:, 0],
        ratio_p90=quantiles[:, 1],
        ratio_samples=quantiles[:, 2].astype(int),
        remaining_p50=quantiles[:, 3],
        remaining_p90=quantiles[:, 4],
        remaining_samples=quantiles[:, 5].astype(int),
        params=params,
    )

    bases = set()
    for i in range(n):
        plan, histories = workflows[workflow[i]]
        scalar = project_cost(
            actual_cost=D(repr(float(actual[i]))),
            planned_costs=plan,
            completed_stages=int(stage[i]),
            current_fraction=float(fraction[i]),
            budget=None if np.isnan(budget[i]) else D(repr(float(budget[i]))),
            history=histories[stage[i]],
            params=params,
        )
        assert (D(repr(float(many.p50[i]))), D(repr(float(many.p90[i])))) == (scalar.p50, scalar.p90)
        assert (COST_BASES[many.basis[i]], int(many.samples[i])) == (scalar.basis, scalar.samples)
        assert (None if np.isnan(many.cpi[i]) else float(many.cpi[i])) == scalar.cpi
        bases.add(scalar.basis)
    assert bases == set(COST_BASES)
    assert (many.p90 >= many.p50).all()
    assert (many.p50 >= actual).all()
