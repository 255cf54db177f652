"""Wire schemas (msgspec Structs), one per direction, mapped explicitly from the models.

The constrained types below are the edge's limits, shared by every schema: they are what the OpenAPI
document shows and what the strict body decoder (`tracker.web.edge`) enforces, so the two cannot differ.
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import holidays
from babel.localedata import locale_identifiers
from babel.numbers import list_currencies
from msgspec import UNSET, Meta, Struct, UnsetType

from notifications.ratelimit import MIN_PER_SECOND
from tracker.domain.progress import Confidence, StepState
from tracker.domain.workflow import STAGE_KEY, JobStatus
from tracker.estimates.model import CalibrationSource, EstimatorName
from tracker.estimates.selection import Why
from tracker.services.accounts import EMAIL, AccountKind
from tracker.services.estimates import BASIS_LABELS
from tracker.services.jobs import REFERENCE, CostKind, NoteVisibility
from tracker.services.keys import NAME_MAX as KEY_NAME_MAX, Role
from tracker.services.outbox import DeliveryChannel, DeliveryStatus
from tracker.services.pages import INT32_MAX
from tracker.services.webhooks import MAX_ROTATION_WINDOW_S, SUBSCRIBABLE, EndpointStatus, ReplayScope
from tracker.services.workflows import WORKFLOW_KEY

BIGINT_MAX = 2**63 - 1
"""Event ids are 64-bit."""
CONTROL = r"\x00-\x08\x0b-\x1f\x7f-\x9f"
"""Control characters a text may not hold: all but tab and newline."""
SPACE = r"\t\n\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
"""White space by Python's rules and by JSON Schema's (ECMAScript), spelled out so both read it alike."""
TEXT = rf"^[{SPACE}]*[^{SPACE}{CONTROL}][^{CONTROL}]*$"
"""Some visible character, and no control character but tab and newline."""
KEY = f"^{WORKFLOW_KEY.pattern}$"
STAGE = f"^{STAGE_KEY.pattern}$"
PLAIN = rf"^[^{CONTROL}]*$"
"""Text with no control character but tab and newline (PostgreSQL cannot even store a NUL)."""
CURSOR = r"^[A-Za-z0-9_-]*$"


Text = Annotated[
    str,
    Meta(min_length=1, max_length=10_000, pattern=TEXT, examples=["The old pads go back to the customer."]),
]
ShortText = Annotated[str, Meta(min_length=1, max_length=300, pattern=TEXT, examples=["Front axle"])]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=TEXT, examples=["Marie Dubois"])]
Title = Annotated[str, Meta(min_length=1, max_length=300, pattern=TEXT, examples=["Brake discs and pads"])]
Reason = Annotated[
    str, Meta(min_length=1, max_length=1000, pattern=TEXT, examples=["Waiting for the customer's approval"])
]
CostNote = Annotated[str, Meta(max_length=1000, pattern=PLAIN, examples=["Pads, OEM"])]
Id = Annotated[int, Meta(ge=1, le=INT32_MAX, examples=[42])]
Instant = Annotated[datetime, Meta(tz=True)]
"""A moment with its offset (RFC 3339 date-time): what is sent is UTC, what is read must say its zone."""
Version = Annotated[int, Meta(ge=1, le=INT32_MAX, description="The job version read", examples=[3])]
Key = Annotated[str, Meta(pattern=KEY, examples=["car-repair"])]
StageKey = Annotated[str, Meta(pattern=STAGE, examples=["repair"])]
Reference = Annotated[str, Meta(pattern=f"^{REFERENCE.pattern}$", examples=["J-2026-7KQ4MZ"])]
Amount = Annotated[
    str,
    Meta(
        pattern=r"^[0-9]{1,13}(\.[0-9]{1,2})?$",
        description="A decimal string, never a JSON number, with no more decimals than the currency has",
        examples=["640.00"],
    ),
]
Hours = Annotated[
    str,
    Meta(
        pattern=r"^[0-9]{1,5}(\.[0-9]{1,2})?$",
        description="Working hours, a decimal string (at most 99999.99)",
        examples=["4.5"],
    ),
]
Email = Annotated[
    str,
    Meta(
        max_length=254,
        # The rule of `EMAIL`, its white space spelled out (see SPACE); spaces around it are trimmed.
        pattern=rf"^ *{EMAIL.pattern.strip('^$').replace(chr(92) + 's', SPACE + CONTROL)} *$",
        examples=["marie@example.com"],
    ),
]
LabelLocale = Annotated[
    str, Meta(min_length=2, max_length=16, pattern=r"^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")
]

if TYPE_CHECKING:
    Currency = str
    TimeZone = str
    LocaleCode = str
    Country = str
    EstimateBasis = str
    WebhookType = str
else:
    # Closed sets too large to spell out: built from the libraries that check them.
    Currency = Annotated[Literal[tuple(sorted(list_currencies()))], Meta(examples=["EUR"])]
    TimeZone = Annotated[
        Literal[tuple(sorted(zoneinfo.available_timezones()))], Meta(examples=["Europe/Paris"])
    ]
    LocaleCode = Literal[
        tuple(sorted({*locale_identifiers(), *(c.replace("_", "-") for c in locale_identifiers())}))
    ]
    Country = Annotated[Literal[tuple(sorted(holidays.list_supported_countries()))], Meta(examples=["BE"])]
    EstimateBasis = Literal[BASIS_LABELS]
    WebhookType = Literal[SUBSCRIBABLE]


class Input(Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies: an unknown field is an error, not silently dropped."""


class Output(Struct, kw_only=True):
    pass


class MoneyIn(Input, kw_only=True):
    amount: Amount
    currency: Currency


class MoneyOut(Output, kw_only=True):
    amount: str
    currency: str


class DurationIn(Input, kw_only=True):
    """Planned working hours: optimistic, most likely and pessimistic."""

    optimistic: Hours
    most_likely: Hours
    pessimistic: Hours


class StageIn(Input, kw_only=True):
    key: StageKey
    labels: Annotated[
        dict[LabelLocale, ShortText],
        Meta(min_length=1, max_length=50, extra_json_schema={"required": ["en"]}),
    ]
    """Customer-facing label by locale; `en` is required."""
    duration_hours: DurationIn
    planned_cost: Amount
    capacity: Annotated[int, Meta(ge=1, le=INT32_MAX)] | None = None
    customer_visible: bool = True


Clock = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class CalendarIn(Input, kw_only=True):
    """Working time of the business: durations and dates are counted in it.

    Without opening hours and country the business works around the clock; with a country and no
    opening hours, Monday to Friday 08:00-18:00, minus the country's public holidays.
    """

    time_zone: TimeZone | None = None
    country: Country | None = None
    subdivision: Annotated[str, Meta(max_length=10, pattern=r"^[A-Za-z0-9]{1,10}$")] | None = None
    opening_hours: dict[Weekday, Annotated[list[tuple[Clock, Clock]], Meta(max_length=6)]] | None = None
    closures: Annotated[list[date], Meta(max_length=1000)] = []


class CalendarOut(Output, kw_only=True):
    time_zone: str
    country: str | None
    subdivision: str | None
    opening_hours: dict[str, list[tuple[str, str]]] | None
    closures: list[date]


class WorkflowIn(Input, kw_only=True):
    key: Key
    name: Name
    currency: Currency
    stages: Annotated[list[StageIn], Meta(min_length=1, max_length=100)]
    calendar: CalendarIn | None = None


class WorkflowVersionIn(Input, kw_only=True):
    name: Name
    currency: Currency
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
    created_at: Instant
    stages: list[StageOut]
    calendar: CalendarOut | None


class ContactIn(Input, kw_only=True):
    name: Name
    email: Email
    locale: LocaleCode = "en"
    time_zone: TimeZone = "UTC"


class ContactUpdate(Input, kw_only=True):
    name: Name | UnsetType = UNSET
    email: Email | UnsetType = UNSET
    locale: LocaleCode | UnsetType = UNSET
    time_zone: TimeZone | UnsetType = UNSET


class ContactOut(Output, kw_only=True):
    id: int
    account_id: int
    name: str
    email: str
    locale: str
    time_zone: str
    created_at: Instant
    updated_at: Instant
    version: int
    """Bumped by every change: send it back as `If-Match: "3"` to change only what you read (412 if it
    changed meanwhile)."""


class AccountIn(Input, kw_only=True):
    kind: AccountKind
    name: Name
    contacts: Annotated[list[ContactIn], Meta(max_length=100)] = []


class AccountUpdate(Input, kw_only=True):
    kind: AccountKind | UnsetType = UNSET
    name: Name | UnsetType = UNSET


class AccountOut(Output, kw_only=True):
    id: int
    kind: AccountKind
    name: str
    contacts: list[ContactOut]
    created_at: Instant
    updated_at: Instant
    version: int
    """Bumped by every change: send it back as `If-Match: "3"` to change only what you read (412 if it
    changed meanwhile)."""


class AccountList(Output, kw_only=True):
    items: list[AccountOut]
    next_cursor: str | None


class ContactList(Output, kw_only=True):
    items: list[ContactOut]
    next_cursor: str | None


PromisedOn = Annotated[date, Meta(description="The day promised to the customer, within ten years of today")]


class JobIn(Input, kw_only=True):
    account_id: Id
    workflow: Key
    title: Title
    quote: MoneyIn
    reference: Reference | None = None
    promised_on: PromisedOn | None = None
    start_stage: StageKey | None = None


class JobUpdate(Input, kw_only=True):
    version: Version | None = None
    title: Title | UnsetType = UNSET
    quote: MoneyIn | UnsetType = UNSET
    promised_on: PromisedOn | UnsetType | None = UNSET
    account_id: Id | UnsetType = UNSET


class VersionIn(Input, kw_only=True):
    version: Version | None = None


class ReasonIn(Input, kw_only=True):
    version: Version | None = None
    reason: Reason | None = None


class RequiredReasonIn(Input, kw_only=True):
    version: Version | None = None
    reason: Reason


class MoveIn(Input, kw_only=True):
    version: Version | None = None
    stage: StageKey
    reason: Reason


class CompleteIn(Input, kw_only=True):
    version: Version | None = None
    force: bool = False
    reason: Reason | None = None


class CostIn(Input, kw_only=True):
    version: Version | None = None
    kind: CostKind
    amount: Amount
    currency: Currency | None = None
    note: CostNote = ""
    stage: StageKey | None = None


class NoteIn(Input, kw_only=True):
    version: Version | None = None
    visibility: NoteVisibility = NoteVisibility.INTERNAL
    body: Text


class StageRef(Output, kw_only=True):
    key: str
    label: str
    entered_at: Instant


class WorkflowRef(Output, kw_only=True):
    key: str
    version: int


class RangeOut(Output, kw_only=True):
    p50: Instant
    """Half of similar jobs were done by then."""
    p90: Instant
    """Nine in ten similar jobs were done by then."""


class MoneyRangeOut(Output, kw_only=True):
    p50: MoneyOut
    p90: MoneyOut


class EstimateOut(Output, kw_only=True):
    completion: RangeOut
    cost: MoneyRangeOut
    basis: EstimateBasis
    """planned (from the workflow's plan), history (learned from past jobs) or blend."""
    overdue: bool
    """The job ran past the completion date last announced; `completion` is the new range."""
    at_risk: bool
    """The P90 completion is after the end of the promised day, in working time."""
    over_budget: bool
    """The P50 projected cost is above the quote by more than TRACKER_OVER_BUDGET_TOLERANCE."""
    stuck: bool
    """The job has been in its current stage longer than that stage's P90 duration."""
    computed_at: Instant


class JobOut(Output, kw_only=True):
    id: int
    reference: str
    account_id: int
    workflow: WorkflowRef
    title: str
    quote: MoneyOut
    promised_on: date | None
    status: JobStatus
    stage: StageRef
    version: int
    status_page_url: str
    created_at: Instant
    updated_at: Instant
    closed_at: Instant | None
    actual_cost: MoneyOut
    estimate: EstimateOut | None


class JobList(Output, kw_only=True):
    items: list[JobOut]
    next_cursor: str | None


class CostOut(Output, kw_only=True):
    id: int
    kind: CostKind
    amount: MoneyOut
    stage: str
    note: str
    created_at: Instant
    created_by: str


class CostAdded(Output, kw_only=True):
    job: JobOut
    cost: CostOut


class NoteOut(Output, kw_only=True):
    id: int
    visibility: NoteVisibility
    body: str
    created_at: Instant
    created_by: str


class NoteAdded(Output, kw_only=True):
    job: JobOut
    note: NoteOut


class EventOut(Output, kw_only=True):
    id: int
    type: str
    job_version: int
    actor: str
    occurred_at: Instant
    data: dict[str, Any]


class HistoryOut(Output, kw_only=True):
    items: list[EventOut]
    next_after: int | None


class NotificationOut(Output, kw_only=True):
    id: int
    channel: DeliveryChannel
    kind: str
    """The event type told of, or `staff_alert`, `question` (a customer's question, to staff), `digest`,
    `endpoint_warning`, `endpoint_disabled`, `test`."""
    contact_id: int | None
    """The contact emailed, for customer emails."""
    endpoint_id: int | None
    """The webhook endpoint, for webhooks (and for staff notices about it)."""
    address: str | None
    """The address emailed (a contact's as it was when queued, or staff's); null for webhooks."""
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    created_at: Instant
    due_at: Instant | None
    """When a queued delivery is due: the dispatcher moves it on to the end of its fold window, the
    contact's quiet hours or its retry wait once it has looked at it. Null once it is sent or given up,
    and while it is being sent."""
    sent_at: Instant | None


class NotificationList(Output, kw_only=True):
    items: list[NotificationOut]
    next_after: int | None


class VisitOut(Output, kw_only=True):
    stage: str
    entered_at: Instant
    left_at: Instant | None
    entered_by: str
    left_by: str | None


class KeyIn(Input, kw_only=True):
    name: Annotated[
        str, Meta(min_length=1, max_length=KEY_NAME_MAX, pattern=TEXT, examples=["Workshop tablet"])
    ]
    role: Role
    expires_at: Instant | None = None
    """From this moment the key is refused (with a time zone offset); none: it never expires."""


class KeyOut(Output, kw_only=True):
    id: int
    name: str
    role: Role
    prefix: str
    created_at: Instant
    revoked_at: Instant | None
    expires_at: Instant | None
    last_used_at: Instant | None
    """When the key last authenticated a request, to the minute."""


class IssuedKeyOut(KeyOut, kw_only=True):
    secret: str
    """The key itself. It is shown this once and cannot be read back."""


class AuditEntryOut(Output, kw_only=True):
    id: int
    occurred_at: Instant
    actor: str
    action: str
    subject: str
    """What was removed, as people know it (a job's reference)."""
    reason: str
    detail: dict[str, Any]


class AuditList(Output, kw_only=True):
    items: list[AuditEntryOut]
    next_cursor: str | None


class EstimateHistoryOut(Output, kw_only=True):
    computed_at: Instant
    completion: RangeOut
    cost: MoneyRangeOut
    basis: EstimateBasis
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
    basis: Literal["planned", "blend", "history"]


class CalibrationOut(Output, kw_only=True):
    """How the P90 is scaled so that nine in ten jobs finish by it."""

    factor: float
    coverage: float | None
    """The share of the jobs scored that were done by their scaled P90 (a job still open within it counted
    as its chance of making it), or null before any was decided."""
    samples: int
    source: CalibrationSource
    """What the factor was learned on: `in-sample`, the newest finished jobs the model was fitted on, which
    may widen the P90 but never narrow it; `none`, nothing yet (no job has finished: the P90 is unscaled);
    `evidence`, the estimates given earlier and what became of them (each job's newest made long enough
    ago; a job still open past its P90 counting as a miss), which move the factor from the in-sample one
    as their outcomes accumulate and may narrow the P90 too."""


class EstimatorOut(Output, kw_only=True):
    chosen: EstimatorName
    """The predictor the P50 comes from: direct (what remained for past jobs in the same position),
    simulation (stage by stage), median (plain median per stage), a blend (the geometric mean of
    direct and simulation, or of direct and median), or direct_by_resource (direct, scaled by how long
    jobs had left after the same person finished their last stage). The P90 is always direct's,
    calibrated."""
    reason: str
    """Why: how each candidate's P50 scored on the newest closed jobs when the workflow was last fitted."""
    why: Why
    """What decided it: few_outcomes (too few closed jobs to score on: the default), clearly_best (clearly
    below the default's error), no_clear_winner (none clearly better: the default), not_scored (not yet)."""
    outcomes: int
    """How many closed jobs the candidates were scored on."""


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
    basis: Literal["planned", "blend", "history"]
    samples: int
    p90_calibration: CalibrationOut
    estimator: EstimatorOut


class StepOut(Output, kw_only=True):
    key: str
    label: str
    state: StepState


class PublicEstimateOut(Output, kw_only=True):
    completion: RangeOut
    confidence: Confidence
    overdue: bool
    projected_cost: MoneyOut
    """The likely (P50) cost, beside the quote."""


class PublicNoteOut(Output, kw_only=True):
    body: str
    created_at: Instant


class PublicStatusOut(Output, kw_only=True):
    """A job as its customer sees it (the status page's facts), for a shop's own site."""

    reference: str
    title: str
    status: JobStatus
    language: str
    stage: str
    """The current stage's customer label (a hidden stage shows as the last visible one)."""
    steps: list[StepOut]
    estimate: PublicEstimateOut | None
    quote: MoneyOut
    actual_cost: MoneyOut
    promised_on: date | None
    on_hold_reason: str | None
    notes: list[PublicNoteOut]
    version: int
    updated_at: Instant
    closed_at: Instant | None


class StatusTokenOut(Output, kw_only=True):
    status_page_url: str
    """The job's new status-page link; the old one answers 404 from now on."""


EmailChoice = Literal["each", "digest", "off"]


class PreferencesIO(Input, kw_only=True):
    """Per category of email: `each` one email per change, `digest` in the daily digest, or `off`."""

    progress: EmailChoice
    estimates: EmailChoice
    alerts: EmailChoice
    notes: EmailChoice


class SuppressionOut(Output, kw_only=True):
    address: str
    reason: str
    created_at: Instant


class SuppressionList(Output, kw_only=True):
    items: list[SuppressionOut]
    next_cursor: str | None


WebhookUrl = Annotated[
    str,
    Meta(
        max_length=2000,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20\x7f]+$",
        description="HTTPS (HTTP only where the operator allows it), to a host that resolves to public "
        "addresses only",
        examples=["https://hooks.example.com/tracker"],
    ),
]
WebhookTypes = Annotated[
    list[WebhookType],
    Meta(min_length=1, max_length=50, description="Webhook types to receive (see GET /event-types)"),
]
Description = Annotated[
    str, Meta(max_length=500, pattern=PLAIN, examples=["ERP order sync"], description="For people")
]
RatePerSecond = Annotated[
    float,
    Meta(
        ge=MIN_PER_SECOND,
        le=1000,
        examples=[5],
        description="At most this many requests a second to the endpoint (at least one an hour); none: no "
        "limit beyond concurrency",
    ),
]


class WebhookIn(Input, kw_only=True):
    url: WebhookUrl
    event_types: WebhookTypes
    account_id: Id | None = None
    """Only this account's jobs; none: every account."""
    description: Description = ""
    rate_per_second: RatePerSecond | None = None


class WebhookUpdate(Input, kw_only=True):
    url: WebhookUrl | UnsetType = UNSET
    event_types: WebhookTypes | UnsetType = UNSET
    account_id: Id | UnsetType | None = UNSET
    """null: every account."""
    description: Description | UnsetType = UNSET
    rate_per_second: RatePerSecond | UnsetType | None = UNSET
    """null: no limit."""
    status: Literal["active", "paused"] | UnsetType = UNSET
    """paused: nothing is sent, deliveries wait; active: resume, or re-activate a disabled endpoint."""


class WebhookOut(Output, kw_only=True):
    id: int
    url: str
    description: str
    account_id: int | None
    event_types: list[str]
    rate_per_second: float | None
    status: EndpointStatus
    """active, paused (by its owner) or disabled (the receiver answered 410, or failed for days)."""
    disabled_reason: str | None
    failing_since: Instant | None
    previous_secret_expires_at: Instant | None
    """During a rotation the old secret signs beside the new one until then."""
    created_at: Instant
    updated_at: Instant
    version: int
    """Bumped by every change: send it back as `If-Match: "3"` to change only what you read (412 if it
    changed meanwhile)."""


class WebhookWithSecret(WebhookOut, kw_only=True):
    secret: str
    """`whsec_` and base64 of 32 random bytes: verify signatures with it. Shown this once."""


class WebhookList(Output, kw_only=True):
    items: list[WebhookOut]
    next_cursor: str | None


class RotateSecretIn(Input, kw_only=True):
    previous_secret_valid_s: Annotated[int, Meta(ge=0, le=MAX_ROTATION_WINDOW_S)] | None = None
    """How long the old secret keeps signing beside the new one; none: TRACKER_WEBHOOK_SECRET_ROTATION_S;
    0: it stops at once (a leaked secret)."""


class QueuedTestOut(Output, kw_only=True):
    delivery_id: int
    available_at: Instant


class AttemptOut(Output, kw_only=True):
    id: int
    delivery_id: int
    event_type: str
    attempted_at: Instant
    outcome: str
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response_excerpt: str | None
    """The first 2 KB of the response body."""


class AttemptList(Output, kw_only=True):
    items: list[AttemptOut]
    next_cursor: str | None


class ReplayIn(Input, kw_only=True):
    """Either one delivery (`delivery_id`) or every delivery created since a time (`since`)."""

    JSON_SCHEMA_EXTRA: ClassVar[dict[str, Any]] = {
        "oneOf": [{"required": ["delivery_id"]}, {"required": ["since"]}]
    }
    delivery_id: Annotated[int, Meta(ge=1, le=BIGINT_MAX)] | UnsetType = UNSET
    since: Instant | UnsetType = UNSET
    status: ReplayScope = ReplayScope.DEAD
    """dead: only deliveries that gave up; all: also those sent (each keeps its webhook-id)."""


class ReplayOut(Output, kw_only=True):
    requeued: int


class EventTypeOut(Output, kw_only=True):
    type: str
    description: str
    data_schema: dict[str, Any]
    """JSON Schema of the request's `data`."""
    example: dict[str, Any]
    """A whole request body of this type."""
