"""The workflow rules as pure functions: every transition from every status, and definition validation."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import pytest

from tracker.domain.errors import Conflict, DomainError, IllegalTransition, InvalidInput
from tracker.domain.workflow import (
    MAX_REASON_LENGTH,
    JobPosition,
    JobStatus,
    StageDefinition,
    ThreePointEstimate,
    Transition,
    TransitionKind,
    WorkflowDefinition,
    advance,
    cancel,
    complete,
    hold,
    move_to,
    reopen,
    resume,
    start,
)

D = Decimal
ESTIMATE = ThreePointEstimate(D(1), D(2), D(4))
ZERO = D(0)

OPEN = JobStatus.OPEN
ON_HOLD = JobStatus.ON_HOLD
COMPLETED = JobStatus.COMPLETED
CANCELLED = JobStatus.CANCELLED


def stage(
    key: str,
    *,
    labels: Mapping[str, str] | None = None,
    cost: Decimal = ZERO,
    capacity: int | None = None,
    duration: ThreePointEstimate = ESTIMATE,
) -> StageDefinition:
    return StageDefinition(
        key=key,
        labels={"en": key.title()} if labels is None else labels,
        duration=duration,
        planned_cost=cost,
        capacity=capacity,
    )


WORKFLOW = WorkflowDefinition("Bike repair", (stage("intake"), stage("repair"), stage("handover")))
SINGLE = WorkflowDefinition("Quick fix", (stage("fix"),))

FIRST, MIDDLE, LAST = "intake", "repair", "handover"
NEXT_STAGE = {FIRST: MIDDLE, MIDDLE: LAST}
# A target for `move_to` that differs from the current stage.
OTHER_STAGE = {FIRST: LAST, MIDDLE: FIRST, LAST: FIRST}


def at(status: JobStatus, stage_key: str = MIDDLE) -> JobPosition:
    return JobPosition(status, stage_key)


def invalid_reason(action: Callable[[], object]) -> InvalidInput:
    """A missing or overlong reason is bad input (422), not a clash with the job's state."""
    with pytest.raises(InvalidInput) as caught:
        action()
    assert caught.value.field == "reason"
    return caught.value


def illegal(action: Callable[[], object]) -> IllegalTransition:
    with pytest.raises(IllegalTransition) as caught:
        action()
    assert caught.value.detail, "the refusal must say why"
    assert str(caught.value) == caught.value.detail
    return caught.value


# --- The full matrix: every action from every status at every stage position -----------------------

MOVE_REASON = "rework: brakes squeak"
HOLD_REASON = "waiting for parts"
FORCE_REASON = "customer collected it early"
CANCEL_REASON = "customer withdrew"
REOPEN_REASON = "warranty claim"

ACTIONS: dict[str, Callable[[JobPosition], Transition]] = {
    "advance": lambda p: advance(p, WORKFLOW),
    "move_to": lambda p: move_to(p, WORKFLOW, OTHER_STAGE[p.stage_key], MOVE_REASON),
    "hold": lambda p: hold(p, HOLD_REASON),
    "resume": lambda p: resume(p),
    "complete": lambda p: complete(p, WORKFLOW),
    "force_complete": lambda p: complete(p, WORKFLOW, force=True, reason=FORCE_REASON),
    "cancel": lambda p: cancel(p, CANCEL_REASON),
    "reopen": lambda p: reopen(p, REOPEN_REASON),
}


@dataclass(frozen=True)
class Ok:
    kind: TransitionKind
    status: JobStatus
    reason: str | None = None


@dataclass(frozen=True)
class Err:
    code: str


Outcome = Ok | Err
NOT_OPEN = Err("job_not_open")

ADVANCED = Ok(TransitionKind.ADVANCE, OPEN)
MOVED = Ok(TransitionKind.MOVE, OPEN, MOVE_REASON)
HELD = Ok(TransitionKind.HOLD, ON_HOLD, HOLD_REASON)
RESUMED = Ok(TransitionKind.RESUME, OPEN)
COMPLETED_OK = Ok(TransitionKind.COMPLETE, COMPLETED)
FORCE_COMPLETED = Ok(TransitionKind.COMPLETE, COMPLETED, FORCE_REASON)
CANCELLED_OK = Ok(TransitionKind.CANCEL, CANCELLED, CANCEL_REASON)
REOPENED = Ok(TransitionKind.REOPEN, OPEN, REOPEN_REASON)

# (action, status) -> outcome at the (first, middle, last) stage.
MATRIX: list[tuple[str, JobStatus, tuple[Outcome, Outcome, Outcome]]] = [
    ("advance", OPEN, (ADVANCED, ADVANCED, Err("already_at_last_stage"))),
    ("advance", ON_HOLD, (NOT_OPEN,) * 3),
    ("advance", COMPLETED, (NOT_OPEN,) * 3),
    ("advance", CANCELLED, (NOT_OPEN,) * 3),
    ("move_to", OPEN, (MOVED,) * 3),
    ("move_to", ON_HOLD, (NOT_OPEN,) * 3),
    ("move_to", COMPLETED, (NOT_OPEN,) * 3),
    ("move_to", CANCELLED, (NOT_OPEN,) * 3),
    ("hold", OPEN, (HELD,) * 3),
    ("hold", ON_HOLD, (NOT_OPEN,) * 3),
    ("hold", COMPLETED, (NOT_OPEN,) * 3),
    ("hold", CANCELLED, (NOT_OPEN,) * 3),
    ("resume", OPEN, (Err("not_on_hold"),) * 3),
    ("resume", ON_HOLD, (RESUMED,) * 3),
    ("resume", COMPLETED, (Err("not_on_hold"),) * 3),
    ("resume", CANCELLED, (Err("not_on_hold"),) * 3),
    ("complete", OPEN, (Err("not_at_last_stage"), Err("not_at_last_stage"), COMPLETED_OK)),
    ("complete", ON_HOLD, (NOT_OPEN,) * 3),
    ("complete", COMPLETED, (NOT_OPEN,) * 3),
    ("complete", CANCELLED, (NOT_OPEN,) * 3),
    ("force_complete", OPEN, (FORCE_COMPLETED,) * 3),
    ("force_complete", ON_HOLD, (NOT_OPEN,) * 3),
    ("force_complete", COMPLETED, (NOT_OPEN,) * 3),
    ("force_complete", CANCELLED, (NOT_OPEN,) * 3),
    ("cancel", OPEN, (CANCELLED_OK,) * 3),
    ("cancel", ON_HOLD, (CANCELLED_OK,) * 3),
    ("cancel", COMPLETED, (Err("job_closed"),) * 3),
    ("cancel", CANCELLED, (Err("job_closed"),) * 3),
    ("reopen", OPEN, (Err("job_not_closed"),) * 3),
    ("reopen", ON_HOLD, (Err("job_not_closed"),) * 3),
    ("reopen", COMPLETED, (REOPENED,) * 3),
    ("reopen", CANCELLED, (REOPENED,) * 3),
]

CASES = [
    pytest.param(
        action, status, stage_key, outcomes[index], id=f"{action}-from-{status.value}-at-{stage_key}"
    )
    for action, status, outcomes in MATRIX
    for index, stage_key in enumerate((FIRST, MIDDLE, LAST))
]

CLOSES_AND_OPENS = {
    TransitionKind.ADVANCE: (True, True),
    TransitionKind.MOVE: (True, True),
    TransitionKind.HOLD: (False, False),
    TransitionKind.RESUME: (False, False),
    TransitionKind.COMPLETE: (True, False),
    TransitionKind.CANCEL: (True, False),
    TransitionKind.REOPEN: (False, True),
}


def test_the_matrix_covers_every_action_and_status() -> None:
    pairs = {(action, status) for action, status, _ in MATRIX}
    assert pairs == {(action, status) for action in ACTIONS for status in JobStatus}
    assert len(pairs) == len(MATRIX)


@pytest.mark.parametrize(("action", "status", "stage_key", "expected"), CASES)
def test_every_action_from_every_status_and_stage(
    action: str, status: JobStatus, stage_key: str, expected: Outcome
) -> None:
    position = at(status, stage_key)
    if isinstance(expected, Err):
        error = illegal(lambda: ACTIONS[action](position))
        assert error.code == expected.code
        return
    transition = ACTIONS[action](position)
    assert transition.kind is expected.kind
    assert transition.before == position
    assert transition.after.status is expected.status
    if expected.kind is TransitionKind.ADVANCE:
        assert transition.after.stage_key == NEXT_STAGE[stage_key]
    elif expected.kind is TransitionKind.MOVE:
        assert transition.after.stage_key == OTHER_STAGE[stage_key]
    else:
        assert transition.after.stage_key == stage_key
    assert transition.reason == expected.reason
    assert (transition.closes_visit, transition.opens_visit) == CLOSES_AND_OPENS[expected.kind]


@pytest.mark.parametrize(("kind", "closes_opens"), CLOSES_AND_OPENS.items(), ids=str)
def test_which_kinds_close_and_open_a_stage_visit(
    kind: TransitionKind, closes_opens: tuple[bool, bool]
) -> None:
    transition = Transition(kind, at(OPEN), at(OPEN))
    assert (transition.closes_visit, transition.opens_visit) == closes_opens


def test_every_transition_kind_has_a_visit_rule() -> None:
    assert set(CLOSES_AND_OPENS) == set(TransitionKind)


def test_illegal_transition_is_a_conflict_and_a_domain_error() -> None:
    error = illegal(lambda: advance(at(COMPLETED), WORKFLOW))
    assert isinstance(error, Conflict)
    assert isinstance(error, DomainError)


# --- start ---------------------------------------------------------------------------------------------


def test_a_new_job_starts_open_at_the_first_stage() -> None:
    assert start(WORKFLOW) == JobPosition(OPEN, FIRST)


@pytest.mark.parametrize("stage_key", [FIRST, MIDDLE, LAST])
def test_a_job_taken_over_midway_can_start_at_any_named_stage(stage_key: str) -> None:
    assert start(WORKFLOW, stage_key) == JobPosition(OPEN, stage_key)


def test_a_job_cannot_start_at_a_stage_the_workflow_lacks() -> None:
    error = illegal(lambda: start(WORKFLOW, "painting"))
    assert error.code == "unknown_stage"
    assert "'painting'" in error.detail


# --- advance ---------------------------------------------------------------------------------------------


def test_advance_moves_to_the_next_stage_without_a_reason() -> None:
    transition = advance(at(OPEN, FIRST), WORKFLOW)
    assert transition == Transition(TransitionKind.ADVANCE, at(OPEN, FIRST), at(OPEN, MIDDLE), None)


def test_cannot_advance_past_the_last_stage() -> None:
    error = illegal(lambda: advance(at(OPEN, LAST), WORKFLOW))
    assert error.code == "already_at_last_stage"
    assert "complete it instead" in error.detail


def test_cannot_advance_a_single_stage_workflow() -> None:
    error = illegal(lambda: advance(at(OPEN, "fix"), SINGLE))
    assert error.code == "already_at_last_stage"


def test_cannot_advance_from_a_stage_the_workflow_lacks() -> None:
    error = illegal(lambda: advance(at(OPEN, "painting"), WORKFLOW))
    assert error.code == "unknown_stage"


def test_a_job_on_hold_is_told_to_resume_first() -> None:
    error = illegal(lambda: advance(at(ON_HOLD), WORKFLOW))
    assert error.code == "job_not_open"
    assert error.detail == "cannot advance a job that is on_hold (resume it first)"


@pytest.mark.parametrize("status", [COMPLETED, CANCELLED])
def test_a_closed_job_cannot_advance_and_gets_no_resume_hint(status: JobStatus) -> None:
    error = illegal(lambda: advance(at(status), WORKFLOW))
    assert error.code == "job_not_open"
    assert error.detail == f"cannot advance a job that is {status.value}"


@pytest.mark.parametrize(
    ("action", "verb"),
    [
        (lambda p: move_to(p, WORKFLOW, FIRST, "x"), "move"),
        (lambda p: hold(p, "x"), "put on hold"),
        (lambda p: complete(p, WORKFLOW), "complete"),
    ],
    ids=["move_to", "hold", "complete"],
)
def test_not_open_detail_names_the_refused_action(
    action: Callable[[JobPosition], Transition], verb: str
) -> None:
    error = illegal(lambda: action(at(CANCELLED, LAST)))
    assert error.code == "job_not_open"
    assert error.detail == f"cannot {verb} a job that is cancelled"


# --- move_to ------------------------------------------------------------------------------------------


def test_moving_back_sends_the_job_to_an_earlier_stage_for_rework() -> None:
    transition = move_to(at(OPEN, LAST), WORKFLOW, FIRST, "wheel still wobbles")
    assert transition.kind is TransitionKind.MOVE
    assert transition.after == at(OPEN, FIRST)
    assert transition.reason == "wheel still wobbles"
    assert transition.closes_visit and transition.opens_visit


def test_moving_ahead_skips_stages() -> None:
    transition = move_to(at(OPEN, FIRST), WORKFLOW, LAST, "nothing to repair")
    assert transition.after == at(OPEN, LAST)
    assert transition.reason == "nothing to repair"


@pytest.mark.parametrize(
    ("source", "target"), [(s, t) for s in (FIRST, MIDDLE, LAST) for t in (FIRST, MIDDLE, LAST) if s != t]
)
def test_a_job_can_move_between_any_two_different_stages(source: str, target: str) -> None:
    transition = move_to(at(OPEN, source), WORKFLOW, target, "because")
    assert transition.before == at(OPEN, source)
    assert transition.after == at(OPEN, target)


@pytest.mark.parametrize("stage_key", [FIRST, MIDDLE, LAST])
def test_cannot_move_to_the_stage_the_job_is_already_at(stage_key: str) -> None:
    error = illegal(lambda: move_to(at(OPEN, stage_key), WORKFLOW, stage_key, "because"))
    assert error.code == "same_stage"
    assert repr(stage_key) in error.detail


def test_cannot_move_to_a_stage_the_workflow_lacks() -> None:
    error = illegal(lambda: move_to(at(OPEN), WORKFLOW, "painting", "because"))
    assert error.code == "unknown_stage"
    assert error.detail == "the workflow has no stage 'painting'"


def test_moving_a_single_stage_job_to_its_only_stage_is_the_same_stage() -> None:
    error = illegal(lambda: move_to(at(OPEN, "fix"), SINGLE, "fix", "because"))
    assert error.code == "same_stage"


def test_after_rework_the_job_can_advance_again() -> None:
    back = move_to(at(OPEN, LAST), WORKFLOW, FIRST, "redo")
    assert advance(back.after, WORKFLOW).after == at(OPEN, MIDDLE)


# --- Order of checks: the most fundamental problem is reported ----------------------------------------


@pytest.mark.parametrize(
    ("action", "code"),
    [
        pytest.param(lambda: move_to(at(COMPLETED), WORKFLOW, "painting", None), "job_not_open", id="closed"),
        pytest.param(lambda: move_to(at(OPEN), WORKFLOW, "painting", None), "unknown_stage", id="unknown"),
        pytest.param(lambda: move_to(at(OPEN, FIRST), WORKFLOW, FIRST, None), "same_stage", id="same"),
        pytest.param(lambda: hold(at(CANCELLED), None), "job_not_open", id="hold-closed"),
        pytest.param(lambda: hold(at(ON_HOLD), ""), "job_not_open", id="hold-on-hold"),
        pytest.param(lambda: cancel(at(COMPLETED), None), "job_closed", id="cancel-closed"),
        pytest.param(lambda: reopen(at(OPEN), None), "job_not_closed", id="reopen-open"),
        pytest.param(lambda: resume(at(OPEN), "x" * 5000), "not_on_hold", id="resume-open"),
        pytest.param(lambda: complete(at(OPEN, FIRST), WORKFLOW), "not_at_last_stage", id="not-last"),
        pytest.param(
            lambda: complete(at(ON_HOLD, FIRST), WORKFLOW, force=True), "job_not_open", id="force-on-hold"
        ),
        pytest.param(
            lambda: complete(at(OPEN, "painting"), WORKFLOW), "unknown_stage", id="complete-unknown"
        ),
    ],
)
def test_status_and_stage_problems_are_reported_before_a_missing_reason(
    action: Callable[[], Transition], code: str
) -> None:
    assert illegal(action).code == code


# --- Reasons --------------------------------------------------------------------------------------------

REQUIRED: dict[str, tuple[Callable[[str | None], Transition], str]] = {
    "move_to": (lambda r: move_to(at(OPEN, FIRST), WORKFLOW, LAST, r), "move"),
    "hold": (lambda r: hold(at(OPEN), r), "put on hold"),
    "force_complete": (lambda r: complete(at(OPEN, FIRST), WORKFLOW, force=True, reason=r), "force-complete"),
    "cancel_open": (lambda r: cancel(at(OPEN), r), "cancel"),
    "cancel_on_hold": (lambda r: cancel(at(ON_HOLD), r), "cancel"),
    "reopen_completed": (lambda r: reopen(at(COMPLETED), r), "reopen"),
    "reopen_cancelled": (lambda r: reopen(at(CANCELLED), r), "reopen"),
}
OPTIONAL: dict[str, Callable[[str | None], Transition]] = {
    "resume": lambda r: resume(at(ON_HOLD), r),
    "complete_at_last": lambda r: complete(at(OPEN, LAST), WORKFLOW, reason=r),
    "force_complete_at_last": lambda r: complete(at(OPEN, LAST), WORKFLOW, force=True, reason=r),
}
MISSING = [None, "", " ", "   ", "\t\n", "\u00a0"]
TOO_LONG = ["x" * (MAX_REASON_LENGTH + 1), " " + "y" * (MAX_REASON_LENGTH + 1) + " "]


@pytest.mark.parametrize("missing", MISSING, ids=repr)
@pytest.mark.parametrize("name", REQUIRED)
def test_a_required_reason_that_is_missing_or_blank_is_refused(name: str, missing: str | None) -> None:
    action, verb = REQUIRED[name]
    error = invalid_reason(lambda: action(missing))
    assert error.reason == f"is required to {verb} a job"


@pytest.mark.parametrize("too_long", TOO_LONG, ids=["plain", "padded"])
@pytest.mark.parametrize("name", [*REQUIRED, *OPTIONAL])
def test_a_reason_longer_than_the_limit_is_refused(name: str, too_long: str) -> None:
    action = REQUIRED[name][0] if name in REQUIRED else OPTIONAL[name]
    error = invalid_reason(lambda: action(too_long))
    assert str(MAX_REASON_LENGTH) in error.reason


@pytest.mark.parametrize("name", [*REQUIRED, *OPTIONAL])
def test_a_reason_of_exactly_the_limit_is_kept_whole(name: str) -> None:
    action = REQUIRED[name][0] if name in REQUIRED else OPTIONAL[name]
    reason = "z" * MAX_REASON_LENGTH
    assert action(reason).reason == reason


@pytest.mark.parametrize("name", [*REQUIRED, *OPTIONAL])
def test_reasons_are_stripped_and_the_limit_applies_after_stripping(name: str) -> None:
    action = REQUIRED[name][0] if name in REQUIRED else OPTIONAL[name]
    assert action("  \tneeds a new chain\n ").reason == "needs a new chain"
    padded = "   " + "z" * MAX_REASON_LENGTH + "   "
    assert action(padded).reason == "z" * MAX_REASON_LENGTH


def test_inner_whitespace_of_a_reason_is_kept() -> None:
    assert hold(at(OPEN), "  waiting  for\nparts ").reason == "waiting  for\nparts"


@pytest.mark.parametrize("missing", MISSING, ids=repr)
@pytest.mark.parametrize("name", OPTIONAL)
def test_an_optional_reason_that_is_blank_is_recorded_as_none(name: str, missing: str | None) -> None:
    assert OPTIONAL[name](missing).reason is None


def test_resume_needs_no_reason() -> None:
    transition = resume(at(ON_HOLD, FIRST))
    assert transition == Transition(TransitionKind.RESUME, at(ON_HOLD, FIRST), at(OPEN, FIRST), None)


@pytest.mark.parametrize("status", [OPEN, COMPLETED, CANCELLED])
def test_only_a_job_on_hold_can_resume(status: JobStatus) -> None:
    error = illegal(lambda: resume(at(status)))
    assert error.code == "not_on_hold"
    assert error.detail == f"only a job on hold can resume; this one is {status.value}"


# --- hold -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage_key", [FIRST, MIDDLE, LAST])
def test_hold_keeps_the_stage_and_the_visit(stage_key: str) -> None:
    transition = hold(at(OPEN, stage_key), "parts on order")
    assert transition.after == at(ON_HOLD, stage_key)
    assert not transition.closes_visit
    assert not transition.opens_visit


def test_a_job_already_on_hold_cannot_be_put_on_hold_again() -> None:
    error = illegal(lambda: hold(at(ON_HOLD), "again"))
    assert error.code == "job_not_open"
    assert "on_hold" in error.detail


# --- complete ------------------------------------------------------------------------------------------


def test_completing_from_the_last_stage_needs_no_reason() -> None:
    transition = complete(at(OPEN, LAST), WORKFLOW)
    assert transition == Transition(TransitionKind.COMPLETE, at(OPEN, LAST), at(COMPLETED, LAST), None)
    assert transition.closes_visit
    assert not transition.opens_visit


def test_completing_from_the_last_stage_keeps_an_optional_reason() -> None:
    assert complete(at(OPEN, LAST), WORKFLOW, reason=" all good ").reason == "all good"


@pytest.mark.parametrize("stage_key", [FIRST, MIDDLE])
def test_cannot_complete_before_the_last_stage_without_force(stage_key: str) -> None:
    error = illegal(lambda: complete(at(OPEN, stage_key), WORKFLOW, reason="done early"))
    assert error.code == "not_at_last_stage"
    assert repr(stage_key) in error.detail
    assert "force" in error.detail


@pytest.mark.parametrize("stage_key", [FIRST, MIDDLE])
def test_force_complete_needs_a_reason(stage_key: str) -> None:
    error = invalid_reason(lambda: complete(at(OPEN, stage_key), WORKFLOW, force=True))
    assert "force-complete" in error.reason


@pytest.mark.parametrize("stage_key", [FIRST, MIDDLE])
def test_force_complete_with_a_reason_completes_at_the_current_stage(stage_key: str) -> None:
    transition = complete(at(OPEN, stage_key), WORKFLOW, force=True, reason="  customer took it  ")
    assert transition.kind is TransitionKind.COMPLETE
    assert transition.after == at(COMPLETED, stage_key)
    assert transition.reason == "customer took it"


def test_forcing_from_the_last_stage_needs_no_reason() -> None:
    transition = complete(at(OPEN, LAST), WORKFLOW, force=True)
    assert transition.after == at(COMPLETED, LAST)
    assert transition.reason is None


def test_a_single_stage_job_completes_without_force() -> None:
    assert complete(at(OPEN, "fix"), SINGLE).after == at(COMPLETED, "fix")


# --- cancel and reopen -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [OPEN, ON_HOLD])
@pytest.mark.parametrize("stage_key", [FIRST, MIDDLE, LAST])
def test_an_open_or_held_job_can_be_cancelled_in_place(status: JobStatus, stage_key: str) -> None:
    transition = cancel(at(status, stage_key), "no longer needed")
    assert transition.after == at(CANCELLED, stage_key)
    assert transition.closes_visit
    assert not transition.opens_visit


@pytest.mark.parametrize("status", [COMPLETED, CANCELLED])
def test_a_closed_job_cannot_be_cancelled(status: JobStatus) -> None:
    error = illegal(lambda: cancel(at(status), "again"))
    assert error.code == "job_closed"
    assert error.detail == f"the job is already {status.value}"


@pytest.mark.parametrize("status", [COMPLETED, CANCELLED])
@pytest.mark.parametrize("stage_key", [FIRST, MIDDLE, LAST])
def test_reopen_brings_a_closed_job_back_in_the_stage_it_ended_in(status: JobStatus, stage_key: str) -> None:
    transition = reopen(at(status, stage_key), "customer came back")
    assert transition.after == at(OPEN, stage_key)
    assert transition.opens_visit
    assert not transition.closes_visit


@pytest.mark.parametrize("status", [OPEN, ON_HOLD])
def test_only_a_closed_job_can_reopen(status: JobStatus) -> None:
    error = illegal(lambda: reopen(at(status), "why"))
    assert error.code == "job_not_closed"
    assert error.detail == f"only a completed or cancelled job can reopen; this one is {status.value}"


def test_a_whole_job_lifecycle_chains_transitions() -> None:
    position = start(WORKFLOW)
    steps: list[Callable[[JobPosition], Transition]] = [
        lambda p: advance(p, WORKFLOW),
        lambda p: hold(p, "parts"),
        lambda p: resume(p),
        lambda p: advance(p, WORKFLOW),
        lambda p: move_to(p, WORKFLOW, MIDDLE, "rework"),
        lambda p: advance(p, WORKFLOW),
        lambda p: complete(p, WORKFLOW),
        lambda p: reopen(p, "warranty"),
        lambda p: cancel(p, "refunded"),
    ]
    seen = [position]
    for step in steps:
        transition = step(position)
        assert transition.before == position
        position = transition.after
        seen.append(position)
    assert seen == [
        at(OPEN, FIRST),
        at(OPEN, MIDDLE),
        at(ON_HOLD, MIDDLE),
        at(OPEN, MIDDLE),
        at(OPEN, LAST),
        at(OPEN, MIDDLE),
        at(OPEN, LAST),
        at(COMPLETED, LAST),
        at(OPEN, LAST),
        at(CANCELLED, LAST),
    ]


def test_positions_and_transitions_are_immutable() -> None:
    position = at(OPEN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        position.stage_key = FIRST  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        advance(position, WORKFLOW).reason = "x"  # type: ignore[misc]


# --- WorkflowDefinition ----------------------------------------------------------------------------------


def test_a_workflow_knows_its_first_and_last_stage_and_their_order() -> None:
    assert WORKFLOW.first.key == FIRST
    assert WORKFLOW.last.key == LAST
    assert [WORKFLOW.index_of(key) for key in (FIRST, MIDDLE, LAST)] == [0, 1, 2]
    assert WORKFLOW.stage(MIDDLE) is WORKFLOW.stages[1]


def test_a_single_stage_is_both_first_and_last() -> None:
    assert SINGLE.first is SINGLE.last


def test_looking_up_an_unknown_stage_is_an_illegal_transition() -> None:
    error = illegal(lambda: WORKFLOW.stage("Intake"))
    assert error.code == "unknown_stage"


def invalid(build: Callable[[], object]) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        build()
    error = caught.value
    assert error.detail == f"{error.field}: {error.reason}"
    assert error.reason
    return error


@pytest.mark.parametrize("name", ["", " ", "\t\n"], ids=repr)
def test_a_workflow_needs_a_name(name: str) -> None:
    assert invalid(lambda: WorkflowDefinition(name, (stage("a"),))).field == "name"


def test_a_workflow_needs_at_least_one_stage() -> None:
    error = invalid(lambda: WorkflowDefinition("Empty", ()))
    assert error.field == "stages"
    assert "at least one stage" in error.reason


@pytest.mark.parametrize(
    "key",
    ["", "Intake", "INTAKE", "-intake", "_intake", "in take", "intake!", "in.take", "étape", "a" * 64, " a"],
    ids=repr,
)
def test_a_stage_key_must_be_lower_case_letters_digits_dashes_underscores(key: str) -> None:
    error = invalid(lambda: WorkflowDefinition("W", (stage("ok"), stage(key))))
    assert error.field == "stages[1].key"
    assert "at most 63" in error.reason


@pytest.mark.parametrize("key", ["a", "0", "9lives", "re-work_2", "a" * 63, "a-", "a_"])
def test_well_formed_stage_keys_are_accepted(key: str) -> None:
    assert WorkflowDefinition("W", (stage(key),)).first.key == key


def test_a_stage_key_with_a_trailing_newline_is_refused() -> None:
    assert invalid(lambda: WorkflowDefinition("W", (stage("intake\n"),))).field == "stages[0].key"


def test_a_stage_key_may_not_appear_twice() -> None:
    error = invalid(lambda: WorkflowDefinition("W", (stage("a"), stage("b"), stage("a"))))
    assert error.field == "stages[2].key"
    assert error.reason == "'a' appears twice"


@pytest.mark.parametrize(
    "labels", [{}, {"fr": "Réception"}, {"en": ""}, {"en": "   "}, {"EN": "Intake"}], ids=repr
)
def test_every_stage_needs_an_english_label(labels: dict[str, str]) -> None:
    error = invalid(lambda: WorkflowDefinition("W", (stage("a"), stage("b", labels=labels))))
    assert error.field == "stages[1].labels"


@pytest.mark.parametrize("cost", [D("-0.01"), D(-1), D(-1000)])
def test_a_stage_cannot_have_a_negative_planned_cost(cost: Decimal) -> None:
    error = invalid(lambda: WorkflowDefinition("W", (stage("a"), stage("b", cost=cost))))
    assert error.field == "stages[1].planned_cost"


def test_a_stage_may_cost_nothing() -> None:
    assert WorkflowDefinition("W", (stage("a", cost=D(0)),)).first.planned_cost == 0


@pytest.mark.parametrize("capacity", [0, -1])
def test_a_stage_capacity_must_be_at_least_one(capacity: int) -> None:
    error = invalid(lambda: WorkflowDefinition("W", (stage("a"), stage("b", capacity=capacity))))
    assert error.field == "stages[1].capacity"


@pytest.mark.parametrize("capacity", [None, 1, 50])
def test_a_stage_capacity_may_be_unlimited_or_positive(capacity: int | None) -> None:
    assert WorkflowDefinition("W", (stage("a", capacity=capacity),)).first.capacity == capacity


def test_the_first_invalid_stage_is_the_one_reported() -> None:
    stages = (stage("ok"), stage("b", capacity=0), stage("Bad"))
    assert invalid(lambda: WorkflowDefinition("W", stages)).field == "stages[1].capacity"


def test_within_a_stage_the_key_is_checked_before_the_rest() -> None:
    bad = stage("Bad", labels={}, cost=D(-1), capacity=0)
    assert invalid(lambda: WorkflowDefinition("W", (bad,))).field == "stages[0].key"


def test_stages_default_to_unlimited_capacity_and_customer_visible() -> None:
    defined = StageDefinition("a", {"en": "A"}, ESTIMATE, D(0))
    assert defined.capacity is None
    assert defined.customer_visible is True


# --- Labels ----------------------------------------------------------------------------------------------

LABELS = {"en": "Repair", "fr": "Réparation", "fr_CA": "Réparation (CA)", "nl": ""}


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en", "Repair"),
        ("fr", "Réparation"),
        ("fr_CA", "Réparation (CA)"),
        ("fr_FR", "Réparation"),
        ("fr-FR", "Réparation"),
        ("fr-BE", "Réparation"),
        ("de", "Repair"),
        ("de_DE", "Repair"),
        ("", "Repair"),
        ("nl", "Repair"),
        ("nl_BE", "Repair"),
    ],
)
def test_label_falls_back_from_locale_to_language_to_english(locale: str, expected: str) -> None:
    assert stage("repair", labels=LABELS).label(locale) == expected


# --- ThreePointEstimate --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "field"),
    [
        ((D("-0.5"), D(1), D(2)), "duration.optimistic"),
        ((D(-1), D(-1), D(-1)), "duration.optimistic"),
        ((D(3), D(2), D(4)), "duration"),
        ((D(1), D(5), D(4)), "duration"),
        ((D(5), D(5), D(4)), "duration"),
        ((D(0), D(0), D(0)), "duration.pessimistic"),
    ],
)
def test_a_three_point_estimate_must_be_ordered_non_negative_and_not_all_zero(
    hours: tuple[Decimal, Decimal, Decimal], field: str
) -> None:
    assert invalid(lambda: ThreePointEstimate(*hours)).field == field


@pytest.mark.parametrize(
    "hours", [(D(0), D(0), D("0.1")), (D(2), D(2), D(2)), (D(0), D(1), D(8)), (D("0.5"), D("0.75"), D(1))]
)
def test_ordered_estimates_are_accepted(hours: tuple[Decimal, Decimal, Decimal]) -> None:
    estimate = ThreePointEstimate(*hours)
    assert (estimate.optimistic, estimate.most_likely, estimate.pessimistic) == hours


@pytest.mark.parametrize(
    ("hours", "mean"),
    [
        ((D(1), D(2), D(9)), D(3)),
        ((D(2), D(2), D(2)), D(2)),
        ((D(0), D(3), D(6)), D(3)),
        ((D(1), D(4), D(1000)), D("169.5")),
        ((D(1), D(1), D(2)), D(7) / D(6)),
    ],
)
def test_pert_mean_weights_the_most_likely_four_times(
    hours: tuple[Decimal, Decimal, Decimal], mean: Decimal
) -> None:
    result = ThreePointEstimate(*hours).pert_mean
    assert isinstance(result, Decimal)
    assert result == mean


@pytest.mark.parametrize("position", [0, 1, 2])
def test_a_nan_duration_is_invalid_input(position: int) -> None:
    hours = [D(1), D(2), D(3)]
    hours[position] = D("NaN")
    invalid(lambda: ThreePointEstimate(*hours))


def test_an_infinite_duration_is_invalid_input() -> None:
    invalid(lambda: ThreePointEstimate(D(1), D(2), D("Infinity")))


def test_a_nan_planned_cost_is_invalid_input() -> None:
    assert invalid(lambda: WorkflowDefinition("W", (stage("a", cost=D("NaN")),))).field == (
        "stages[0].planned_cost"
    )
