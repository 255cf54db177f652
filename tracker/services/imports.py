"""Import finished cases of an event log as a workflow's history, so estimates are good from day one.

Each case becomes a completed job whose stage visits end at the case's events (a visit starts at the event
before), each left by the event's resource when the log names one. Importing the same log again adds
nothing: a case keeps its reference (`IMP-<case id>`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tortoise.transactions import in_transaction

from tracker.db.models import Account, CostEntry, Job, StageVisit, Workflow
from tracker.domain.errors import InvalidInput, NotFound
from tracker.domain.events import EventType, ImportedPayload, NewEvent
from tracker.domain.money import Money
from tracker.domain.workflow import JobStatus
from tracker.estimates.eventlog import EventLog
from tracker.services.events import HISTORY_ONLY, record_events
from tracker.services.jobs import new_job_row
from tracker.services.workflows import load_version

ACTOR = "import:history"
ACCOUNT_NAME = "Imported history"
CHUNK = 500


@dataclass(frozen=True)
class ImportReport:
    cases: int
    visits: int
    skipped: int
    """Cases imported before (same reference), left as they were."""


async def history_account(*, now: datetime) -> Account:
    """The account that holds past jobs brought in to learn from (it has no contact: nobody is told
    about them), created the first time."""
    account = await Account.get_or_none(name=ACCOUNT_NAME, kind="institutional")
    if account is None:
        account = await Account.create(
            kind="institutional", name=ACCOUNT_NAME, created_at=now, updated_at=now
        )
    return account


async def import_history(
    log: EventLog, workflow_key: str, *, mapping: Mapping[str, str], now: datetime
) -> ImportReport:
    workflow = await Workflow.get_or_none(key=workflow_key, is_current=True)
    if workflow is None:
        raise NotFound("workflow", workflow_key)
    version = await load_version(workflow.id)
    stage_keys = {stage.key for stage in version.definition.stages}
    stage_of_activity = [mapping.get(name, name) for name in log.activity_names]
    unknown = sorted(
        {
            name
            for name, stage in zip(log.activity_names, stage_of_activity, strict=True)
            if stage not in stage_keys
        }
    )
    if unknown:
        raise InvalidInput(
            "map",
            f"activities with no stage in {workflow_key!r}: {', '.join(unknown[:20])}; "
            "map them with --map ACTIVITY=STAGE",
        )
    account = await history_account(now=now)
    starts = log.case_start
    handled_by = _handlers(log)
    imported = visits_written = skipped = 0
    for first in range(0, log.n_cases, CHUNK):
        cases = range(first, min(first + CHUNK, log.n_cases))
        references = {f"IMP-{log.case_names[c]}"[:64]: c for c in cases}
        existing = {
            str(ref)
            for ref in await Job.filter(reference__in=list(references)).values_list("reference", flat=True)
        }
        skipped += len(existing)
        fresh = {ref: c for ref, c in references.items() if ref not in existing}
        if not fresh:
            continue
        async with in_transaction():
            jobs = []
            for reference, c in fresh.items():
                lo, hi = int(starts[c]), int(starts[c + 1])
                begin, end = _at(log.time[lo]), _at(log.time[hi - 1])
                cost = Decimal(0) if log.cost is None else Decimal(repr(float(log.cost[lo:hi].sum())))
                jobs.append(
                    new_job_row(
                        reference=reference,
                        account_id=account.id,
                        workflow_id=workflow.id,
                        title=f"Imported case {log.case_names[c]}"[:300],
                        quote=Money(cost, version.currency),
                        status=JobStatus.COMPLETED,
                        stage_key=stage_of_activity[log.activity[hi - 1]],
                        stage_entered_at=_at(log.time[max(hi - 2, lo)]),
                        created_at=begin,
                        updated_at=end,
                        closed_at=end,
                        stages_completed=hi - lo,
                        actual_cost=cost,
                    )
                )
            await Job.bulk_create(jobs)
            ids = dict(await Job.filter(reference__in=list(fresh)).values_list("reference", "id"))
            visits, entries = [], []
            events: list[NewEvent] = []
            for reference, c in fresh.items():
                job_id = ids[reference]
                lo, hi = int(starts[c]), int(starts[c + 1])
                for i in range(lo, hi):
                    entered = _at(log.time[max(i - 1, lo)])
                    stage = stage_of_activity[log.activity[i]]
                    visits.append(
                        StageVisit(
                            job_id=job_id,
                            stage_key=stage,
                            entered_at=entered,
                            left_at=_at(log.time[i]),
                            entered_by=handled_by[i - 1] if i > lo else ACTOR,
                            left_by=handled_by[i],
                        )
                    )
                    if log.cost is not None and log.cost[i]:
                        entries.append(
                            CostEntry(
                                job_id=job_id,
                                kind="labour",
                                amount=Decimal(repr(float(log.cost[i]))),
                                currency=version.currency,
                                stage_key=stage,
                                note="imported",
                                created_at=_at(log.time[i]),
                                created_by=ACTOR,
                            )
                        )
                payload: ImportedPayload = {"case": log.case_names[c], "events": hi - lo}
                events.append(NewEvent(job_id, 1, EventType.IMPORTED, payload, ACTOR, now))
            await StageVisit.bulk_create(visits)
            await CostEntry.bulk_create(entries)
            await record_events(events, HISTORY_ONLY)
        imported += len(fresh)
        visits_written += len(visits)
    return ImportReport(imported, visits_written, skipped)


def _handlers(log: EventLog) -> list[str]:
    """Who finished each event: its resource, or the import itself where the log names nobody."""
    if log.resource is None:
        return [ACTOR] * log.n_events
    names = [name[:100] or ACTOR for name in log.resource_names]  # the column holds 100 characters
    return [names[r] for r in log.resource.tolist()]


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(float(epoch), UTC)
