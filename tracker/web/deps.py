"""Dependencies shared by the controllers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import HeaderParameter, SkipValidation

from tracker.clock import Clock
from tracker.domain.errors import InvalidInput
from tracker.services.bootstrap import Services
from tracker.services.estimates import EstimateService
from tracker.services.jobs import ExpectedVersion, JobService
from tracker.services.keys import Principal
from tracker.settings import Settings

Now = NamedDependency[SkipValidation[datetime]]
"""The request's `now` from the app's clock: trusted, so unvalidated (a test clock may subclass datetime)."""
Jobs = NamedDependency[SkipValidation[JobService]]
Estimates = NamedDependency[SkipValidation[EstimateService]]
"""Services are trusted objects of the app, never validated (their caches hold arbitrary values)."""
IfMatch = Annotated[str | None, HeaderParameter(name="If-Match", description="The job's ETag, as read")]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key", description="Retries with the same key replay the first response"
    ),
]


def provide_now(state: State) -> datetime:
    clock: Clock = state.clock
    return clock()


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def provide_jobs(state: State) -> JobService:
    services: Services = state.services
    return services.jobs


def provide_estimates(state: State) -> EstimateService:
    services: Services = state.services
    return services.estimates


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = request.user
    assert isinstance(principal, Principal)
    return principal


DEPENDENCIES = {
    "now": Provide(provide_now, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "jobs": Provide(provide_jobs, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=False),
    "estimates": Provide(provide_estimates, sync_to_thread=False),
}


def expected_version(if_match: str | None, body_version: int | None) -> ExpectedVersion:
    """The version a change is based on: `If-Match: "7"` (or W/"7") wins over a `version` field."""
    if if_match is not None:
        tag = if_match.strip().removeprefix("W/").strip('"')
        if not tag.isdigit():
            raise InvalidInput("header.If-Match", 'must be the ETag of the job, such as "3"')
        return ExpectedVersion(int(tag), from_header=True)
    return ExpectedVersion(body_version, from_header=False)


def etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}
