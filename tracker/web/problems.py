"""Every error leaves as an RFC 9457 problem-details body; bad input names the field and the reason."""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import Request, Response
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from tracker.domain.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    PreconditionRequired,
    StaleVersion,
)

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("tracker.web")

TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal error",
}
CODES = {
    400: "malformed_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
}
"""The `code` of an HTTP error raised without one of its own."""
FIELD_PATH = re.compile(r"at `\$((?:\.[A-Za-z_][\w]*|\[\d+\])*)`")
NAMED_FIELD = re.compile(r"(?:unknown|missing required) field `([^`]+)`")


class BadRequest(ClientException):
    """Malformed syntax (400): a body that is not JSON, a header that contradicts the body."""

    def __init__(self, detail: str, *, code: str = "malformed_request") -> None:
        super().__init__(detail=detail)
        self.code = code


class Problem(ProblemDetailsException):
    """An RFC 9457 problem with tracker's members: a stable `code`, and for bad input `errors[]`."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        code: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **members: Any,
    ) -> None:
        super().__init__(
            detail=detail,
            status_code=status,
            headers=headers,
            type_=f"urn:tracker:problem:{code}",
            title=TITLES.get(status, "Error"),
            extra={"code": code, **({"errors": errors} if errors else {}), **members},
        )

    def to_response(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        self.instance = self.instance or request.url.path
        return super().to_response(request)


def _field_of(message: str, key: str | None) -> str:
    """The field a msgspec error is about: `quote.amount`, `stages[1].colour`, or `body`."""
    match = FIELD_PATH.search(message)
    path = match.group(1).lstrip(".") if match and match.group(1) else ""
    if not path and key and key != "data":
        path = key.removeprefix("$").lstrip(".")
    named = NAMED_FIELD.search(message)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return path.replace(".[", "[") if path else "body"


def _validation(exc: ValidationException) -> Problem:
    errors: list[dict[str, str]] = []
    if isinstance(exc.extra, list):
        for item in exc.extra:
            if isinstance(item, dict):
                message = str(item.get("message", ""))
                key = item.get("key")
                field = _field_of(message, str(key) if key else None)
                source = getattr(item.get("source"), "value", item.get("source"))
                if source in {"query", "path", "header", "cookie"} and key:
                    field = f"{source}.{key}"
                errors.append({"field": field, "reason": FIELD_PATH.sub("", message).rstrip(" -")})
    if not errors:
        errors.append({"field": "body", "reason": exc.detail})
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
    if errors[0]["field"] == "body":
        return Problem(400, detail, code="malformed_request")
    return Problem(422, detail, code="validation", errors=errors)


def _domain(exc: DomainError) -> Problem:
    if isinstance(exc, InvalidInput):
        return Problem(
            422, exc.detail, code="validation", errors=[{"field": exc.field, "reason": exc.reason}]
        )
    if isinstance(exc, NotFound):
        return Problem(404, exc.detail, code="not_found")
    if isinstance(exc, StaleVersion):
        return Problem(
            412 if exc.from_header else 409,
            exc.detail,
            code="stale_version",
            current_version=exc.current,
            headers={"ETag": f'"{exc.current}"'},
        )
    if isinstance(exc, PreconditionRequired):
        return Problem(428, exc.detail, code="version_required")
    if isinstance(exc, Conflict):
        return Problem(409, exc.detail, code=exc.code)
    return Problem(400, exc.detail, code="malformed_request")


def _http(exc: HTTPException) -> Problem:
    status = exc.status_code
    detail = exc.detail if exc.detail and exc.detail != TITLES.get(status) else TITLES.get(status, "Error")
    if status == 413:
        detail = "the request body is larger than this server accepts"
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="tracker"')
    if status >= 500:
        log.error("unhandled HTTP error", exc_info=exc)
    code = getattr(exc, "code", None) or CODES.get(status, "error")
    return Problem(status, detail, code=code, headers=headers or None)


def _unexpected(exc: Exception) -> Problem:
    log.error("unhandled error", exc_info=exc)
    return Problem(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "an unexpected error occurred; it has been logged",
        code="internal_error",
    )


def problem_details() -> ProblemDetailsPlugin:
    """Litestar's problem-details support, with tracker's errors mapped onto it once."""
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            exception_to_problem_detail_map={
                ValidationException: _validation,
                DomainError: _domain,
                HTTPException: _http,
                Exception: _unexpected,
            }
        )
    )
