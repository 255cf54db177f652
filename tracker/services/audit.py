"""The audit log: what an admin removed for good, written in the same transaction as the removal.

Its rows reference nothing, so they outlive what they describe; nothing deletes them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from tracker.db.models import AuditEntry
from tracker.services.pages import Page, Sort, paginate


class AuditAction(StrEnum):
    JOB_DELETED = "job_deleted"


async def record(
    action: AuditAction, *, subject: str, reason: str, detail: dict[str, Any], actor: str, now: datetime
) -> AuditEntry:
    """Call inside the transaction of the change it records."""
    return await AuditEntry.create(
        occurred_at=now, actor=actor, action=action.value, subject=subject, reason=reason, detail=detail
    )


async def list_entries(*, limit: int, cursor: str | None) -> Page[AuditEntry]:
    """Newest first."""
    return await paginate(AuditEntry.all(), Sort.NEWEST, limit=limit, cursor=cursor)
