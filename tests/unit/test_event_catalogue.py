"""The closed sets of the job domain: statuses, 'open', and the event types with their payloads."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from tracker.domain.events import EVENT_PAYLOADS, WEBHOOK_TYPES, EventType, NewEvent
from tracker.domain.workflow import CLOSED_STATUSES, OPEN_STATUSES, JobStatus, TransitionKind
from tracker.services.events import check_payload
from tracker.services.webhooks import TEST_TYPE
from tracker.web.event_types import CATALOGUE, catalogue

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


def test_a_job_on_hold_is_still_open_and_a_finished_one_is_not():
    assert {status for status in JobStatus if status.is_open} == {JobStatus.OPEN, JobStatus.ON_HOLD}
    assert set(JobStatus) == OPEN_STATUSES | CLOSED_STATUSES
    assert not OPEN_STATUSES & CLOSED_STATUSES


def test_every_event_type_declares_its_payload():
    assert set(EVENT_PAYLOADS) == set(EventType)


def test_every_transition_is_an_event_type_of_the_same_name():
    for kind in TransitionKind:
        assert EventType.of_transition(kind).value == kind.value


@pytest.mark.parametrize("event_type", list(EventType))
def test_each_event_type_publishes_a_json_schema_of_its_payload(event_type: EventType):
    schema = msgspec.json.schema(EVENT_PAYLOADS[event_type])
    definitions = schema["$defs"]
    [payload] = [d for name, d in definitions.items() if schema["$ref"].endswith(f"/{name}")]
    assert payload["type"] == "object"
    assert payload["properties"]


def test_the_schema_of_a_transition_names_where_the_job_came_from_and_went():
    schema = msgspec.json.schema(EVENT_PAYLOADS[EventType.ADVANCE])
    payload = schema["$defs"]["TransitionPayload"]
    assert set(payload["required"]) == {"from", "to", "reason", "forced"}
    assert schema["$defs"]["PositionPayload"]["required"] == ["stage", "status"]


def event(event_type: EventType, payload: dict[str, object]) -> NewEvent:
    return NewEvent(1, 2, event_type, payload, "staff:test", NOW)


def test_a_payload_shaped_as_its_type_declares_is_accepted():
    check_payload(event(EventType.NOTE_ADDED, {"visibility": "public", "body": "Parts arrived"}))
    check_payload(event(EventType.UPDATED, {"title": "Brake discs and pads"}))


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        (EventType.NOTE_ADDED, {"visibility": "public"}),
        (EventType.NOTE_ADDED, {"visibility": "public", "body": 3}),
        (EventType.CREATED, {"reference": "J-1"}),
        (EventType.STUCK, {"type": "stuck", "old": "a", "new": 1.0, "stage_visit_id": "1:0"}),
    ],
)
def test_a_payload_that_strays_from_the_catalogue_is_refused(
    event_type: EventType, payload: dict[str, object]
):
    with pytest.raises(ValueError, match=event_type.value):
        check_payload(event(event_type, payload))


def test_the_webhook_catalogue_describes_every_webhook_type_with_a_change_its_event_would_write():
    published = sorted({*WEBHOOK_TYPES.values(), TEST_TYPE})

    assert [entry.type for entry in catalogue()] == published
    for name, entry in CATALOGUE.items():
        assert WEBHOOK_TYPES[entry.event] == name
        check_payload(NewEvent(1, 1, entry.event, entry.change, "staff:test", NOW))
