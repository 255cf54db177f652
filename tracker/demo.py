"""The demo shop that `make run` serves: two workflows, two accounts and a dozen jobs with history.

Everything goes through the same service functions as the API, with times in the past.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from tracker.db.models import CostEntry, Job, StageVisit, Workflow
from tracker.domain.events import EventType, NewEvent
from tracker.domain.money import Money
from tracker.domain.workflow import (
    JobPosition,
    JobStatus,
    StageDefinition,
    ThreePointEstimate,
    TransitionKind,
    WorkflowDefinition,
)
from tracker.estimates.calendar import BusinessCalendar
from tracker.services import accounts, workflows
from tracker.services.accounts import ContactFields
from tracker.services.bootstrap import Services
from tracker.services.calendars import check_calendar
from tracker.services.events import HISTORY_ONLY, record_events
from tracker.services.imports import history_account
from tracker.services.jobs import (
    NewJob,
    created_event,
    new_job_row,
    transition_payload,
)
from tracker.services.versions import ExpectedVersion

ACTOR = "staff:demo"


def _stage(
    key: str,
    en: str,
    fr: str,
    nl: str,
    de: str,
    hours: tuple[int, int, int],
    cost: int,
    capacity: int | None = None,
    visible: bool = True,
) -> StageDefinition:
    return StageDefinition(
        key=key,
        labels={"en": en, "fr": fr, "nl": nl, "de": de},
        duration=ThreePointEstimate(*(Decimal(h) for h in hours)),
        planned_cost=Decimal(cost),
        capacity=capacity,
        customer_visible=visible,
    )


CAR_REPAIR = WorkflowDefinition(
    "Car repair",
    (
        _stage(
            "intake",
            "Car received",
            "Véhicule réceptionné",
            "Auto ontvangen",
            "Fahrzeug angenommen",
            (1, 2, 4),
            0,
        ),
        _stage("diagnosis", "Diagnosis", "Diagnostic", "Diagnose", "Diagnose", (2, 4, 10), 90),
        _stage(
            "parts",
            "Waiting for parts",
            "En attente des pièces",
            "Wachten op onderdelen",
            "Warten auf Teile",
            (8, 24, 80),
            350,
        ),
        _stage("repair", "Repair", "Réparation", "Reparatie", "Reparatur", (4, 10, 24), 480, capacity=3),
        _stage(
            "quality-check",
            "Quality check",
            "Contrôle qualité",
            "Kwaliteitscontrole",
            "Qualitätskontrolle",
            (1, 2, 4),
            40,
        ),
        _stage(
            "ready",
            "Ready for pick-up",
            "Prêt à être récupéré",
            "Klaar om op te halen",
            "Abholbereit",
            (1, 8, 24),
            0,
        ),
    ),
)

KITCHEN_RENOVATION = WorkflowDefinition(
    "Kitchen renovation",
    (
        _stage(
            "survey",
            "Site survey",
            "Visite technique",
            "Opname ter plaatse",
            "Besichtigung vor Ort",
            (2, 4, 8),
            150,
        ),
        _stage("design", "Design", "Conception", "Ontwerp", "Planung", (8, 16, 40), 600),
        _stage(
            "materials",
            "Ordering materials",
            "Commande des matériaux",
            "Materialen bestellen",
            "Materialbestellung",
            (16, 40, 120),
            5200,
        ),
        _stage("demolition", "Demolition", "Démolition", "Sloop", "Abbruch", (8, 16, 24), 900),
        _stage(
            "installation",
            "Installation",
            "Installation",
            "Installatie",
            "Montage",
            (24, 40, 80),
            3800,
            capacity=2,
        ),
        _stage("finishing", "Finishing", "Finitions", "Afwerking", "Feinarbeiten", (8, 16, 32), 1100),
        _stage("handover", "Handover", "Réception des travaux", "Oplevering", "Übergabe", (1, 2, 4), 0),
    ),
)


@dataclass(frozen=True)
class DemoJob:
    workflow: str
    title: str
    quote: int
    steps: int
    """How many times the job advances after it starts."""
    ending: TransitionKind | None = None


DEMO_JOBS = [
    DemoJob("car-repair", "Peugeot 308: brakes and front discs", 640, 0),
    DemoJob("car-repair", "Renault Clio: clutch replacement", 980, 1),
    DemoJob("car-repair", "VW Golf: timing belt", 1150, 2),
    DemoJob("car-repair", "Toyota Yaris: hybrid battery check", 420, 3),
    DemoJob("car-repair", "Citroën Berlingo: bodywork after collision", 2300, 3, TransitionKind.HOLD),
    DemoJob("car-repair", "Fiat 500: annual service", 290, 4),
    DemoJob("car-repair", "Opel Corsa: air conditioning", 510, 5, TransitionKind.COMPLETE),
    DemoJob("kitchen-renovation", "Apartment 3B kitchen", 14500, 1),
    DemoJob("kitchen-renovation", "Canal house kitchen", 23800, 2),
    DemoJob("kitchen-renovation", "Office pantry, 2nd floor", 9200, 4),
    DemoJob("kitchen-renovation", "Farmhouse kitchen extension", 31000, 3, TransitionKind.CANCEL),
    DemoJob("kitchen-renovation", "Studio kitchenette", 6800, 5),
]


GARAGE_CALENDAR = {
    "country": "FR",
    "opening_hours": {
        day: [["08:00", "12:00"], ["13:30", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")
    }
    | {"sat": [["09:00", "12:00"]]},
}
BUILDER_CALENDAR = {
    "country": "NL",
    "time_zone": "Europe/Amsterdam",
    "opening_hours": {day: [["07:30", "16:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
}
HISTORY_DAYS = 420
QUIET_BEFORE_NOW = timedelta(minutes=30)
"""The last thing that happened to a demo job happened at least this long before the demo was seeded."""
REWORK = {
    "car-repair": ("quality-check", "repair", 0.15),
    "kitchen-renovation": ("finishing", "installation", 0.1),
}


def _working_hours(rng: random.Random, stage: StageDefinition) -> float:
    """A right-skewed duration: log-normal with the planned most-likely hours as median, the pessimistic
    hours near its 90th percentile."""
    median = float(stage.duration.most_likely)
    spread = max(math.log(float(stage.duration.pessimistic) / median) / 1.2816, 0.1)
    return median * math.exp(rng.gauss(0.0, spread))


async def seed_history(
    workflow_key: str, account_id: int, *, count: int, rng: random.Random, now: datetime
) -> None:
    """Finished past jobs with realistic, skewed durations and costs, so estimates learn from day one."""
    stored = await workflows.get_workflow(workflow_key)
    calendar = (await workflows.load_version(stored.row.id)).calendar
    stages = stored.definition.stages
    keys = [stage.key for stage in stages]
    rework_from, rework_to, rework_chance = REWORK[workflow_key]
    for number in range(count):
        moment = calendar.next_open(now - timedelta(days=HISTORY_DAYS * (1 - number / count) + 5))
        path: list[str] = []
        position = 0
        while position < len(keys):
            path.append(keys[position])
            if (
                keys[position] == rework_from
                and path.count(rework_from) == 1
                and rng.random() < rework_chance
            ):
                position = keys.index(rework_to)
            else:
                position += 1
        created = moment
        visits: list[StageVisit] = []
        entries: list[CostEntry] = []
        for visit_number, key in enumerate(path):
            stage = stages[keys.index(key)]
            left = calendar.add_working_seconds(moment, _working_hours(rng, stage) * 3600)
            visits.append(
                StageVisit(stage_key=key, entered_at=moment, left_at=left, entered_by=ACTOR, left_by=ACTOR)
            )
            # Past jobs kept to their quotes, give or take; rework was on the house.
            if stage.planned_cost and key not in path[:visit_number]:
                amount = (stage.planned_cost * Decimal(str(round(rng.lognormvariate(0.0, 0.2), 2)))).quantize(
                    Decimal("0.01")
                )
                entries.append(
                    CostEntry(
                        kind="labour" if number % 3 else "material",
                        amount=amount,
                        currency="EUR",
                        stage_key=key,
                        note="",
                        created_at=left,
                        created_by=ACTOR,
                    )
                )
            moment = left
        if moment >= now:
            continue
        total = sum((entry.amount for entry in entries), Decimal(0))
        planned = sum((stage.planned_cost for stage in stages), Decimal(0))
        job = new_job_row(
            reference=f"H-{workflow_key[:3].upper()}-{number + 1:04d}",
            account_id=account_id,
            workflow_id=stored.row.id,
            title=f"Past {stored.row.name.lower()} #{number + 1}",
            quote=Money(planned, "EUR"),
            status=JobStatus.COMPLETED,
            stage_key=path[-1],
            stage_entered_at=visits[-1].entered_at,
            version=len(path) + 1,
            created_at=created,
            updated_at=moment,
            closed_at=moment,
            stages_completed=len(path),
            actual_cost=total,
        )
        await job.save()
        for visit in visits:
            visit.job_id = job.id
        for entry in entries:
            entry.job_id = job.id
        await StageVisit.bulk_create(visits)
        await CostEntry.bulk_create(entries)
        finished = transition_payload(
            JobPosition(JobStatus.OPEN, path[-1]), JobPosition(JobStatus.COMPLETED, path[-1]), None
        )
        await record_events(
            [
                created_event(job, workflow_key, stored.row.version, actor=ACTOR, stage=path[0]),
                NewEvent(job.id, job.version, EventType.COMPLETE, finished, ACTOR, moment),
            ],
            HISTORY_ONLY,  # a job of the past: nobody is told about it now
        )


async def is_seeded() -> bool:
    return await Workflow.exists()


async def showcase_job() -> Job | None:
    """The demo job whose status page `make run` points to: the first open one."""
    return (
        await Job.filter(reference__startswith="DEMO-", status=JobStatus.OPEN.value)
        .order_by("reference")
        .first()
    )


def _start_of(calendar: BusinessCalendar, working_seconds: float, *, now: datetime) -> datetime:
    """An opening time from which `working_seconds` of work, and a little more, end before `now`."""
    start = now - timedelta(seconds=working_seconds)
    while True:
        opened = calendar.next_open(start)
        if calendar.add_working_seconds(opened, working_seconds) <= now - QUIET_BEFORE_NOW:
            return opened
        start -= timedelta(hours=12)


async def seed(services: Services, *, now: datetime, seed_value: int = 2026) -> Counter[JobStatus]:
    """Create the demo shop, every time before `now`; returns the demo jobs counted by status.

    The workflows learn from the finished past jobs before the demo jobs open, so each demo job's first
    estimate is already the learned one (a customer's page would otherwise say the estimate moved on
    the day the job came in)."""
    jobs = services.jobs
    rng = random.Random(seed_value)
    statuses: Counter[JobStatus] = Counter()
    for key, definition, hours_spec in (
        ("car-repair", CAR_REPAIR, GARAGE_CALENDAR),
        ("kitchen-renovation", KITCHEN_RENOVATION, BUILDER_CALENDAR),
    ):
        await workflows.create_workflow(
            key,
            definition,
            "EUR",
            now=now - timedelta(days=HISTORY_DAYS + 30),
            calendar=check_calendar(hours_spec),
        )
    marie = await accounts.create_account(
        "individual",
        "Marie Dubois",
        [ContactFields("Marie Dubois", "marie.dubois@example.com", "fr_FR", "Europe/Paris")],
        now=now - timedelta(days=HISTORY_DAYS + 10),
    )
    facilities = await accounts.create_account(
        "institutional",
        "Van den Berg Facilities BV",
        [
            ContactFields("Sanne van den Berg", "sanne@vandenberg.example", "nl_NL", "Europe/Amsterdam"),
            ContactFields("Tom Peeters", "tom.peeters@vandenberg.example", "en_GB", "Europe/Brussels"),
        ],
        now=now - timedelta(days=HISTORY_DAYS + 10),
    )
    past = await history_account(now=now - timedelta(days=HISTORY_DAYS + 10))
    await seed_history("car-repair", past.id, count=400, rng=rng, now=now)
    await seed_history("kitchen-renovation", past.id, count=250, rng=rng, now=now)
    await services.estimates.refit_all(now=now)
    for index, demo in enumerate(DEMO_JOBS):
        account = marie if index % 3 == 0 else facilities
        stored = await workflows.get_workflow(demo.workflow)
        calendar = (await jobs.versions.get(stored.row.id)).calendar
        stages = stored.definition.stages
        # Open jobs move like the finished ones: skewed stage durations, costs near their quote's plan.
        hours = [_working_hours(rng, stage) for stage in stages[: demo.steps]]
        into_current = float(stages[demo.steps].duration.most_likely) * rng.uniform(0.1, 0.8)
        moment = _start_of(calendar, (sum(hours) + into_current) * 3600, now=now)
        job = await jobs.create(
            NewJob(
                account_id=account.id,
                workflow_key=demo.workflow,
                title=demo.title,
                quote=Money(Decimal(demo.quote), "EUR"),
                reference=f"DEMO-{index + 1:03d}",
                promised_on=(now + timedelta(days=rng.randint(3, 40))).date(),
            ),
            actor=ACTOR,
            now=moment,
        )
        for stage, worked in zip(stages, hours, strict=False):
            moment = calendar.add_working_seconds(moment, worked * 3600)
            if stage.planned_cost:
                job, _ = await jobs.add_cost(
                    job.id,
                    ExpectedVersion(job.version),
                    kind="labour",
                    amount=(  # the stage's share of this job's quote, give or take
                        stage.planned_cost
                        * Decimal(demo.quote)
                        / sum(s.planned_cost for s in stages)
                        * Decimal(str(round(rng.lognormvariate(0.0, 0.2), 2)))
                    ).quantize(Decimal("0.01")),
                    currency="EUR",
                    note="",
                    stage=None,
                    actor=ACTOR,
                    now=moment,
                )
            job = await jobs.act(
                job.id, ExpectedVersion(job.version), TransitionKind.ADVANCE, actor=ACTOR, now=moment
            )
        moment += timedelta(minutes=rng.uniform(5, 25))
        if demo.ending is TransitionKind.HOLD:
            job = await jobs.act(
                job.id,
                ExpectedVersion(job.version),
                TransitionKind.HOLD,
                actor=ACTOR,
                now=moment,
                reason="Waiting for the insurer's approval",
            )
        elif demo.ending is TransitionKind.COMPLETE:
            job = await jobs.act(
                job.id, ExpectedVersion(job.version), TransitionKind.COMPLETE, actor=ACTOR, now=moment
            )
        elif demo.ending is TransitionKind.CANCEL:
            job = await jobs.act(
                job.id,
                ExpectedVersion(job.version),
                TransitionKind.CANCEL,
                actor=ACTOR,
                now=moment,
                reason="The customer postponed the project",
            )
        else:
            job, _ = await jobs.add_note(
                job.id,
                ExpectedVersion(job.version),
                visibility="public",
                body="Work is going to plan.",
                actor=ACTOR,
                now=moment,
            )
        statuses[JobStatus(job.status)] += 1
    return statuses
