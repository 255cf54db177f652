"""Dependencies shared by the controllers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import Example
from litestar.params import HeaderParameter, QueryParameter, SkipValidation
from litestar.serialization import encode_json

from tracker.clock import Clock
from tracker.services.bootstrap import Services
from tracker.services.estimates import EstimateService
from tracker.services.jobs import JobService
from tracker.services.keys import Principal
from tracker.services.versions import ExpectedVersion
from tracker.services.webhooks import WebhookEndpoints
from tracker.web import schemas as s
from tracker.web.idempotency import MAX_KEY_LENGTH
from tracker.web.problems import BadRequest
from tracker.web.schemas import CURSOR

Now = NamedDependency[SkipValidation[datetime]]
"""The request's `now` from the app's clock: trusted, so unvalidated (a test clock may subclass datetime)."""
IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description='The job\'s ETag, as read, such as "3" (a list such as "3", "4" accepts any of them); '
        "or send the version in the body",
        examples=[Example(value='"3"')],
    ),
]
IfMatchOptional = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description='The ETag read, such as "3": the change applies only to that version (412 if it '
        'changed meanwhile; a list such as "3", "4" accepts any of them); without it, or with *, to whatever '
        "is there",
        examples=[Example(value='"3"')],
    ),
]
Jobs = NamedDependency[SkipValidation[JobService]]
Estimates = NamedDependency[SkipValidation[EstimateService]]
"""Services are trusted objects of the app, never validated (their caches hold arbitrary values)."""
Webhooks = NamedDependency[SkipValidation[WebhookEndpoints]]
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

PageLimit = Annotated[int, QueryParameter(ge=1, le=200, description="Items on a page")]
PageCursor = Annotated[
    str | None,
    QueryParameter(max_length=500, pattern=CURSOR, description="The `next_cursor` of the page before"),
]


def provide_now(state: State) -> datetime:
    clock: Clock = state.clock
    return clock()


def provide_jobs(state: State) -> JobService:
    services: Services = state.services
    return services.jobs


def provide_estimates(state: State) -> EstimateService:
    services: Services = state.services
    return services.estimates


def provide_webhooks(state: State) -> WebhookEndpoints:
    services: Services = state.services
    return services.webhooks


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = request.user
    assert isinstance(principal, Principal)
    return principal


DEPENDENCIES = {
    "now": Provide(provide_now, sync_to_thread=False),
    "jobs": Provide(provide_jobs, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=False),
    "estimates": Provide(provide_estimates, sync_to_thread=False),
    "webhooks": Provide(provide_webhooks, sync_to_thread=False),
}


NO_VERSION = 0
"""Versions start at 1."""
INT32_DIGITS = 10
"""No version column holds more digits: a longer tag names no version (and never reaches `int`'s limit)."""


def expected_version(if_match: str | None, body_version: int | None) -> ExpectedVersion:
    """The version a change is based on: a `version` field, or `If-Match` with one or more ETags (`"7"`,
    `W/"7"`, `"7", "8"`: any of them) or `*` (any version, which a job's change may not use); a version in
    both must agree."""
    if if_match is None:
        return ExpectedVersion(body_version, from_header=False)
    tags = [tag.strip() for tag in if_match.split(",")]
    if tags == ["*"]:
        return ExpectedVersion(body_version, from_header=body_version is None)
    # A tag that names no version matches no version of the resource: the precondition fails (412).
    versions = [_tagged_version(tag) for tag in tags]
    if body_version is not None and body_version not in versions:
        raise BadRequest(
            f"If-Match names {if_match.strip()!r} but the body names version {body_version}",
            code="version_mismatch",
        )
    first = versions[0] if body_version is None else body_version
    return ExpectedVersion(first, from_header=True, also=frozenset(versions) - {first})


def _tagged_version(tag: str) -> int:
    value = tag.removeprefix("W/").strip('"')
    return int(value) if value.isascii() and value.isdigit() and len(value) <= INT32_DIGITS else NO_VERSION


def json_response(
    value: msgspec.Struct, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response[bytes]:
    """Encoded like Litestar's own responses (its serializer also takes datetime subclasses), as bytes that
    `idempotent` can store and replay."""
    return Response(encode_json(value), status_code=status, media_type="application/json", headers=headers)


def etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


Versioned = TypeVar("Versioned", s.AccountOut, s.ContactOut, s.WebhookOut)


def tagged(resource: Versioned) -> Response[Versioned]:
    """A resource with its version as its ETag, for the If-Match of a later change."""
    return Response(resource, headers=etag(resource.version))
