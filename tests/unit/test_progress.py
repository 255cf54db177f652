"""The customer's view of progress: the stepper and how sure an estimate is, in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tracker.domain.progress import Confidence, StepState, confidence, shown_stage, steps
from tracker.domain.workflow import JobStatus, StageDefinition, ThreePointEstimate, WorkflowDefinition

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def workflow(*stages: tuple[str, bool]) -> WorkflowDefinition:
    hours = ThreePointEstimate(Decimal(1), Decimal(2), Decimal(3))
    return WorkflowDefinition(
        "Repairs",
        tuple(
            StageDefinition(
                key, {"en": key.title(), "fr": f"{key} (fr)"}, hours, Decimal(0), customer_visible=shown
            )
            for key, shown in stages
        ),
    )


REPAIRS = workflow(("intake", True), ("audit", False), ("repair", True), ("ready", True))


def states(stage: str, status: JobStatus = JobStatus.OPEN) -> list[tuple[str, StepState]]:
    return [(step.key, step.state) for step in steps(REPAIRS, stage, status, "en")]


def test_steps_before_the_current_one_are_done_and_after_it_next() -> None:
    assert states("repair") == [
        ("intake", StepState.DONE),
        ("repair", StepState.CURRENT),
        ("ready", StepState.NEXT),
    ]


def test_a_hidden_stage_is_never_a_step_and_the_last_visible_one_stays_current() -> None:
    assert states("audit") == [
        ("intake", StepState.CURRENT),
        ("repair", StepState.NEXT),
        ("ready", StepState.NEXT),
    ]
    assert shown_stage(steps(REPAIRS, "audit", JobStatus.OPEN, "en")) == "Intake"


def test_a_hidden_first_stage_leaves_no_step_current() -> None:
    hidden_first = workflow(("triage", False), ("repair", True))
    progress = steps(hidden_first, "triage", JobStatus.OPEN, "fr")

    assert [(step.label, step.state) for step in progress] == [("repair (fr)", StepState.NEXT)]
    assert shown_stage(progress) == "repair (fr)"


def test_a_completed_job_has_every_step_done() -> None:
    assert {state for _, state in states("ready", JobStatus.COMPLETED)} == {StepState.DONE}


@pytest.mark.parametrize(
    ("p50_in", "spread", "basis", "expected"),
    [
        (timedelta(days=10), timedelta(days=1), "history", Confidence.HIGH),
        (timedelta(days=10), timedelta(days=1), "planned", Confidence.MEDIUM),
        (timedelta(days=10), timedelta(days=5), "history", Confidence.MEDIUM),
        (timedelta(days=10), timedelta(days=9), "history", Confidence.LOW),
        (timedelta(hours=2), timedelta(hours=4), "history", Confidence.HIGH),
        (timedelta(days=-3), timedelta(days=2), "history", Confidence.LOW),
    ],
)
def test_confidence_weighs_the_spread_against_the_time_left(
    p50_in: timedelta, spread: timedelta, basis: str, expected: Confidence
) -> None:
    assert confidence(NOW + p50_in, NOW + p50_in + spread, basis, NOW) is expected
