"""Bearer API keys: authentication as middleware, roles as guards."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import Guard

from tracker.clock import Clock
from tracker.services.access import Readable, may_read
from tracker.services.keys import KeyRefused, Principal, Role, authenticate

PUBLIC = "public"
"""Route `opt` key: the route needs no key (health, public customer pages)."""


class KeyNotAccepted(NotAuthorizedException):
    """401 for a key that is unknown, revoked or expired; `code` says which."""

    def __init__(self, detail: str, *, code: str) -> None:
        super().__init__(detail=detail)
        self.code = code


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("send an API key as 'Authorization: Bearer <key>'")
        clock: Clock = connection.app.state.clock
        try:
            principal = await authenticate(token.strip(), now=clock())
        except KeyRefused as refused:
            raise KeyNotAccepted(refused.detail, code=refused.code) from None
        return AuthenticationResult(user=principal, auth=None)


def requires(*roles: Role) -> Guard:
    """Allow the given roles; admin may do everything."""
    allowed = {*roles, Role.ADMIN}

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):
            raise NotAuthorizedException("send an API key as 'Authorization: Bearer <key>'")
        if principal.role not in allowed:
            needed = " or ".join(sorted(r.value for r in allowed))
            raise PermissionDeniedException(f"this needs a key with the role {needed}")

    return guard


def reads(what: Readable) -> Guard:
    """Allow the roles that may read `what` (see `tracker.services.access`)."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.user
        if not isinstance(principal, Principal) or not may_read(principal.role, what):
            raise PermissionDeniedException(f"this key's role may not read {what.value}")

    return guard
