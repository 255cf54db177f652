"""Wire schemas (msgspec Structs), one per direction, mapped explicitly from the models."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

Text = Annotated[str, Meta(max_length=10_000)]
ShortText = Annotated[str, Meta(max_length=300)]
Reason = Annotated[str, Meta(max_length=1000)]
Version = Annotated[int, Meta(ge=1)]


class Input(Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies: an unknown field is an error, not silently dropped."""


class Output(Struct, kw_only=True):
    pass


class MoneyIn(Input, kw_only=True):
    amount: Decimal
    currency: Annotated[str, Meta(min_length=3, max_length=3)]


class MoneyOut(Output, kw_only=True):
    amount: str
    currency: str


class DurationIn(Input, kw_only=True):
    """Planned working hours: optimistic, most likely and pessimistic."""

    optimistic: Decimal
    most_likely: Decimal
    pessimistic: Decimal


class StageIn(Input, kw_only=True):
    key: Annotated[str, Meta(max_length=63)]
    labels: dict[Annotated[str, Meta(max_length=16)], ShortText]
    duration_hours: DurationIn
    planned_cost: Decimal
    capacity: Annotated[int, Meta(ge=1)] | None = None
    customer_visible: bool = True


Clock = Annotated[str, Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class CalendarIn(Input, kw_only=True):
    """Working time of the business: durations and dates are counted in it.

    Without opening hours and country the business works around the clock; with a country and no
    opening hours, Monday to Friday 08:00-18:00, minus the country's public holidays.
    """

    time_zone: Annotated[str, Meta(max_length=64)] | None = None
    country: Annotated[str, Meta(min_length=2, max_length=2)] | None = None
    subdivision: Annotated[str, Meta(max_length=10)] | None = None
    opening_hours: dict[Weekday, Annotated[list[tuple[Clock, Clock]], Meta(max_length=6)]] | None = None
    closures: Annotated[list[date], Meta(max_length=1000)] = []


class CalendarOut(Output, kw_only=True):
    time_zone: str
    country: str | None
    subdivision: str | None
    opening_hours: dict[str, list[tuple[str, str]]] | None
    closures: list[date]


class WorkflowIn(Input, kw_only=True):
    key: Annotated[str, Meta(max_length=63)]
    name: ShortText
    currency: Annotated[str, Meta(min_length=3, max_length=3)]
    stages: Annotated[list[StageIn], Meta(min_length=1, max_length=100)]
    calendar: CalendarIn | None = None


class WorkflowVersionIn(Input, kw_only=True):
    name: ShortText
    currency: Annotated[str, Meta(min_length=3, max_length=3)]
    stages: Annotated[list[StageIn], Meta(min_length=1, max_length=100)]
    calendar: CalendarIn | None = None


class DurationOut(Output, kw_only=True):
    optimistic: str
    most_likely: str
    pessimistic: str


class StageOut(Output, kw_only=True):
    key: str
    labels: dict[str, str]
    duration_hours: DurationOut
    planned_cost: MoneyOut
    capacity: int | None
    customer_visible: bool


class WorkflowOut(Output, kw_only=True):
    key: str
    version: int
    name: str
    currency: str
    current: bool
    archived: bool
    created_at: datetime
    stages: list[StageOut]
    calendar: CalendarOut | None


class ContactIn(Input, kw_only=True):
    name: ShortText
    email: Annotated[str, Meta(max_length=254)]
    locale: Annotated[str, Meta(max_length=16)] = "en"
    time_zone: Annotated[str, Meta(max_length=64)] = "UTC"


class ContactUpdate(Input, kw_only=True):
    name: ShortText | UnsetType = UNSET
    email: Annotated[str, Meta(max_length=254)] | UnsetType = UNSET
    locale: Annotated[str, Meta(max_length=16)] | UnsetType = UNSET
    time_zone: Annotated[str, Meta(max_length=64)] | UnsetType = UNSET


class ContactOut(Output, kw_only=True):
    id: int
    account_id: int
    name: str
    email: str
    locale: str
    time_zone: str
    created_at: datetime
    updated_at: datetime


class AccountIn(Input, kw_only=True):
    kind: str
    name: ShortText
    contacts: Annotated[list[ContactIn], Meta(max_length=100)] = []


class AccountUpdate(Input, kw_only=True):
    kind: str | UnsetType = UNSET
    name: ShortText | UnsetType = UNSET


class AccountOut(Output, kw_only=True):
    id: int
    kind: str
    name: str
    contacts: list[ContactOut]
    created_at: datetime
    updated_at: datetime


class JobIn(Input, kw_only=True):
    account_id: int
    workflow: Annotated[str, Meta(max_length=63)]
    title: ShortText
    quote: MoneyIn
    reference: Annotated[str, Meta(max_length=64)] | None = None
    promised_on: date | None = None
    start_stage: Annotated[str, Meta(max_length=63)] | None = None


class JobUpdate(Input, kw_only=True):
    version: Version | None = None
    title: ShortText | UnsetType = UNSET
    quote: MoneyIn | UnsetType = UNSET
    promised_on: date | UnsetType | None = UNSET
    account_id: int | UnsetType = UNSET


class VersionIn(Input, kw_only=True):
    version: Version | None = None


class ReasonIn(Input, kw_only=True):
    version: Version | None = None
    reason: Reason | None = None


class MoveIn(Input, kw_only=True):
    version: Version | None = None
    stage: Annotated[str, Meta(max_length=63)]
    reason: Reason


class CompleteIn(Input, kw_only=True):
    version: Version | None = None
    force: bool = False
    reason: Reason | None = None


class CostIn(Input, kw_only=True):
    version: Version | None = None
    kind: str
    amount: Decimal
    currency: Annotated[str, Meta(min_length=3, max_length=3)] | None = None
    note: Annotated[str, Meta(max_length=1000)] = ""
    stage: Annotated[str, Meta(max_length=63)] | None = None


class NoteIn(Input, kw_only=True):
    version: Version | None = None
    visibility: str = "internal"
    body: Text


class StageRef(Output, kw_only=True):
    key: str
    label: str
    entered_at: datetime


class WorkflowRef(Output, kw_only=True):
    key: str
    version: int


class RangeOut(Output, kw_only=True):
    p50: datetime
    """Half of similar jobs were done by then."""
    p90: datetime
    """Nine in ten similar jobs were done by then."""


class MoneyRangeOut(Output, kw_only=True):
    p50: MoneyOut
    p90: MoneyOut


class EstimateOut(Output, kw_only=True):
    completion: RangeOut
    cost: MoneyRangeOut
    basis: str
    """planned (from the workflow's plan), history (learned from past jobs) or blend."""
    overdue: bool
    """The job ran past the completion date last announced; `completion` is the new range."""
    at_risk: bool
    """The P90 completion is after the end of the promised day, in working time."""
    over_budget: bool
    """The P50 projected cost is above the quote by more than TRACKER_OVER_BUDGET_TOLERANCE."""
    stuck: bool
    """The job has been in its current stage longer than that stage's P90 duration."""
    computed_at: datetime


class JobOut(Output, kw_only=True):
    id: int
    reference: str
    account_id: int
    workflow: WorkflowRef
    title: str
    quote: MoneyOut
    promised_on: date | None
    status: str
    stage: StageRef
    version: int
    status_page_url: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    actual_cost: MoneyOut
    estimate: EstimateOut | None


class JobList(Output, kw_only=True):
    items: list[JobOut]
    next_cursor: str | None


class CostOut(Output, kw_only=True):
    id: int
    kind: str
    amount: MoneyOut
    stage: str
    note: str
    created_at: datetime
    created_by: str


class CostAdded(Output, kw_only=True):
    job: JobOut
    cost: CostOut


class NoteOut(Output, kw_only=True):
    id: int
    visibility: str
    body: str
    created_at: datetime
    created_by: str


class NoteAdded(Output, kw_only=True):
    job: JobOut
    note: NoteOut


class EventOut(Output, kw_only=True):
    id: int
    type: str
    job_version: int
    actor: str
    occurred_at: datetime
    data: dict[str, Any]


class HistoryOut(Output, kw_only=True):
    items: list[EventOut]
    next_after: int | None


class VisitOut(Output, kw_only=True):
    stage: str
    entered_at: datetime
    left_at: datetime | None
    entered_by: str
    left_by: str | None


class KeyIn(Input, kw_only=True):
    name: Annotated[str, Meta(max_length=100)]
    role: str


class KeyOut(Output, kw_only=True):
    id: int
    name: str
    role: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class IssuedKeyOut(KeyOut, kw_only=True):
    secret: str
    """The key itself. It is shown this once and cannot be read back."""


class EstimateHistoryOut(Output, kw_only=True):
    computed_at: datetime
    completion: RangeOut
    cost: MoneyRangeOut
    basis: str
    overdue: bool


class HoursRangeOut(Output, kw_only=True):
    p50: float
    p90: float


class StageAheadOut(Output, kw_only=True):
    stage: str
    label: str
    current: bool
    """The stage the job is in now; the list starts with it and follows the order the job meets them."""
    probability: float
    """How likely the job is to go through this stage (rework loops and skips are learned)."""
    expected_visits: float
    expected_working_hours: float
    samples: int
    basis: str


class EstimatorOut(Output, kw_only=True):
    chosen: str
    """The predictor the estimate comes from: direct (what remained for past jobs in the same
    position), simulation (stage by stage), or median (plain median per stage)."""
    reason: str
    """Why: how each candidate scored on the newest closed jobs when the workflow was last fitted."""


class EstimateExplanationOut(Output, kw_only=True):
    estimate: EstimateOut | None
    current_stage: str
    working_hours_in_stage: float
    current_stage_remaining_working_hours: float | None
    queue_wait_working_hours: float
    remaining_working_hours: HoursRangeOut
    """Working hours left, the queue wait included."""
    stages_ahead: list[StageAheadOut]
    non_working_days: list[date]
    """Days between now and the P90 completion on which the business does not work."""
    calendar_time_zone: str
    basis: str
    samples: int
    p90_calibration: CalibrationOut
    estimator: EstimatorOut


class CalibrationOut(Output, kw_only=True):
    factor: float | None
    """What the P90 of the model is scaled by; null when it could not be measured."""
    coverage: float | None
    """Share of past outcomes at or before their P90; null without evidence."""
    samples: int
