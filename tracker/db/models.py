"""Tortoise models: the persistence edge. Rules live in `tracker.domain`, not here."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class ApiKey(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    role = fields.CharField(max_length=16)
    prefix = fields.CharField(max_length=16, unique=True)
    secret_hash = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    last_used_at = fields.DatetimeField(null=True)
    """When the key last authenticated a request, to the minute (written at most once a minute)."""
    expires_at = fields.DatetimeField(null=True)
    """From this moment the key is refused; None: it never expires."""

    class Meta:
        table = "api_key"


class Workflow(Model):
    """One version of a workflow. Editing a workflow adds a version and running jobs keep theirs."""

    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=63)
    version = fields.IntField()
    name = fields.CharField(max_length=200)
    currency = fields.CharField(max_length=3)
    """Currency of the planned stage costs and of every job on this workflow."""
    is_current = fields.BooleanField()
    archived = fields.BooleanField(default=False)
    calendar: fields.JSONField[Any] = fields.JSONField(null=True)
    created_at = fields.DatetimeField()

    stages: fields.ReverseRelation[Stage]

    class Meta:
        table = "workflow"
        unique_together = (("key", "version"),)
        indexes = (Index(fields=("key", "is_current")),)


class Stage(Model):
    id = fields.IntField(primary_key=True)
    workflow: fields.ForeignKeyRelation[Workflow] = fields.ForeignKeyField(
        "tracker.Workflow", related_name="stages", on_delete=fields.CASCADE
    )
    workflow_id: int
    position = fields.IntField()
    key = fields.CharField(max_length=63)
    labels: fields.JSONField[dict[str, str]] = fields.JSONField()
    optimistic_hours = fields.DecimalField(max_digits=10, decimal_places=2)
    most_likely_hours = fields.DecimalField(max_digits=10, decimal_places=2)
    pessimistic_hours = fields.DecimalField(max_digits=10, decimal_places=2)
    planned_cost = fields.DecimalField(max_digits=18, decimal_places=4)
    capacity = fields.IntField(null=True)
    customer_visible = fields.BooleanField()

    class Meta:
        table = "stage"
        unique_together = (("workflow", "key"), ("workflow", "position"))


class Account(Model):
    id = fields.IntField(primary_key=True)
    kind = fields.CharField(max_length=16)
    name = fields.CharField(max_length=200)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    version = fields.IntField(default=1, db_default=1)
    """Bumped by every change: the ETag that `If-Match` names."""

    contacts: fields.ReverseRelation[Contact]

    class Meta:
        table = "account"


class Contact(Model):
    id = fields.IntField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "tracker.Account", related_name="contacts", on_delete=fields.CASCADE
    )
    account_id: int
    name = fields.CharField(max_length=200)
    email = fields.CharField(max_length=254)
    locale = fields.CharField(max_length=16)
    time_zone = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    version = fields.IntField(default=1, db_default=1)
    """Bumped by every change: the ETag that `If-Match` names."""
    page_token = fields.CharField(max_length=64, unique=True, null=True)
    """Unguessable: the contact's account page (`/a/{token}`), preferences page and unsubscribe links."""
    progress_emails = fields.CharField(max_length=8, default="each", db_default="each")
    """Each preference is `each`, `digest` (in the daily digest) or `off`, read in SQL by the fan-out."""
    estimate_emails = fields.CharField(max_length=8, default="each", db_default="each")
    alert_emails = fields.CharField(max_length=8, default="each", db_default="each")
    note_emails = fields.CharField(max_length=8, default="each", db_default="each")

    class Meta:
        table = "contact"


class Job(Model):
    id = fields.IntField(primary_key=True)
    reference = fields.CharField(max_length=64, unique=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "tracker.Account", related_name="jobs", on_delete=fields.RESTRICT
    )
    workflow: fields.ForeignKeyRelation[Workflow] = fields.ForeignKeyField(
        "tracker.Workflow", related_name="jobs", on_delete=fields.RESTRICT
    )
    account_id: int
    workflow_id: int
    title = fields.CharField(max_length=300)
    title_search = fields.CharField(max_length=400)
    """Lower-cased reference and title, for case-insensitive search on every database."""
    quote_amount = fields.DecimalField(max_digits=18, decimal_places=4)
    currency = fields.CharField(max_length=3)
    promised_on = fields.DateField(null=True)
    status = fields.CharField(max_length=16)
    stage_key = fields.CharField(max_length=63)
    stage_entered_at = fields.DatetimeField()
    version = fields.IntField()
    public_token = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    closed_at = fields.DatetimeField(null=True)
    held_since = fields.DatetimeField(null=True)
    """When the job went on hold (None while it is not on hold): the estimate clock stops."""
    stage_held_seconds = fields.FloatField(default=0.0, db_default=0.0)
    """Working seconds spent on hold in the current stage visit, excluded from its elapsed time."""
    stages_completed = fields.IntField(default=0, db_default=0)
    """Stage visits the job has finished, repeats included (an input of the estimate)."""
    actual_cost = fields.DecimalField(max_digits=18, decimal_places=4, default=0, db_default=0)
    """Sum of the job's cost entries, kept with them in the same transaction."""
    eta_p50 = fields.DatetimeField(null=True)
    eta_p90 = fields.DatetimeField(null=True)
    cost_p50 = fields.DecimalField(max_digits=18, decimal_places=4, null=True)
    cost_p90 = fields.DecimalField(max_digits=18, decimal_places=4, null=True)
    estimate_basis = fields.CharField(max_length=16, null=True)
    estimated_at = fields.DatetimeField(null=True)
    """When the estimate columns were last written. No estimate column is indexed, on purpose: the scheduled
    recompute rewrites them for every open job, and PostgreSQL can then update the row in place (a HOT
    update, in the free half of each page the table's fillfactor keeps, see migration 0003) instead of
    adding an entry to every index."""
    announced: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    """The estimate customers were last told about, for deciding what changed enough to tell again."""

    class Meta:
        table = "job"
        indexes = (
            Index(fields=("status", "id")),
            Index(fields=("stage_key", "id")),
            Index(fields=("account_id", "id")),
            Index(fields=("promised_on", "id")),
            Index(fields=("updated_at", "id")),
        )


class StageVisit(Model):
    id = fields.IntField(primary_key=True)
    job: fields.ForeignKeyRelation[Job] = fields.ForeignKeyField(
        "tracker.Job", related_name="visits", on_delete=fields.CASCADE
    )
    job_id: int
    stage_key = fields.CharField(max_length=63)
    entered_at = fields.DatetimeField()
    left_at = fields.DatetimeField(null=True)
    entered_by = fields.CharField(max_length=100)
    left_by = fields.CharField(max_length=100, null=True)
    held_seconds = fields.FloatField(default=0.0, db_default=0.0)
    """Working seconds the job spent on hold during this visit (not part of its duration)."""

    class Meta:
        table = "stage_visit"
        indexes = (Index(fields=("job_id", "entered_at")), Index(fields=("stage_key", "left_at")))


class CostEntry(Model):
    id = fields.IntField(primary_key=True)
    job: fields.ForeignKeyRelation[Job] = fields.ForeignKeyField(
        "tracker.Job", related_name="costs", on_delete=fields.CASCADE
    )
    job_id: int
    kind = fields.CharField(max_length=16)
    amount = fields.DecimalField(max_digits=18, decimal_places=4)
    currency = fields.CharField(max_length=3)
    stage_key = fields.CharField(max_length=63)
    note = fields.CharField(max_length=1000)
    created_at = fields.DatetimeField()
    created_by = fields.CharField(max_length=100)

    class Meta:
        table = "cost_entry"
        indexes = (Index(fields=("job_id", "id")),)


class Note(Model):
    id = fields.IntField(primary_key=True)
    job: fields.ForeignKeyRelation[Job] = fields.ForeignKeyField(
        "tracker.Job", related_name="notes", on_delete=fields.CASCADE
    )
    job_id: int
    visibility = fields.CharField(max_length=16)
    body = fields.TextField()
    created_at = fields.DatetimeField()
    created_by = fields.CharField(max_length=100)

    class Meta:
        table = "note"
        indexes = (Index(fields=("job_id", "id")),)


class JobEvent(Model):
    """Append-only log of everything that happened to a job (never updated, never deleted alone)."""

    id = fields.BigIntField(primary_key=True)
    job: fields.ForeignKeyRelation[Job] = fields.ForeignKeyField(
        "tracker.Job", related_name="events", on_delete=fields.CASCADE
    )
    job_id: int
    job_version = fields.IntField()
    type = fields.CharField(max_length=32)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField()
    actor = fields.CharField(max_length=100)
    occurred_at = fields.DatetimeField()
    batch = fields.CharField(max_length=32, null=True)
    """The `record_events` call that wrote it, so the outbox fan-out can select its events in SQL."""

    class Meta:
        table = "job_event"
        indexes = (Index(fields=("job_id", "id")), Index(fields=("batch",)))


class JobEstimate(Model):
    """One recomputed estimate of a job, kept when it differs from the one before."""

    id = fields.BigIntField(primary_key=True)
    job: fields.ForeignKeyRelation[Job] = fields.ForeignKeyField(
        "tracker.Job", related_name="estimates", on_delete=fields.CASCADE
    )
    job_id: int
    computed_at = fields.DatetimeField()
    eta_p50 = fields.DatetimeField()
    eta_p90 = fields.DatetimeField()
    cost_p50 = fields.DecimalField(max_digits=18, decimal_places=4)
    cost_p90 = fields.DecimalField(max_digits=18, decimal_places=4)
    basis = fields.CharField(max_length=16)
    overdue = fields.BooleanField()
    detail: fields.JSONField[dict[str, Any]] = fields.JSONField()

    class Meta:
        table = "job_estimate"
        indexes = (Index(fields=("job_id", "id")), Index(fields=("computed_at",)))


class HistoryFit(Model):
    """The history model of one workflow, fitted by one process and read by all."""

    id = fields.IntField(primary_key=True)
    workflow_key = fields.CharField(max_length=63)
    fitted_at = fields.DatetimeField()
    payload = fields.BinaryField()
    summary: fields.JSONField[dict[str, Any]] = fields.JSONField()

    class Meta:
        table = "history_fit"
        indexes = (Index(fields=("workflow_key", "fitted_at")),)


class AuditEntry(Model):
    """Something an admin removed for good, recorded in the same transaction and kept after it is gone."""

    id = fields.BigIntField(primary_key=True)
    occurred_at = fields.DatetimeField()
    actor = fields.CharField(max_length=100)
    action = fields.CharField(max_length=32)
    subject = fields.CharField(max_length=64)
    """What was removed, as people know it (a job's reference)."""
    reason = fields.CharField(max_length=1000)
    detail: fields.JSONField[dict[str, Any]] = fields.JSONField()

    class Meta:
        table = "audit_entry"


class IdempotencyRecord(Model):
    """The first response to a POST carrying an `Idempotency-Key`, replayed on retries."""

    id = fields.IntField(primary_key=True)
    api_key_id = fields.IntField()
    key = fields.CharField(max_length=200)
    fingerprint = fields.CharField(max_length=64)
    status_code = fields.IntField()
    body = fields.TextField()
    headers: fields.JSONField[dict[str, str] | None] = fields.JSONField(null=True)
    """The response's ETag and Location, replayed with its body (None: stored before they were kept)."""
    created_at = fields.DatetimeField()

    class Meta:
        table = "idempotency_record"
        unique_together = (("api_key_id", "key"),)


class WebhookEndpoint(Model):
    """An integrator's receiver: what it hears about (event types, optionally one account) and its secret."""

    id = fields.IntField(primary_key=True)
    url = fields.CharField(max_length=2000)
    description = fields.CharField(max_length=500, default="")
    account_id = fields.IntField(null=True)
    """Only this account's jobs, or None for every account."""
    owner_key_id = fields.IntField(null=True)
    """The API key that registered it: an integrator sees and manages only its own endpoints."""
    secret = fields.CharField(max_length=100)
    previous_secret = fields.CharField(max_length=100, null=True)
    previous_secret_until = fields.DatetimeField(null=True)
    """During a rotation the old secret keeps signing beside the new one until then."""
    status = fields.CharField(max_length=16, default="active")
    """`active`, `paused` (by its owner) or `disabled` (gone, or failing for days)."""
    disabled_reason = fields.CharField(max_length=200, null=True)
    failing_since = fields.DatetimeField(null=True)
    warned_at = fields.DatetimeField(null=True)
    rate_per_second = fields.FloatField(null=True)
    rate_tokens = fields.FloatField(null=True)
    rate_counted_at = fields.FloatField(null=True)
    """The rate's token bucket, shared by every process that sends: tokens left at that moment (Unix
    seconds); None until the first rated send."""
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    version = fields.IntField(default=1, db_default=1)
    """Bumped by every change of what the API shows of it (not the rate's bucket): the ETag that
    `If-Match` names."""

    class Meta:
        table = "webhook_endpoint"


class WebhookSubscription(Model):
    """One event type an endpoint hears about, a row each, so the fan-out joins on it in SQL."""

    id = fields.IntField(primary_key=True)
    endpoint: fields.ForeignKeyRelation[WebhookEndpoint] = fields.ForeignKeyField(
        "tracker.WebhookEndpoint", related_name="subscriptions", on_delete=fields.CASCADE
    )
    endpoint_id: int
    event_type = fields.CharField(max_length=32)

    class Meta:
        table = "webhook_subscription"
        unique_together = (("event_type", "endpoint_id"),)


class Delivery(Model):
    """The outbox: one message to one recipient on one channel, written in the transaction of its event."""

    id = fields.BigIntField(primary_key=True)
    dedupe_key = fields.CharField(max_length=200, unique=True)
    """Event (or digest, alert, test), channel and target: fan-out twice writes nothing new."""
    channel = fields.CharField(max_length=8)
    """`email` or `webhook`."""
    kind = fields.CharField(max_length=32)
    """What it says: an event type, `digest`, `staff_alert`, `staff_summary`, `question`,
    `endpoint_warning` or `test`."""
    target = fields.CharField(max_length=300)
    """What concurrency and rate limits apply to: `webhook:<id>`, `email:<address>`."""
    event_id = fields.BigIntField(null=True)
    job_id = fields.IntField(null=True)
    contact_id = fields.IntField(null=True)
    endpoint_id = fields.IntField(null=True)
    question_id = fields.IntField(null=True)
    """The customer's question a `question` staff email tells of."""
    address = fields.CharField(max_length=254, null=True)
    """An email recipient who is no contact (staff alerts, endpoint owners)."""
    status = fields.CharField(max_length=16, default="queued")
    """`queued`, `sent`, `dead`, `bounced`, `folded` (merged into another email), `skipped` (preference
    or suppression found at send time)."""
    attempts = fields.IntField(default=0)
    available_at = fields.DatetimeField()
    """When it is next due (a claim moves it to the end of its lease)."""
    claim = fields.CharField(max_length=32, null=True)
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)
    last_error = fields.CharField(max_length=500, null=True)
    payload = fields.TextField(null=True)
    """A webhook's body, fixed when it is first built: every retry and replay sends the same bytes under
    the same `webhook-id`, the job as it was then, not as it is by the retry."""

    class Meta:
        table = "delivery"
        indexes = (
            Index(fields=("status", "available_at")),
            Index(fields=("job_id", "id")),
            Index(fields=("endpoint_id", "id")),
        )


class DeliveryAttempt(Model):
    """One try of a delivery, kept for `GET /webhooks/{id}/attempts` and the job's notification list."""

    id = fields.BigIntField(primary_key=True)
    delivery_id = fields.BigIntField()
    endpoint_id = fields.IntField(null=True)
    attempted_at = fields.DatetimeField()
    outcome = fields.CharField(max_length=16)
    status_code = fields.IntField(null=True)
    latency_ms = fields.FloatField(null=True)
    error = fields.CharField(max_length=500, null=True)
    response_excerpt = fields.CharField(max_length=2048, null=True)

    class Meta:
        table = "delivery_attempt"
        indexes = (Index(fields=("endpoint_id", "id")), Index(fields=("delivery_id", "id")))


class Suppression(Model):
    """An address we no longer email: it bounced for good, or its owner asked (staff list and clear them)."""

    id = fields.IntField(primary_key=True)
    address = fields.CharField(max_length=254, unique=True)
    """Lower-cased."""
    reason = fields.CharField(max_length=500)
    created_at = fields.DatetimeField()

    class Meta:
        table = "suppression"


class DevMail(Model):
    """An email that would have gone out, kept instead when no SMTP server is configured (`/dev/mailbox`)."""

    id = fields.IntField(primary_key=True)
    delivery_id = fields.BigIntField(null=True)
    recipient = fields.CharField(max_length=254)
    subject = fields.CharField(max_length=500)
    message = fields.TextField()
    """The whole message as sent (RFC 5322 text)."""
    created_at = fields.DatetimeField()

    class Meta:
        table = "dev_mail"


class Question(Model):
    """A customer's question from the status page, waiting for staff until answered by a public note."""

    id = fields.IntField(primary_key=True)
    job: fields.ForeignKeyRelation[Job] = fields.ForeignKeyField(
        "tracker.Job", related_name="questions", on_delete=fields.CASCADE
    )
    job_id: int
    body = fields.TextField()
    asked_at = fields.DatetimeField()
    answered_at = fields.DatetimeField(null=True)
    answer_note_id = fields.IntField(null=True)
    answered_by = fields.CharField(max_length=100, null=True)

    class Meta:
        table = "question"
        indexes = (Index(fields=("answered_at", "id")), Index(fields=("job_id", "id")))


class SurveyResponse(Model):
    """The customer's satisfaction with a completed job: a score from 1 to 5, answerable once."""

    id = fields.IntField(primary_key=True)
    job: fields.ForeignKeyRelation[Job] = fields.ForeignKeyField(
        "tracker.Job", related_name="survey_responses", on_delete=fields.CASCADE
    )
    job_id: int
    score = fields.SmallIntField()
    comment = fields.CharField(max_length=2000, default="")
    answered_at = fields.DatetimeField()

    class Meta:
        table = "survey_response"
        unique_together = (("job_id",),)


INT32_MAX = 2**31 - 1
"""Ids, versions and counts are 32-bit integer columns on PostgreSQL."""


def column_length(model: type[Model], field: str) -> int:
    """The most characters the model's text column holds."""
    column = model._meta.fields_map[field]
    assert isinstance(column, fields.CharField)
    return column.max_length


def fits_column(model: type[Model], field: str, value: str) -> bool:
    """Whether `value` fits the model's text column. A longer value names no row, but Tortoise refuses
    to compare it at all (a ValidationError), so a lookup by a caller's value asks this first."""
    return len(value) <= column_length(model, field)
