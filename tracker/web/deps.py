"""Dependencies shared by the controllers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import Example
from litestar.params import HeaderParameter, SkipValidation

from tracker.clock import Clock
from tracker.domain.errors import InvalidInput
from tracker.services.estimates import EstimateService
from tracker.services.jobs import ExpectedVersion, JobService
from tracker.services.keys import Principal
from tracker.settings import Settings
from tracker.web.idempotency import MAX_KEY_LENGTH
from tracker.web.problems import BadRequest
from tracker.web.schemas import INT32_MAX

Now = NamedDependency[SkipValidation[datetime]]
"""The request's `now` from the app's clock: trusted, so unvalidated (a test clock may subclass datetime)."""
ETAG = r'^(W/)?"[0-9]{1,10}"$'
IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description="The job's ETag, as read; or send the version in the body",
        pattern=ETAG,
        examples=[Example(value='"3"')],
    ),
]
RequiredIfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description="The job's ETag, as read",
        pattern=ETAG,
        required=True,
        examples=[Example(value='"3"')],
    ),
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description="Retries with the same key replay the first response",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$",
        examples=[Example(value="5b0f3c1e-advance-1")],
    ),
]


def provide_now(state: State) -> datetime:
    clock: Clock = state.clock
    return clock()


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


def provide_jobs(state: State) -> JobService:
    service: JobService = state.job_service
    return service


def provide_estimates(state: State) -> EstimateService:
    service: EstimateService = state.estimates
    return service


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
    """The version a change is based on: `If-Match: "7"` (or W/"7") or a `version` field; both must agree."""
    if if_match is None:
        return ExpectedVersion(body_version, from_header=False)
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isdigit() or not 1 <= int(tag) <= INT32_MAX:
        raise InvalidInput("header.If-Match", 'must be the ETag of the job, such as "3"')
    if body_version is not None and body_version != int(tag):
        raise BadRequest(
            f"If-Match names version {int(tag)} but the body names version {body_version}",
            code="version_mismatch",
        )
    return ExpectedVersion(int(tag), from_header=True)


def etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}
