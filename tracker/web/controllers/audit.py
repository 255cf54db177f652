"""Admin API for the audit log: what was removed for good, by whom, when and why."""

from __future__ import annotations

from litestar import Controller, get

from tracker.services import audit
from tracker.services.keys import Role
from tracker.web import schemas as s, views
from tracker.web.auth import requires
from tracker.web.deps import PageCursor, PageLimit


class AuditController(Controller):
    path = "/audit"
    tags = ["Audit log"]
    guards = [requires(Role.ADMIN)]

    @get(operation_id="ListAuditEntries")
    async def list_entries(
        self,
        limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> s.AuditList:
        """The audit log, newest first (deleted jobs: reference, who, when and the reason given)."""
        page = await audit.list_entries(limit=limit, cursor=cursor)
        return s.AuditList(items=[views.audit_entry_out(e) for e in page.items], next_cursor=page.next_cursor)
