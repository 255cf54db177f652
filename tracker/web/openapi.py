"""The OpenAPI document, completed from what each route handler has, so it says what the server does.

Litestar documents each handler's success response and parameters. This module adds, in one place, what
the edge and the error handlers add to every operation:

- the problem-details error responses (`application/problem+json`) each operation can return, derived
  from the handler: a key (401), a guard (403), a path parameter (404), a body (400, 413, 415, 422),
  parameters (422), a job version (409, 412, 428), a write (409, unless its route says otherwise);
- `security: []` on the operations that need no key;
- a request body that may be left out is not `required`;
- parameters as HTTP sends them: a header or query value is absent or a string, never null.

Operations added later get the same for free.
"""

from __future__ import annotations

import html
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import JsonRenderPlugin, ScalarRenderPlugin
from litestar.routes import HTTPRoute

from tracker.services.pages import INT32_MAX
from tracker.web import schemas as wire
from tracker.web.auth import PUBLIC
from tracker.web.problems import PROBLEM_JSON

MAY_CONFLICT = "may_conflict"
"""Route `opt` key, when a route differs from the rule that writes may answer 409 and reads may not:
True for a read that can (an estimate of a closed job), False for a write that cannot (a restore)."""
VERSION_OPTIONAL = "version_optional"
"""Route option: the change may name the version it read (If-Match), as accounts, contacts and webhook
endpoints do; a job's changes must (428 without)."""
PUBLIC_PATH = "public_path"
"""Route `opt` key: the address the route is reached at when an ASGI layer rewrites it (a route cannot end
a path parameter with a suffix such as `.json`); the document shows that address."""
PROBLEM = "Problem"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem: what went wrong, and for bad input, each field by its full path.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "examples": ["urn:tracker:problem:validation"]},
        "title": {"type": "string", "examples": ["Invalid input"]},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "examples": [422]},
        "detail": {"type": "string", "examples": ["contacts[1].time_zone: Invalid enum value 'Mars/Base'"]},
        "instance": {"type": "string", "examples": ["/accounts"]},
        "code": {
            "type": "string",
            "description": "Stable machine-readable reason, such as validation, stale_version or job_closed",
            "examples": ["validation"],
        },
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {
                    "field": {"type": "string", "examples": ["contacts[1].time_zone"]},
                    "reason": {"type": "string", "examples": ["Invalid enum value 'Mars/Base'"]},
                },
            },
        },
        "current_version": {
            "type": "integer",
            "description": "With stale_version: the resource's version now",
        },
    },
}

DESCRIPTIONS = {
    400: "Malformed request: the body is not JSON, nests too deep, repeats a key, or contradicts If-Match",
    401: "No API key (code unauthenticated), or one that is unknown, revoked or expired (key_unknown, "
    "key_revoked, key_expired)",
    403: "The key's role may not do this (code forbidden)",
    404: "No such resource",
    409: "The request clashes with the current state (code names the rule, such as stale_version)",
    412: "If-Match names a version the resource no longer has (code stale_version)",
    413: "The body is larger than the server accepts",
    415: "The body is not application/json",
    422: "A value the rules refuse; `errors` names each field by its full path",
    428: "A change to a job must name the version read: If-Match or a version field",
}


def _error_statuses(
    operation: dict[str, Any], route: HTTPRoute, handler: HTTPRouteHandler, method: str
) -> set[int]:
    parameters = handler.parsed_fn_signature.parameters
    statuses: set[int] = set()
    if not handler.opt.get(PUBLIC):
        statuses.add(401)
    if handler.resolve_guards():
        statuses.add(403)
    if route.path_parameters:
        statuses.add(404)
    if "data" in parameters:
        statuses |= {400, 413, 415, 422}
    if any(p.get("in") in {"query", "header"} for p in operation.get("parameters", [])):
        statuses.add(422)
    headers = {p.get("name") for p in operation.get("parameters", []) if p.get("in") == "header"}
    if "If-Match" in headers and handler.opt.get(VERSION_OPTIONAL):
        statuses.add(412)
    elif "If-Match" in headers:  # from the handler or a dependency it uses (the job actions' JobAction)
        statuses |= {400, 409, 412, 428}
    if handler.opt.get(MAY_CONFLICT, method != "GET"):
        statuses.add(409)
    return statuses


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """`oneOf: [X, null]` becomes X: a parameter is either absent or a value."""
    options = schema.get("oneOf")
    if isinstance(options, list):
        kept = [option for option in options if option.get("type") != "null"]
        if len(kept) == 1:
            rest = {key: value for key, value in schema.items() if key != "oneOf"}
            return {**kept[0], **rest}
    return schema


def _complete_operation(
    operation: dict[str, Any], route: HTTPRoute, handler: HTTPRouteHandler, method: str
) -> None:
    if handler.opt.get(PUBLIC):
        operation["security"] = []
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is not None and data.is_optional and "requestBody" in operation:
        operation["requestBody"]["required"] = False  # the edge accepts an empty body here
    for parameter in operation.get("parameters", []):
        if parameter.get("in") in {"header", "query"}:
            parameter["schema"] = _plain(parameter["schema"])
        elif parameter.get("in") == "path" and parameter["schema"].get("type") == "integer":
            # An id beyond the columns' range names nothing: such a request is answered 404.
            parameter["schema"].update(minimum=1, maximum=INT32_MAX, examples=[42])
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for response in responses.values():
        for media in response.get("content", {}).values():
            media.get("schema", {}).pop("examples", None)  # Litestar's are random text
    statuses = _error_statuses(operation, route, handler, method)
    if 400 not in statuses:
        responses.pop("400", None)  # Litestar's generic one: parameters are 422 here
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{PROBLEM}"}}},
        }


def _msgspec_components(schemas: dict[str, Any]) -> None:
    """Describe each wire Struct as msgspec, which decodes it, does: closed objects, key patterns, limits."""
    structs = [
        value
        for name, value in vars(wire).items()
        if name in schemas and isinstance(value, type) and issubclass(value, msgspec.Struct)
    ]
    _, components = msgspec.json.schema_components(structs, ref_template="#/components/schemas/{name}")
    for struct in structs:  # what joins several fields (one of two), which msgspec cannot say
        components[struct.__name__].update(getattr(struct, "JSON_SCHEMA_EXTRA", {}))
    schemas.update(components)


def complete(app: Litestar, document: dict[str, Any]) -> dict[str, Any]:
    """Complete the generated document in place (once; it is cached with the app)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    if PROBLEM in schemas:
        return document
    schemas[PROBLEM] = PROBLEM_SCHEMA
    _msgspec_components(schemas)
    paths = document.get("paths", {})
    renamed: dict[str, str] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format not in paths:
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                operation = paths[route.path_format].get(method.lower())
                if operation is not None:
                    _complete_operation(operation, route, handler, method)
            if PUBLIC_PATH in handler.opt:
                renamed[route.path_format] = handler.opt[PUBLIC_PATH]
    for path, public_path in renamed.items():
        paths[public_path] = paths.pop(path)
    return document


class CompletedJson(JsonRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, complete(request.app, openapi_schema))


SCALAR_JS = "https://cdn.jsdelivr.net/npm/@scalar/api-reference@1.76.0/dist/browser/standalone.js"
SCALAR_JS_INTEGRITY = "sha384-oH1C0RwqcwbVXkC+r8A+4qRoyEUQdtxAzOwumkxZtQBBcsy61FOoPt7B50OVJYYQ"
"""The digest of that file as npm publishes it (`npm pack @scalar/api-reference@1.76.0`)."""


class CompletedScalar(ScalarRenderPlugin):
    """The interactive reference at `/schema`. Scalar's script runs on the staff dashboard's origin, so it is
    one pinned version that the browser checks against its digest, never whatever a CDN serves as latest;
    the page links the document itself, which is all there is where the CDN cannot be reached."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(str(openapi_schema["info"]["title"]))
        document = html.escape(self.get_openapi_json_route(request))
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} API</title>
</head>
<body>
<p>The OpenAPI document: <a href="{document}">{document}</a></p>
<script id="api-reference" data-url="{document}"></script>
<script src="{SCALAR_JS}" integrity="{SCALAR_JS_INTEGRITY}" crossorigin="anonymous"></script>
</body>
</html>
""".encode()
