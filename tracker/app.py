"""The composition root: the only module that wires settings, database, web layer and scheduler."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from prometheus_client import REGISTRY, generate_latest
from tortoise import Tortoise

import tracker
from notifications.ssrf import Resolver, system_resolver
from tracker.clock import Clock, utc_now
from tracker.db.config import tortoise_config
from tracker.dispatcher import notifications_lifespan
from tracker.logs import RequestLogging
from tracker.scheduler import scheduler
from tracker.services.bootstrap import build_services
from tracker.services.keys import Role
from tracker.settings import Settings
from tracker.web.auth import PUBLIC, ApiKeyMiddleware, requires
from tracker.web.controllers.account_pages import AccountPageController
from tracker.web.controllers.accounts import AccountController, ContactController
from tracker.web.controllers.audit import AuditController
from tracker.web.controllers.emails import (
    SuppressionController,
    UnsubscribeController,
    dev_mailbox_controller,
)
from tracker.web.controllers.health import live, ready
from tracker.web.controllers.jobs import JobController
from tracker.web.controllers.keys import KeyController
from tracker.web.controllers.notifications import JobNotificationController
from tracker.web.controllers.status_pages import (
    StatusJsonController,
    StatusPageController,
    StatusSuffixes,
    StatusTokenController,
    customer_pages,
    provide_pages,
    static_asset,
)
from tracker.web.controllers.webhooks import EventTypeController, WebhookController
from tracker.web.controllers.workflows import WorkflowController
from tracker.web.dashboard import DASHBOARD_HANDLERS, build_dashboard
from tracker.web.deps import DEPENDENCIES
from tracker.web.edge import strict_edge
from tracker.web.openapi import CompletedJson, CompletedScalar
from tracker.web.problems import problem_details

DOCS_PATH = "/schema"
METRICS_MEDIA_TYPE = "text/plain; version=1.0.0"
"""Prometheus's text format, without the charset Litestar appends to every text type."""


@asynccontextmanager
async def database(app: Litestar) -> AsyncIterator[None]:
    """Open the database for the app's whole life (global fallback: handlers run in other tasks)."""
    settings: Settings = app.state.settings
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
    try:
        yield
    finally:
        await Tortoise.close_connections()


def create_app(
    settings: Settings | None = None, *, clock: Clock = utc_now, resolver: Resolver = system_resolver
) -> Litestar:
    """The app; `resolver` looks up webhook hosts (tests pass one that never leaves the machine)."""
    settings = settings or Settings.from_env(os.environ)
    metrics_public = settings.metrics_public

    class MetricsController(PrometheusController):
        opt = {PUBLIC: metrics_public}
        guards = [] if metrics_public else [requires(Role.ADMIN)]
        tags = ["Operations"]

        @get(
            operation_id="Metrics",
            media_type=METRICS_MEDIA_TYPE,
            responses={200: ResponseSpec(str, media_type="text/plain", description="Prometheus text format")},
        )
        async def get(self) -> Response[bytes]:
            return Response(generate_latest(REGISTRY), media_type=METRICS_MEDIA_TYPE)

    auth = DefineMiddleware(
        ApiKeyMiddleware,
        exclude=[f"^{DOCS_PATH}"] if settings.api_docs_public else None,
        exclude_from_auth_key=PUBLIC,
        exclude_http_methods=["OPTIONS"],
    )
    services = build_services(settings, resolver=resolver)
    pages = customer_pages(settings, services)
    app = Litestar(
        route_handlers=[
            live,
            ready,
            MetricsController,
            WorkflowController,
            AccountController,
            ContactController,
            JobController,
            JobNotificationController,
            KeyController,
            AuditController,
            StatusPageController,
            StatusJsonController,
            StatusTokenController,
            AccountPageController,
            static_asset,
            SuppressionController,
            UnsubscribeController,
            dev_mailbox_controller(settings),
            *DASHBOARD_HANDLERS,
            WebhookController,
            EventTypeController,
        ],
        dependencies={**DEPENDENCIES, "pages": Provide(provide_pages, sync_to_thread=False)},
        middleware=[PrometheusConfig(app_name="tracker", group_path=True).middleware, auth],
        plugins=[problem_details()],
        before_request=strict_edge,
        request_max_body_size=settings.max_body_bytes,
        lifespan=[database, scheduler, notifications_lifespan],
        state=State(
            {
                "settings": settings,
                "clock": clock,
                "services": services,
                "customer_pages": pages,
                "dashboard": build_dashboard(settings, pages.renderer.assets),
            }
        ),
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="tracker",
            version=tracker.__version__,
            description="Staff and integrator API of tracker: jobs, their stages, costs and estimates.",
            path=DOCS_PATH,
            render_plugins=[CompletedScalar(), CompletedJson()],
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(type="http", scheme="bearer", description="tracker API key")
                }
            ),
            security=[{"apiKey": []}],
        ),
    )
    app.asgi_handler = RequestLogging(StatusSuffixes(app.asgi_handler))
    return app
