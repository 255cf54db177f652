"""The demo shop that `make run` serves: two workflows, two accounts and a dozen jobs with history.

Everything goes through the same service functions as the API, with times in the past.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from tracker.db.models import Workflow
from tracker.domain.money import Money
from tracker.domain.workflow import StageDefinition, ThreePointEstimate, TransitionKind, WorkflowDefinition
from tracker.services import accounts, workflows
from tracker.services.accounts import ContactFields
from tracker.services.jobs import ExpectedVersion, JobService, NewJob

ACTOR = "staff:demo"


def _stage(
    key: str,
    en: str,
    fr: str,
    nl: str,
    hours: tuple[int, int, int],
    cost: int,
    capacity: int | None = None,
    visible: bool = True,
) -> StageDefinition:
    return StageDefinition(
        key=key,
        labels={"en": en, "fr": fr, "nl": nl},
        duration=ThreePointEstimate(*(Decimal(h) for h in hours)),
        planned_cost=Decimal(cost),
        capacity=capacity,
        customer_visible=visible,
    )


CAR_REPAIR = WorkflowDefinition(
    "Car repair",
    (
        _stage("intake", "Car received", "Véhicule réceptionné", "Auto ontvangen", (1, 2, 4), 0),
        _stage("diagnosis", "Diagnosis", "Diagnostic", "Diagnose", (2, 4, 10), 90),
        _stage(
            "parts", "Waiting for parts", "En attente des pièces", "Wachten op onderdelen", (8, 24, 80), 350
        ),
        _stage("repair", "Repair", "Réparation", "Reparatie", (4, 10, 24), 480, capacity=3),
        _stage("quality-check", "Quality check", "Contrôle qualité", "Kwaliteitscontrole", (1, 2, 4), 40),
        _stage("ready", "Ready for pick-up", "Prêt à être récupéré", "Klaar om op te halen", (1, 8, 24), 0),
    ),
)

KITCHEN_RENOVATION = WorkflowDefinition(
    "Kitchen renovation",
    (
        _stage("survey", "Site survey", "Visite technique", "Opname ter plaatse", (2, 4, 8), 150),
        _stage("design", "Design", "Conception", "Ontwerp", (8, 16, 40), 600),
        _stage(
            "materials",
            "Ordering materials",
            "Commande des matériaux",
            "Materialen bestellen",
            (16, 40, 120),
            5200,
        ),
        _stage("demolition", "Demolition", "Démolition", "Sloop", (8, 16, 24), 900),
        _stage("installation", "Installation", "Installation", "Installatie", (24, 40, 80), 3800, capacity=2),
        _stage("finishing", "Finishing", "Finitions", "Afwerking", (8, 16, 32), 1100),
        _stage("handover", "Handover", "Réception des travaux", "Oplevering", (1, 2, 4), 0),
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


async def is_seeded() -> bool:
    return await Workflow.exists()


async def seed(jobs: JobService, *, now: datetime, seed_value: int = 2026) -> int:
    """Create the demo shop; returns the number of jobs created."""
    rng = random.Random(seed_value)
    await workflows.create_workflow("car-repair", CAR_REPAIR, "EUR", now=now - timedelta(days=60))
    await workflows.create_workflow(
        "kitchen-renovation", KITCHEN_RENOVATION, "EUR", now=now - timedelta(days=60)
    )
    marie = await accounts.create_account(
        "individual",
        "Marie Dubois",
        [ContactFields("Marie Dubois", "marie.dubois@example.com", "fr_FR", "Europe/Paris")],
        now=now - timedelta(days=45),
    )
    facilities = await accounts.create_account(
        "institutional",
        "Van den Berg Facilities BV",
        [
            ContactFields("Sanne van den Berg", "sanne@vandenberg.example", "nl_NL", "Europe/Amsterdam"),
            ContactFields("Tom Peeters", "tom.peeters@vandenberg.example", "en_GB", "Europe/Brussels"),
        ],
        now=now - timedelta(days=45),
    )
    for index, demo in enumerate(DEMO_JOBS):
        account = marie if index % 3 == 0 else facilities
        moment = now - timedelta(days=rng.uniform(8, 30))
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
        for _ in range(demo.steps):
            moment += timedelta(hours=rng.uniform(4, 60))
            job = await jobs.act(
                job.id, ExpectedVersion(job.version), TransitionKind.ADVANCE, actor=ACTOR, now=moment
            )
            job, _ = await jobs.add_cost(
                job.id,
                ExpectedVersion(job.version),
                kind=rng.choice(["labour", "material"]),
                amount=Decimal(rng.randint(40, 400 if demo.quote < 5000 else 2500)),
                currency="EUR",
                note="",
                stage=None,
                actor=ACTOR,
                now=moment,
            )
        moment += timedelta(hours=rng.uniform(1, 8))
        if demo.ending is TransitionKind.HOLD:
            await jobs.act(
                job.id,
                ExpectedVersion(job.version),
                TransitionKind.HOLD,
                actor=ACTOR,
                now=moment,
                reason="Waiting for the insurer's approval",
            )
        elif demo.ending is TransitionKind.COMPLETE:
            await jobs.act(
                job.id, ExpectedVersion(job.version), TransitionKind.COMPLETE, actor=ACTOR, now=moment
            )
        elif demo.ending is TransitionKind.CANCEL:
            await jobs.act(
                job.id,
                ExpectedVersion(job.version),
                TransitionKind.CANCEL,
                actor=ACTOR,
                now=moment,
                reason="The customer postponed the project",
            )
        else:
            await jobs.add_note(
                job.id,
                ExpectedVersion(job.version),
                visibility="public",
                body="Work is going to plan.",
                actor=ACTOR,
                now=moment,
            )
    return len(DEMO_JOBS)
