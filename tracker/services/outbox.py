"""The outbox as the dispatcher sees it: the database store of deliveries, and the email composer port.

Rows are written by the fan-out in `tracker.services.events.record_events`, in the transaction of their
event. `DatabaseDeliveryStore` implements `notifications.DeliveryStore` over them; email rows are turned
into messages at claim time by an `EmailComposer`, which may also fold, defer or skip them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, cast

import msgspec
from prometheus_client import Counter, Gauge, Histogram
from tortoise.connection import get_connection
from tortoise.expressions import F
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from notifications import (
    Attempt,
    Delivery,
    OutgoingEmail,
    Rate,
    Reservation,
    TargetAction,
    TargetHealth,
    TargetVerdict,
    TokenBucket,
    WebhookMessage,
    encode_payload,
)
from notifications.attempts import EXCERPT_BYTES
from notifications.ratelimit import MIN_PER_SECOND
from notifications.retry import DISABLE_AFTER
from tracker.db.bulk import is_postgres
from tracker.db.models import (
    Delivery as DeliveryRow,
    DeliveryAttempt,
    Job,
    JobEvent,
    Suppression,
    WebhookEndpoint,
)
from tracker.domain.money import Money
from tracker.services.events import queued_email
from tracker.services.snapshots import JobSnapshot, JobSnapshots
from tracker.services.webhooks import TEST_KIND, webhook_test_data, webhook_type_of

log = logging.getLogger("tracker.outbox")


@dataclass(frozen=True, slots=True)
class QueuedEmail:
    """One claimed email delivery row, as the composer sees it."""

    id: int
    kind: str
    """An event type (`advance`, `at_risk`...), or `digest`, `staff_summary`, `endpoint_warning`,
    `endpoint_disabled`."""
    event_id: int | None
    job_id: int | None
    contact_id: int | None
    address: str | None
    """The recipient when it is no contact (staff alerts, endpoint owners)."""
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ComposedEmail:
    """Send `message`; the queued emails `folded` (other delivery ids) are covered by it."""

    message: OutgoingEmail
    folded: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DeferEmail:
    """Not yet: a fold window, quiet hours or the estimate-email interval ends at `until`."""

    until: datetime


@dataclass(frozen=True, slots=True)
class SkipEmail:
    """Never: the preference is off or the address suppressed at send time."""

    reason: str


EmailPlan = ComposedEmail | DeferEmail | SkipEmail


class EmailComposer(Protocol):
    async def compose_batch(
        self, emails: Sequence[QueuedEmail], now: datetime
    ) -> Sequence[EmailPlan | Exception]:
        """What to do with each claimed email delivery at `now`, in order, or what composing it raised
        (reads the database, once for the batch where it can; sends nothing)."""
        ...


DELIVERIES_QUEUED = Gauge(
    "tracker_deliveries_queued", "Deliveries waiting to be sent, per channel", ["channel"]
)
DELIVERY_RESULTS = Counter(
    "tracker_deliveries_total",
    "Delivery attempts by channel and result (sent, failed, dead, bounced)",
    ["channel", "result"],
)
EVENT_TO_DELIVERY = Histogram(
    "tracker_event_to_delivery_seconds",
    "From the event's commit to the delivery's arrival, per channel",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14_400, 86_400),
)

_RETURNED = (
    "id, dedupe_key, channel, kind, target, event_id, job_id, contact_id, endpoint_id, address, attempts, "
    "created_at, payload"
)
_RETURNED_QUALIFIED = ", ".join(f"delivery.{column}" for column in _RETURNED.split(", "))
_WAITING = (
    "status = 'queued' AND available_at <= {now} AND (channel <> 'webhook' OR endpoint_id IN "
    "(SELECT id FROM webhook_endpoint WHERE status = 'active'))"
)
_RESULT_COLUMNS = (
    ("id", "bigint"),
    ("claim", "text"),
    ("attempts", "int"),
    ("status", "text"),
    ("available_at", "timestamptz"),
    ("sent_at", "timestamptz"),
    ("last_error", "text"),
    ("endpoint_id", "int"),
    ("attempted_at", "timestamptz"),
    ("outcome", "text"),
    ("status_code", "int"),
    ("latency_ms", "float8"),
    ("error", "text"),
    ("response_excerpt", "text"),
)
"""The fields of a `_Result`, in order, with their PostgreSQL types."""
_RECORD_POSTGRES = (
    "WITH result AS (SELECT * FROM unnest("  # noqa: S608 (fixed SQL)
    + ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(_RESULT_COLUMNS, 1))
    + ") AS result("
    + ", ".join(name for name, _ in _RESULT_COLUMNS)
    + ")), moved AS (UPDATE delivery SET claim = NULL, attempts = result.attempts, status = result.status, "
    "available_at = coalesce(result.available_at, delivery.available_at), sent_at = result.sent_at, "
    "last_error = result.last_error FROM result "
    "WHERE delivery.id = result.id AND delivery.claim = result.claim RETURNING result.id, result.claim) "
    ", kept AS (INSERT INTO delivery_attempt (delivery_id, endpoint_id, attempted_at, outcome, status_code, "
    "latency_ms, error, response_excerpt) SELECT result.id, result.endpoint_id, result.attempted_at, "
    "result.outcome, result.status_code, result.latency_ms, result.error, result.response_excerpt "
    "FROM result JOIN moved USING (id, claim)) "
    "SELECT id, claim FROM moved"
)
"""Record a batch of results in one statement, each only while its claim still holds the row."""
RESULT_BATCH = 100
"""At most this many results go in one statement."""
SCAN_FACTOR = 4
"""A claim looks at this many times `limit` of the oldest due rows to apply the per-target limit."""
JOB_GONE = "the job was deleted"


def _claim_sql(postgres: bool, skipped: int) -> str:
    """The claim of one batch; placeholders: now, [skipped targets], scan, per_target, limit, claim, lease."""
    if postgres:
        now, scan, per_target, limit, claim, lease = "$1", "$3", "$4", "$5", "$6", "$7"
        skip = " AND target <> ALL($2::text[])"
    else:
        now, scan, per_target, limit, claim, lease = "?", "?", "?", "?", "?", "?"
        skip = f" AND target NOT IN ({', '.join('?' * skipped)})" if skipped else ""
    waiting = _WAITING.format(now=now)
    oldest = (
        f"SELECT id, target, available_at FROM delivery WHERE {waiting}{skip} "  # noqa: S608 (fixed SQL)
        f"ORDER BY available_at, id LIMIT {scan}"
    )
    rank = "row_number() OVER (PARTITION BY target ORDER BY available_at, id)"
    ranked = f"SELECT id, available_at, {rank} AS n FROM ({oldest}) AS oldest"  # noqa: S608 (fixed SQL)
    due = (
        f"SELECT id FROM ({ranked}) AS ranked "  # noqa: S608 (fixed SQL)
        f"WHERE n <= {per_target} ORDER BY available_at, id LIMIT {limit}"
    )
    if postgres:
        # Rows another process is claiming right now are skipped, not waited for; the re-check of the
        # state under the lock is the compare-and-set.
        return (
            f"WITH picked AS (SELECT id FROM delivery WHERE id IN ({due}) AND {waiting} "  # noqa: S608
            "FOR UPDATE SKIP LOCKED) "
            f"UPDATE delivery SET claim = {claim}, available_at = {lease} FROM picked "
            f"WHERE delivery.id = picked.id RETURNING {_RETURNED_QUALIFIED}"
        )
    # SQLite: one statement is atomic under its single writer, and re-checks the state it claims from.
    return (
        f"UPDATE delivery SET claim = {claim}, available_at = {lease} "  # noqa: S608 (fixed SQL)
        f"WHERE id IN ({due}) AND {waiting} RETURNING {_RETURNED}"
    )


def _instant(value: datetime | str) -> datetime:
    """A timestamp as the driver returns it (SQLite: Tortoise's text form) as an aware datetime."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _sqlite_time(moment: datetime) -> str:
    return str(moment.astimezone(UTC))


def webhook_message_id(dedupe_key: str) -> str:
    """The `webhook-id` of a delivery: the same on every attempt and replay of it."""
    return "msg_" + re.sub(r"[^A-Za-z0-9_-]", "_", dedupe_key)


def webhook_job(job: JobSnapshot) -> dict[str, Any]:
    """The job as webhooks show it: the fields and JSON forms of the API's job, from the same snapshot."""

    def money(value: Money) -> dict[str, str]:
        return {"amount": str(value.amount), "currency": value.currency}

    estimate = job.estimate
    document = {
        "id": job.id,
        "reference": job.reference,
        "account_id": job.account_id,
        "workflow": {"key": job.workflow_key, "version": job.workflow_version},
        "title": job.title,
        "quote": money(job.quote),
        "promised_on": job.promised_on,
        "status": job.status.value,
        "stage": {"key": job.stage.key, "label": job.stage.label, "entered_at": job.stage.entered_at},
        "version": job.version,
        "status_page_url": job.public_url,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "closed_at": job.closed_at,
        "actual_cost": money(job.actual_cost),
        "estimate": None
        if estimate is None
        else {
            "completion": {"p50": estimate.completion_p50, "p90": estimate.completion_p90},
            "cost": {"p50": money(estimate.cost_p50), "p90": money(estimate.cost_p90)},
            "basis": estimate.basis,
            "overdue": estimate.overdue,
            "at_risk": estimate.at_risk,
            "over_budget": estimate.over_budget,
            "stuck": estimate.stuck,
            "computed_at": estimate.computed_at,
        },
    }
    converted: dict[str, Any] = msgspec.to_builtins(document)
    return converted


@dataclass(frozen=True, slots=True)
class _Row:
    """A claimed outbox row, as the claim returned it."""

    id: int
    dedupe_key: str
    channel: str
    kind: str
    target: str
    event_id: int | None
    job_id: int | None
    contact_id: int | None
    endpoint_id: int | None
    address: str | None
    attempts: int
    created_at: datetime
    payload: str | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> _Row:
        return cls(**{**row, "created_at": _instant(row["created_at"])})


@dataclass(slots=True)
class _Result:
    """One attempt's result waiting to be written with others; `recorded` tells its caller whether its
    claim still held the row."""

    id: int
    claim: str
    attempts: int
    status: str
    available_at: datetime | None
    sent_at: datetime | None
    last_error: str | None
    endpoint_id: int | None
    attempted_at: datetime
    outcome: str
    status_code: int | None
    latency_ms: float
    error: str | None
    response_excerpt: str | None
    recorded: asyncio.Future[bool]


class DatabaseDeliveryStore:
    """`notifications.DeliveryStore` over the `delivery` table; every call is one short transaction.

    A claim sets `claim` (a fresh token) and moves `available_at` to the lease's end, so a claim held by a
    process that died is simply due again when its lease ends. Every later change of a row names the
    claim it holds (compare-and-set): a result that comes after the row was claimed again changes nothing.

    Results are written in batches: a result waits up to `result_linger` seconds for others to finish,
    and all go in one statement (a statement per sent message cost more than composing it).
    """

    def __init__(
        self,
        composer: EmailComposer,
        snapshots: JobSnapshots,
        *,
        staff_addresses: Sequence[str] = (),
        defer_on_error: timedelta = timedelta(minutes=5),
        result_linger: float = 0.05,
    ) -> None:
        self._composer = composer
        self._snapshots = snapshots
        self._staff_addresses = tuple(address.lower() for address in staff_addresses)
        self._defer_on_error = defer_on_error
        self._claimed: dict[tuple[str, str], _Row] = {}
        self._result_linger = result_linger
        self._results: list[_Result] = []
        self._results_full = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ claiming

    async def claim_due(
        self,
        limit: int,
        lease_until: datetime,
        now: datetime,
        per_target: int,
        skip_targets: Collection[str],
    ) -> Sequence[Delivery]:
        claim, rows = await self._claim(limit, lease_until, now, per_target, sorted(skip_targets))
        deliveries: list[Delivery] = []
        webhooks = [row for row in rows if row.channel == "webhook"]
        for row, message, endpoint in await self._webhook_messages(webhooks, claim, now):
            deliveries.append(self._handed_out(row, claim, message, endpoint))
        emails = [row for row in rows if row.channel == "email"]
        for row, plan in zip(emails, await self._plans(emails, now), strict=True):
            delivery = await self._email(row, plan, claim, now)
            if delivery is not None:
                deliveries.append(delivery)
        return deliveries

    async def _claim(
        self, limit: int, lease_until: datetime, now: datetime, per_target: int, skip: list[str]
    ) -> tuple[str, list[_Row]]:
        """Claim due rows under a fresh claim token; the token and the rows, by id."""
        claim = uuid.uuid4().hex
        connection = get_connection("default")
        postgres = is_postgres(connection)
        scan = max(limit * SCAN_FACTOR, limit + per_target)
        values: list[Any]
        if postgres:
            values = [now, skip, scan, per_target, limit, claim, lease_until]
        else:  # in the order the marks appear
            at, until = _sqlite_time(now), _sqlite_time(lease_until)
            values = [claim, until, at, *skip, scan, per_target, limit, at]
        # One statement, atomic as it is: an explicit transaction would add two round trips.
        claimed = await connection.execute_query_dict(_claim_sql(postgres, len(skip)), values)
        return claim, sorted((_Row.of(row) for row in claimed), key=lambda row: row.id)

    def _handed_out(
        self,
        row: _Row,
        claim: str,
        message: WebhookMessage | OutgoingEmail,
        endpoint: WebhookEndpoint | None = None,
    ) -> Delivery:
        self._claimed[(str(row.id), claim)] = row
        health, rate = None, None
        if endpoint is not None:
            health = TargetHealth(endpoint.failing_since, warned=endpoint.warned_at is not None)
            # Stored before rates had a floor, a slower one is held to it.
            rate = Rate(max(endpoint.rate_per_second, MIN_PER_SECOND)) if endpoint.rate_per_second else None
        return Delivery(
            id=str(row.id),
            target=row.target,
            message=message,
            attempts_made=row.attempts,
            claim=claim,
            target_health=health,
            rate=rate,
        )

    async def _webhook_messages(
        self, rows: list[_Row], claim: str, now: datetime
    ) -> list[tuple[_Row, WebhookMessage, WebhookEndpoint]]:
        """The signed request of each claimed webhook row; rows whose job was deleted since are dead."""
        if not rows:
            return []
        endpoints = {e.id: e for e in await WebhookEndpoint.filter(id__in={r.endpoint_id for r in rows})}
        fresh = [row for row in rows if row.payload is None]
        events = {e.id: e for e in await JobEvent.filter(id__in={r.event_id for r in fresh if r.event_id})}
        jobs = {j.id: j for j in await Job.filter(id__in={r.job_id for r in fresh if r.job_id})}
        snapshots = {job_id: await self._snapshots.of(job) for job_id, job in jobs.items()}
        messages = []
        built: dict[int, bytes] = {}
        for row in rows:
            endpoint = endpoints.get(row.endpoint_id or 0)
            if endpoint is None:
                continue  # deleted since the claim: its rows went with it
            if row.payload is not None:
                body = row.payload.encode()
            elif row.kind == TEST_KIND:
                test_data = webhook_test_data(endpoint.id)
                body = built[row.id] = encode_payload(webhook_type_of(row.kind), row.created_at, test_data)
            else:
                event = events.get(row.event_id or 0)
                if event is None or event.job_id not in snapshots:
                    await self._finish(row.id, claim, "dead", error=JOB_GONE)
                    continue
                data = {"job": webhook_job(snapshots[event.job_id]), "change": event.data}
                body = built[row.id] = encode_payload(webhook_type_of(row.kind), event.occurred_at, data)
            secrets: tuple[str, ...] = (endpoint.secret,)
            if (
                endpoint.previous_secret
                and endpoint.previous_secret_until
                and endpoint.previous_secret_until > now
            ):
                secrets += (endpoint.previous_secret,)
            message = WebhookMessage(webhook_message_id(row.dedupe_key), endpoint.url, body, secrets)
            messages.append((row, message, endpoint))
        await _keep_payloads(built)
        return messages

    async def _plans(self, rows: list[_Row], now: datetime) -> Sequence[EmailPlan | Exception]:
        """The composer's plan for each claimed email row, composed as one batch."""
        if not rows:
            return []
        queued = [
            QueuedEmail(
                id=row.id,
                kind=row.kind,
                event_id=row.event_id,
                job_id=row.job_id,
                contact_id=row.contact_id,
                address=row.address,
                attempts=row.attempts,
                created_at=row.created_at,
            )
            for row in rows
        ]
        try:
            return await self._composer.compose_batch(queued, now)
        except Exception as error:  # the whole batch failed (e.g. a read): each row is tried again later
            return [error] * len(rows)

    async def _email(
        self, row: _Row, plan: EmailPlan | Exception, claim: str, now: datetime
    ) -> Delivery | None:
        if isinstance(plan, Exception):
            log.error("composing email delivery %s failed; trying again later", row.id, exc_info=plan)
            await self._release_row(row.id, claim, now + self._defer_on_error)
            return None
        match plan:
            case DeferEmail(until=until):
                await self._release_row(row.id, claim, until)
                return None
            case SkipEmail(reason=reason):
                await self._finish(row.id, claim, "skipped", error=reason)
                return None
            case ComposedEmail(message=message, folded=folded):
                if folded:
                    await (
                        DeliveryRow.filter(id__in=folded, status="queued")
                        .exclude(id=row.id)
                        .update(status="folded", claim=None, last_error=f"sent within delivery {row.id}")
                    )
                return self._handed_out(row, claim, message)

    # ------------------------------------------------------------------ results

    def _row(self, delivery: Delivery) -> _Row | None:
        return self._claimed.pop((delivery.id, delivery.claim), None)

    async def _record(
        self,
        delivery: Delivery,
        attempt: Attempt,
        now: datetime,
        *,
        status: str,
        available_at: datetime | None = None,
        sent_at: datetime | None = None,
        last_error: str | None = None,
    ) -> bool:
        """Move the row on while `delivery.claim` still holds it, and keep the attempt; atomically. False
        (and nothing written) when the claim was lost. Returns once written, with the results that
        finished about the same time."""
        row = self._row(delivery)
        result = _Result(
            id=int(delivery.id),
            claim=delivery.claim,
            attempts=delivery.attempts_made + 1,
            status=status,
            available_at=available_at,
            sent_at=sent_at,
            last_error=last_error,
            endpoint_id=row.endpoint_id if row else _endpoint_id(delivery.target),
            attempted_at=now,
            outcome=attempt.outcome.value,
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            error=_cut(attempt.error, 500),
            response_excerpt=_cut(attempt.response_excerpt, EXCERPT_BYTES),
            recorded=asyncio.get_running_loop().create_future(),
        )
        self._results.append(result)
        if len(self._results) >= RESULT_BATCH:
            self._results_full.set()
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_results(), name="outbox-results")
        # Shielded: a caller stopped while it waits leaves the batch to the others.
        if not await asyncio.shield(result.recorded):
            return False
        channel = "webhook" if delivery.target.startswith("webhook:") else "email"
        DELIVERY_RESULTS.labels(channel, "failed" if status == "queued" else status).inc()
        if status == "sent" and row is not None:
            EVENT_TO_DELIVERY.labels(channel).observe(max(0.0, (now - row.created_at).total_seconds()))
        return True

    async def _write_results(self) -> None:
        """Wait up to the linger for a full batch, then write batches until no result waits."""
        batch: list[_Result] = []
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._result_linger):
                    await self._results_full.wait()
            while self._results:
                batch, self._results = self._results[:RESULT_BATCH], self._results[RESULT_BATCH:]
                self._results_full.clear()
                try:
                    written = await self._write(batch)
                except Exception as error:
                    for result in batch:
                        _settle(result.recorded, error)
                else:
                    for result in batch:
                        _settle(result.recorded, (result.id, result.claim) in written)
        except BaseException as error:  # cancelled: nobody may wait for ever
            for result in [*batch, *self._results]:
                _settle(result.recorded, error)
            self._results = []
            raise
        finally:
            self._writer = None

    async def _write(self, batch: list[_Result]) -> set[tuple[int, str]]:
        """Write `batch` in one transaction; the (id, claim) of the results whose claim still held."""
        connection = get_connection("default")
        if is_postgres(connection):
            columns = [[getattr(result, name) for result in batch] for name, _ in _RESULT_COLUMNS]
            written = await connection.execute_query_dict(_RECORD_POSTGRES, columns)
            return {(row["id"], row["claim"]) for row in written}
        held = set()
        async with in_transaction():
            for result in batch:
                changes: dict[str, Any] = {
                    "status": result.status,
                    "sent_at": result.sent_at,
                    "last_error": result.last_error,
                }
                if result.available_at is not None:
                    changes["available_at"] = result.available_at
                if await DeliveryRow.filter(id=result.id, claim=result.claim).update(
                    claim=None, attempts=result.attempts, **changes
                ):
                    held.add((result.id, result.claim))
            await DeliveryAttempt.bulk_create(
                [
                    DeliveryAttempt(
                        delivery_id=result.id,
                        endpoint_id=result.endpoint_id,
                        attempted_at=result.attempted_at,
                        outcome=result.outcome,
                        status_code=result.status_code,
                        latency_ms=result.latency_ms,
                        error=result.error,
                        response_excerpt=result.response_excerpt,
                    )
                    for result in batch
                    if (result.id, result.claim) in held
                ]
            )
        return held

    async def mark_sent(self, delivery: Delivery, attempt: Attempt, now: datetime) -> None:
        await self._record(delivery, attempt, now, status="sent", sent_at=now)

    async def mark_retry(
        self, delivery: Delivery, attempt: Attempt, next_attempt_at: datetime, now: datetime
    ) -> None:
        await self._record(
            delivery, attempt, now, status="queued", available_at=next_attempt_at, last_error=_error(attempt)
        )

    async def mark_dead(self, delivery: Delivery, attempt: Attempt, now: datetime) -> None:
        await self._record(delivery, attempt, now, status="dead", last_error=_error(attempt))

    async def mark_bounced(self, delivery: Delivery, attempt: Attempt, now: datetime) -> None:
        error = _error(attempt)
        if not await self._record(delivery, attempt, now, status="bounced", last_error=error):
            return
        address = delivery.target.removeprefix("email:")
        async with in_transaction():
            await Suppression.bulk_create(
                [Suppression(address=address, reason=f"bounced: {error}"[:500], created_at=now)],
                ignore_conflicts=True,
            )
            # What is queued for it now would bounce too; a send in flight loses its claim.
            await DeliveryRow.filter(target=delivery.target, status="queued").update(
                status="skipped", claim=None, last_error="the address is suppressed"
            )

    async def release(self, delivery: Delivery, available_at: datetime) -> None:
        self._row(delivery)
        await self._release_row(int(delivery.id), delivery.claim, available_at)

    async def _release_row(self, delivery_id: int, claim: str, available_at: datetime) -> None:
        await DeliveryRow.filter(id=delivery_id, claim=claim).update(claim=None, available_at=available_at)

    async def _finish(self, delivery_id: int, claim: str, status: str, *, error: str) -> None:
        """End a claimed row without an attempt (there is nothing to send)."""
        await DeliveryRow.filter(id=delivery_id, claim=claim).update(
            status=status, claim=None, last_error=_cut(error, 500)
        )

    async def reserve_rate(
        self, delivery: Delivery, rate: Rate, now: datetime, max_wait: float
    ) -> Reservation:
        """The endpoint's bucket lives on its row, taken under a row lock, so every process sending to it
        shares the rate."""
        self._row(delivery)
        moment = now.timestamp()
        async with in_transaction():
            endpoint = (
                await WebhookEndpoint.select_for_update()
                .only("id", "rate_tokens", "rate_counted_at")
                .get_or_none(id=_endpoint_id(delivery.target))
            )
            if endpoint is None or endpoint.rate_tokens is None or endpoint.rate_counted_at is None:
                bucket = TokenBucket.full(rate, moment)
            else:
                bucket = TokenBucket(rate, endpoint.rate_tokens, endpoint.rate_counted_at)
            reservation = bucket.reserve(moment, max_wait)
            if endpoint is not None and reservation.granted:
                await WebhookEndpoint.filter(id=endpoint.id).update(
                    rate_tokens=reservation.bucket.tokens, rate_counted_at=reservation.bucket.updated
                )
        return reservation

    async def update_target(self, target: str, verdict: TargetVerdict, now: datetime) -> None:
        endpoint_id = _endpoint_id(target)
        if endpoint_id is None:
            return
        health = verdict.health
        changes: dict[str, Any] = {
            "failing_since": health.failing_since,
            "warned_at": None if not health.warned else now,
            "updated_at": now,
            "version": F("version") + 1,
        }
        endpoint = await WebhookEndpoint.get_or_none(id=endpoint_id)
        if endpoint is None:
            return
        if health.warned and endpoint.warned_at is not None:
            changes["warned_at"] = endpoint.warned_at
        kind = None
        if verdict.action is TargetAction.WARN:
            kind = "endpoint_warning"
        elif verdict.action is TargetAction.DISABLE:
            kind = "endpoint_disabled"
            failing_for = now - (health.failing_since or now)
            changes["status"] = "disabled"
            changes["disabled_reason"] = (
                f"failing since {health.failing_since:%Y-%m-%d %H:%M} UTC"
                if failing_for >= DISABLE_AFTER
                else "the endpoint answered 410 Gone"
            )
        async with in_transaction():
            await WebhookEndpoint.filter(id=endpoint_id).update(**changes)
            if kind is not None:
                await self._tell_staff(endpoint_id, kind, now)
        if kind is not None:
            log.warning("webhook endpoint %s: %s", endpoint_id, kind)

    async def _tell_staff(self, endpoint_id: int, kind: str, now: datetime) -> None:
        stamp = int(now.timestamp())
        await DeliveryRow.bulk_create(
            [
                queued_email(
                    f"w{endpoint_id}:{kind}:{stamp}:{address}", kind, address, now, endpoint_id=endpoint_id
                )
                for address in self._staff_addresses
            ],
            ignore_conflicts=True,
        )

    # ------------------------------------------------------------------ metrics

    async def count_queued(self) -> None:
        """Refresh the gauge of queued deliveries per channel (one grouped count)."""
        counts = {"email": 0, "webhook": 0}
        rows = DeliveryRow.filter(status="queued").group_by("channel").annotate(n=Count("id"))
        for channel, n in await rows.values_list("channel", "n"):
            counts[str(channel)] = int(n)
        for channel, n in counts.items():
            DELIVERIES_QUEUED.labels(channel).set(n)


DeliveryChannel = Literal["email", "webhook"]
DeliveryStatus = Literal["queued", "sent", "dead", "bounced", "folded", "skipped"]
"""As `tracker.db.models.Delivery` describes them."""


@dataclass(frozen=True, slots=True)
class NotificationItem:
    """One delivery about a job, as staff review what was sent and how it went."""

    id: int
    channel: DeliveryChannel
    kind: str
    contact_id: int | None
    endpoint_id: int | None
    address: str | None
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    due_at: datetime | None
    sent_at: datetime | None


async def job_notifications(job_id: int, *, after: int | None, limit: int) -> list[NotificationItem]:
    """The deliveries about a job, oldest first, from the one after `after` (along the (job_id, id) index)."""
    rows = DeliveryRow.filter(job_id=job_id)
    if after is not None:
        rows = rows.filter(id__gt=after)
    return [
        NotificationItem(
            id=row.id,
            channel=cast(DeliveryChannel, row.channel),
            kind=row.kind,
            contact_id=row.contact_id,
            endpoint_id=row.endpoint_id,
            address=row.address or (row.target.removeprefix("email:") if row.channel == "email" else None),
            status=cast(DeliveryStatus, row.status),
            attempts=row.attempts,
            last_error=row.last_error,
            created_at=row.created_at,
            due_at=row.available_at if row.status == "queued" and row.claim is None else None,
            sent_at=row.sent_at,
        )
        for row in await rows.order_by("id").limit(limit)
    ]


async def _keep_payloads(bodies: Mapping[int, bytes]) -> None:
    """Fix the body of each delivery built for the first time (one statement): its retries and replays
    send it again as it is. A body another process fixed first stays."""
    if not bodies:
        return
    connection = get_connection("default")
    postgres = is_postgres(connection)
    values: list[Any] = []
    cases = []
    for delivery_id, body in bodies.items():
        values += [delivery_id, body.decode()]
        cases.append(f"WHEN ${len(values) - 1} THEN ${len(values)}" if postgres else "WHEN ? THEN ?")
    ids = ", ".join(f"${len(values) + n + 1}" if postgres else "?" for n in range(len(bodies)))
    values += list(bodies)
    await connection.execute_query(
        f"UPDATE delivery SET payload = CASE id {' '.join(cases)} END "  # noqa: S608 (placeholders only)
        f"WHERE id IN ({ids}) AND payload IS NULL",
        values,
    )


def _endpoint_id(target: str) -> int | None:
    prefix, _, rest = target.partition(":")
    return int(rest) if prefix == "webhook" and rest.isdigit() else None


def _error(attempt: Attempt) -> str:
    return (attempt.error or f"status {attempt.status_code}")[:500]


def _cut(text: str | None, limit: int) -> str | None:
    return None if text is None else text[:limit]


def _settle(future: asyncio.Future[bool], outcome: bool | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
