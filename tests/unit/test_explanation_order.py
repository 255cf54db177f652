"""The stages of an estimate's explanation, in the order the job meets them."""

from __future__ import annotations

from decimal import Decimal

from tracker.domain.workflow import StageDefinition, ThreePointEstimate, WorkflowDefinition
from tracker.estimates.model import RemainingWork, StageOutlook
from tracker.services.estimates import stages_in_meeting_order


def _stage(key: str) -> StageDefinition:
    hours = ThreePointEstimate(Decimal(1), Decimal(2), Decimal(4))
    return StageDefinition(key, {"en": key.title(), "fr": f"{key} (fr)"}, hours, Decimal(0))


WORKFLOW = WorkflowDefinition("Garage", tuple(_stage(k) for k in ("intake", "repair", "check", "ready")))


def outlook(key: str, visits: float) -> StageOutlook:
    return StageOutlook(key, min(visits, 1.0), visits, 3600.0 * visits, 40, "history")


def remaining(*stages: StageOutlook) -> RemainingWork:
    return RemainingWork(7200.0, 9000.0, 9000.0, "history", 40, 1800.0, stages)


def test_rework_is_met_right_after_the_current_stage_and_before_the_stages_after_it():
    # As the model ranks them: by expected visits.
    work = remaining(outlook("check", 1.15), outlook("ready", 1.0), outlook("repair", 0.15))

    ahead = stages_in_meeting_order(work, WORKFLOW, "check", locale="fr")

    assert [(s.key, s.current) for s in ahead] == [("check", True), ("repair", False), ("ready", False)]
    assert [s.label for s in ahead] == ["check (fr)", "repair (fr)", "ready (fr)"]


def test_without_rework_the_stages_follow_the_workflow_from_the_current_one():
    work = remaining(outlook("ready", 1.0), outlook("repair", 1.02), outlook("check", 1.0))

    ahead = stages_in_meeting_order(work, WORKFLOW, "repair", locale="en")

    assert [s.key for s in ahead] == ["repair", "check", "ready"]
    assert [s.current for s in ahead] == [True, False, False]
