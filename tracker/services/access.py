"""What each role may read: the one place the read side of least privilege is decided.

Admin and staff read everything about a job. An integrator reads a job as a webhook would carry it: the
job, its stages, estimates and public notes, but no internal note and no cost entry. Accounts, contacts,
API keys and the audit log are not job data: their controllers admit staff or admin only.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from tracker.services.keys import Role


class Readable(StrEnum):
    JOBS = "jobs"
    """Jobs with their stage visits, estimates, history and public notes."""
    WORKFLOWS = "workflows"
    INTERNAL_NOTES = "internal notes"
    COST_ENTRIES = "cost entries"


READABLE: Mapping[Role, frozenset[Readable]] = MappingProxyType(
    {
        Role.ADMIN: frozenset(Readable),
        Role.STAFF: frozenset(Readable),
        Role.INTEGRATOR: frozenset({Readable.JOBS, Readable.WORKFLOWS}),
    }
)


def may_read(role: Role, what: Readable) -> bool:
    return what in READABLE[role]


def shows_note(role: Role, visibility: str) -> bool:
    return visibility == "public" or may_read(role, Readable.INTERNAL_NOTES)


def shows_event(role: Role, event_type: str, data: Mapping[str, Any]) -> bool:
    """Whether a job event reaches this role: events about hidden notes or costs do not."""
    if event_type == "cost_added":
        return may_read(role, Readable.COST_ENTRIES)
    if event_type == "note_added":
        return shows_note(role, str(data.get("visibility")))
    return True
