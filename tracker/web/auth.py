"""Bearer API keys: authentication as middleware, roles as guards."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import Guard

from tracker.services.keys import Principal, Role, authenticate

PUBLIC = "public"
"""Route `opt` key: the route needs no key (health, public customer pages)."""


class ApiKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("send an API key as 'Authorization: Bearer <key>'")
        principal = await authenticate(token.strip())
        if principal is None:
            raise NotAuthorizedException("the API key is unknown or revoked")
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
