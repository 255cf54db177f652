"""`build_services`: the services wired once, the same way for the app, the CLI, the demo and the bench."""

from __future__ import annotations

from dataclasses import dataclass

from notifications.ssrf import Resolver, URLPolicy, system_resolver
from tracker.services.estimates import EstimateService
from tracker.services.events import Listeners
from tracker.services.jobs import JobService
from tracker.services.signals import DeliveriesQueued
from tracker.services.snapshots import JobSnapshots
from tracker.services.webhooks import WebhookEndpoints
from tracker.services.workflows import WorkflowVersions
from tracker.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    workflows: WorkflowVersions
    estimates: EstimateService
    snapshots: JobSnapshots
    jobs: JobService
    deliveries_queued: DeliveriesQueued
    webhooks: WebhookEndpoints


def build_services(settings: Settings, *, resolver: Resolver = system_resolver) -> Services:
    """Every job change re-estimates the job in its own transaction; all share one workflow cache.

    `resolver` looks up webhook hosts (tests pass one that never leaves the machine)."""
    workflows = WorkflowVersions()
    listeners = Listeners(staff_addresses=settings.staff_alert_addresses)
    deliveries_queued = DeliveriesQueued()
    estimates = EstimateService(versions=workflows, listeners=listeners, deliveries_queued=deliveries_queued)
    snapshots = JobSnapshots(
        workflows, settings.public_base_url, settings.over_budget_tolerance, thresholds=estimates.thresholds
    )
    jobs = JobService(
        workflows,
        snapshots,
        after_change=[estimates.recompute_job],
        listeners=listeners,
        deliveries_queued=deliveries_queued,
    )
    webhooks = WebhookEndpoints(
        URLPolicy(settings.webhook_allow_http, settings.webhook_networks),
        resolver,
        settings.webhook_secret_rotation_s,
        deliveries_queued,
    )
    return Services(settings, workflows, estimates, snapshots, jobs, deliveries_queued, webhooks)
