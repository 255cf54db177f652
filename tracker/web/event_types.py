"""The webhook catalogue (`GET /event-types`): per webhook type, what it means, a JSON Schema of its `data`
and a whole example request body.

A request's `data` is `{"job": <the job as GET /jobs/{id} shows it>, "change": <the event's payload>}`;
the change is declared once, in `tracker.domain.events.EVENT_PAYLOADS`, and the job is `JobOut`, so the
schemas here follow both. `webhook.test` carries `tracker.services.webhooks.WebhookTestData` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

import msgspec

from tracker.domain.events import EVENT_PAYLOADS, EventType
from tracker.domain.workflow import JobStatus
from tracker.services.webhooks import TEST_TYPE, WebhookTestData, webhook_test_data
from tracker.web import schemas as s

EXAMPLE_TIME = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)


def _at(hour: int, day: int = 1) -> datetime:
    return datetime(2026, 12, day, hour, tzinfo=UTC)


def _money(amount: str) -> s.MoneyOut:
    return s.MoneyOut(amount=amount, currency="EUR")


EXAMPLE_JOB = s.JobOut(
    id=42,
    reference="J-2026-7KQ4MZ",
    account_id=7,
    workflow=s.WorkflowRef(key="car-repair", version=3),
    title="Brake discs and pads",
    quote=_money("640.00"),
    promised_on=date(2026, 12, 4),
    status=JobStatus.OPEN,
    stage=s.StageRef(key="repair", label="Repair", entered_at=_at(14)),
    version=5,
    status_page_url="https://status.example.com/status/Xq3v9TtW0bq2",
    created_at=_at(8, day=1),
    updated_at=_at(14),
    closed_at=None,
    actual_cost=_money("86.40"),
    estimate=s.EstimateOut(
        completion=s.RangeOut(p50=_at(16, day=3), p90=_at(11, day=4)),
        cost=s.MoneyRangeOut(p50=_money("610.00"), p90=_money("702.50")),
        basis="blend",
        overdue=False,
        at_risk=False,
        over_budget=False,
        stuck=False,
        computed_at=_at(14),
    ),
)


def _move(
    from_stage: str, to_stage: str, from_status: str = "open", to_status: str = "open"
) -> dict[str, Any]:
    return {
        "from": {"status": from_status, "stage": from_stage},
        "to": {"status": to_status, "stage": to_stage},
        "reason": None,
        "forced": False,
    }


@dataclass(frozen=True)
class Entry:
    event: EventType
    """The event whose payload is the `change` (the first, when several go out as this type)."""
    description: str
    change: Mapping[str, Any]


CATALOGUE: Mapping[str, Entry] = {
    "job.created": Entry(
        EventType.CREATED,
        "A job was opened for one of your accounts.",
        {
            "reference": "J-2026-7KQ4MZ",
            "workflow": {"key": "car-repair", "version": 3},
            "stage": "intake",
            "quote": {"amount": "640.00", "currency": "EUR"},
            "promised_on": "2026-12-04",
        },
    ),
    "job.stage_changed": Entry(
        EventType.ADVANCE,
        "The job moved to another stage: the next one, or another one chosen by staff.",
        _move("intake", "repair"),
    ),
    "job.on_hold": Entry(
        EventType.HOLD,
        "The job was put on hold; `reason` says why.",
        {**_move("repair", "repair", to_status="on_hold"), "reason": "Waiting for the customer's approval"},
    ),
    "job.resumed": Entry(EventType.RESUME, "A job on hold goes on.", _move("repair", "repair", "on_hold")),
    "job.note_added": Entry(
        EventType.NOTE_ADDED,
        "Staff added a public note (internal notes are never sent).",
        {"visibility": "public", "body": "The old pads go back to the customer."},
    ),
    "job.completed": Entry(
        EventType.COMPLETE, "The job is done.", _move("ready", "ready", to_status="completed")
    ),
    "job.cancelled": Entry(
        EventType.CANCEL,
        "The job was cancelled; `reason` says why.",
        {**_move("repair", "repair", to_status="cancelled"), "reason": "Customer went elsewhere"},
    ),
    "job.reopened": Entry(
        EventType.REOPEN,
        "A completed or cancelled job was opened again.",
        {**_move("ready", "ready", "completed"), "reason": "The noise came back"},
    ),
    "job.eta_changed": Entry(
        EventType.ETA_MOVED,
        "The expected completion (P50) moved from the one last announced by more than the threshold.",
        {
            "type": "eta_moved",
            "old": "2026-12-03T12:00:00+00:00",
            "new": "2026-12-03T16:00:00+00:00",
            "moved_working_s": 14400.0,
            "threshold_working_s": 7200.0,
        },
    ),
    "job.cost_changed": Entry(
        EventType.COST_MOVED,
        "The projected cost (P50) moved from the amount last announced.",
        {"type": "cost_moved", "old": "560.00", "new": "610.00", "change_fraction": 0.0893},
    ),
    "job.at_risk": Entry(
        EventType.AT_RISK,
        "The job may miss its promised date: its P90 completion is after the end of that day.",
        {
            "type": "at_risk",
            "old": "2026-12-04T18:00:00+00:00",
            "new": "2026-12-05T11:00:00+00:00",
            "late_by_working_s": 10800.0,
        },
    ),
    "job.back_on_track": Entry(
        EventType.BACK_ON_TRACK,
        "A job that was at risk should meet its promised date again.",
        {
            "type": "back_on_track",
            "old": "2026-12-04T18:00:00+00:00",
            "new": "2026-12-04T11:00:00+00:00",
            "late_by_working_s": 0.0,
        },
    ),
    "job.stuck": Entry(
        EventType.STUCK,
        "The job has been in its stage longer than nine in ten similar jobs were.",
        {"type": "stuck", "old": 28800.0, "new": 36000.0, "stage_visit_id": "42:1"},
    ),
}
"""Every published webhook type (the values of `WEBHOOK_TYPES`), described once."""

TEST_DESCRIPTION = "Sent only when you ask (POST /webhooks/{id}/test), to check your endpoint."


def _data_schema(parts: Mapping[str, type[Any]]) -> dict[str, Any]:
    """A self-contained JSON Schema of an object holding each part (definitions under `$defs`)."""
    refs, definitions = msgspec.json.schema_components(parts.values(), ref_template="#/$defs/{name}")
    return {
        "type": "object",
        "properties": dict(zip(parts, refs, strict=True)),
        "required": list(parts),
        "$defs": definitions,
    }


@cache
def catalogue() -> list[s.EventTypeOut]:
    """The catalogue, in type order; built once."""
    job = msgspec.to_builtins(EXAMPLE_JOB)
    entries = []
    for webhook_type, entry in sorted(CATALOGUE.items()):
        entries.append(
            s.EventTypeOut(
                type=webhook_type,
                description=entry.description,
                data_schema=_data_schema({"job": s.JobOut, "change": EVENT_PAYLOADS[entry.event]}),
                example=_body(webhook_type, {"job": job, "change": dict(entry.change)}),
            )
        )
    test_data: WebhookTestData = webhook_test_data(12)
    entries.append(
        s.EventTypeOut(
            type=TEST_TYPE,
            description=TEST_DESCRIPTION,
            data_schema=msgspec.json.schema(WebhookTestData),
            example=_body(TEST_TYPE, dict(test_data)),
        )
    )
    return entries


def _body(webhook_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": webhook_type, "timestamp": EXAMPLE_TIME.isoformat().replace("+00:00", "Z"), "data": data}
