"""The demo `make run` seeds: every time in it lies before the moment it was seeded, in order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifications.i18n import LANGUAGES
from tracker import demo
from tracker.db.models import Account, CostEntry, Job, JobEstimate, JobEvent, StageVisit, Workflow
from tracker.domain.workflow import JobStatus
from tracker.services.bootstrap import build_services
from tracker.settings import Settings

AWKWARD_MOMENTS = [
    pytest.param(datetime(2026, 3, 1, 20, 0, tzinfo=UTC), id="sunday-evening"),
    pytest.param(datetime(2026, 3, 2, 7, 10, tzinfo=UTC), id="monday-just-after-opening"),
]


@pytest.mark.parametrize("now", AWKWARD_MOMENTS)
async def test_the_demo_lies_in_the_past_in_order_and_counts_its_jobs_by_status(
    db: str, now: datetime
) -> None:
    statuses = await demo.seed(build_services(Settings(database_url=db)), now=now)

    assert dict(statuses) == {
        JobStatus.OPEN: 9,
        JobStatus.ON_HOLD: 1,
        JobStatus.COMPLETED: 1,
        JobStatus.CANCELLED: 1,
    }
    demo_jobs = await Job.filter(reference__startswith="DEMO-")
    assert sorted(j.status for j in demo_jobs) == sorted(s.value for s in statuses.elements())
    oldest_account = min(a.created_at for a in await Account.all())
    oldest_workflow = min(w.created_at for w in await Workflow.all())
    jobs = {job.id: job for job in await Job.all()}
    assert len(jobs) > 500
    for job in jobs.values():
        assert oldest_workflow <= oldest_account <= job.created_at, job.reference
        assert job.created_at <= job.stage_entered_at <= job.updated_at < now, job.reference
        assert job.closed_at is None or job.closed_at <= job.updated_at, job.reference
    for visit in await StageVisit.all():
        job = jobs[visit.job_id]
        assert job.created_at <= visit.entered_at <= job.updated_at, job.reference
        assert visit.left_at is None or visit.entered_at <= visit.left_at <= job.updated_at, job.reference
    for event in await JobEvent.all():
        job = jobs[event.job_id]
        assert job.created_at <= event.occurred_at <= job.updated_at, (job.reference, event.type)
    for cost in await CostEntry.all():
        assert jobs[cost.job_id].created_at <= cost.created_at < now


async def test_demo_jobs_are_estimated_from_the_learned_history_from_their_first_estimate(db: str) -> None:
    now = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
    await demo.seed(build_services(Settings(database_url=db)), now=now)

    for job in await Job.filter(reference__startswith="DEMO-"):
        first = await JobEstimate.filter(job_id=job.id).order_by("id").first()
        assert first is not None, job.reference
        assert first.basis != "planned", job.reference


async def test_customers_see_their_own_jobs_and_every_stage_in_their_language(db: str) -> None:
    await demo.seed(build_services(Settings(database_url=db)), now=datetime(2026, 3, 4, 15, 0, tzinfo=UTC))

    for account in await Account.all():
        references = [job.reference for job in await Job.filter(account_id=account.id)]
        past = [reference for reference in references if reference.startswith("H-")]
        # The past jobs the estimates learn from belong to no customer of the demo.
        assert not past or set(past) == set(references), account.name
    for definition in (demo.CAR_REPAIR, demo.KITCHEN_RENOVATION):
        for stage in definition.stages:
            assert set(stage.labels) == set(LANGUAGES), stage.key
