"""The strict edge: every request is checked here, once, before any handler sees it.

- An integer path parameter outside the id columns' range names no resource: 404.
- A body must be JSON (415 otherwise), valid UTF-8, at most `MAX_DEPTH` levels deep and free of duplicate
  keys (400 otherwise).
- The body is decoded strictly against the handler's schema: no "1" for an integer, no number for a decimal
  string; a value the schema refuses is a 422 naming the field by its full path (`contacts[1].time_zone`).
- A time, in the body or the query, must have an instant in UTC (years 1 to 9999): 422 otherwise.

Litestar decodes query parameters and bodies leniently (its signature model converts with
`strict=False`); this hook holds bodies to the schema the OpenAPI document shows.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.routes import HTTPRoute

from tracker.domain.errors import InvalidInput, NotFound
from tracker.services.pages import INT32_MAX
from tracker.web.problems import BadRequest
from tracker.web.schemas import CONTROL

MAX_DEPTH = 32
JSON_MEDIA_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json$")
STRING_LITERAL = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
BRACKET = re.compile(rb"[\[\]{}]")
CONTROL_CHARACTER = re.compile(f"[{CONTROL}]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_path(request: Request[Any, Any, Any]) -> None:
    """A path naming what no record can be (an id beyond the id columns, a control character) finds
    nothing."""
    for name, value in request.path_params.items():
        if isinstance(value, bool):
            continue
        out_of_range = isinstance(value, int) and not 1 <= value <= INT32_MAX
        if out_of_range or (isinstance(value, str) and CONTROL_CHARACTER.search(value)):
            raise NotFound(name.removesuffix("_id").replace("_", " "), repr(value))


def _check_query(request: Request[Any, Any, Any]) -> None:
    """Query values as strict as bodies: no control characters, `?after=null` is not an absent parameter,
    and a time is an ISO 8601 string, never a number of seconds."""
    parameters = request.route_handler.parsed_fn_signature.parameters
    for name, value in request.query_params.multi_items():
        field = parameters.get(name)
        if field is None:
            continue
        if CONTROL_CHARACTER.search(value):
            raise InvalidInput(f"query.{name}", "holds a control character")
        if field.has_inner_subclass_of(str) and not field.has_inner_subclass_of(Enum):
            continue  # free text, where "null" is a word like any other
        if value == "null":
            raise InvalidInput(f"query.{name}", "is not a value of this parameter's type")
        kind = next((k for k in (datetime, date) if field.has_inner_subclass_of(k)), None)
        if kind is not None:
            try:
                moment = msgspec.convert(value, kind, strict=True)
            except msgspec.ValidationError:
                raise InvalidInput(f"query.{name}", f"must be an ISO 8601 {kind.__name__}") from None
            _check_instants(moment, f"query.{name}")


def _check_instants(value: Any, path: str) -> None:
    """Every aware datetime in `value` has a UTC instant (the databases store UTC): 9999-12-31T23:00-05:00
    has none."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise InvalidInput(path or "body", "is out of range (years 1 to 9999 in UTC)") from None
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            _check_instants(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_instants(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_instants(item, f"{path}.{key}" if path else str(key))


def _depth(body: bytes) -> int:
    deepest = depth = 0
    for bracket in BRACKET.findall(STRING_LITERAL.sub(b"", body)):
        depth += 1 if bracket in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BadRequest(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _parse(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not valid UTF-8") from None
    if _depth(body) > MAX_DEPTH:
        raise BadRequest(f"the body nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(
            text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_int=_bounded_int
        )
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None


LONGEST_INT = 40
"""Digits beyond any range a field takes (ids are 32-bit, event ids 64-bit)."""
BEYOND_ANY_FIELD: int = 10**LONGEST_INT


def _bounded_int(digits: str) -> int:
    """A JSON integer, however long, is JSON: one past `LONGEST_INT` digits stands for itself as ±10**40 so
    its field refuses it as out of range (422 naming it), before Python's int() could refuse to read it."""
    if len(digits.lstrip("-")) <= LONGEST_INT:
        return int(digits)
    return -BEYOND_ANY_FIELD if digits.startswith("-") else BEYOND_ANY_FIELD


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _integral(value: Any, path: str = "") -> Any:
    """JSON has one number type: 2.0 is the integer 2 (no input field is a float). A string, or a key,
    holding half of a UTF-16 surrogate pair (`"\\ud800"` alone) is no text at all: 422 naming it."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        _no_lone_surrogate(value, path)
    if isinstance(value, list):
        return [_integral(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            _no_lone_surrogate(key, where)
            result[key] = _integral(item, where)
        return result
    return value


def _no_lone_surrogate(text: str, path: str) -> None:
    if LONE_SURROGATE.search(text):
        raise InvalidInput(
            path.encode("utf-8", "backslashreplace").decode() or "body",
            "holds half of a UTF-16 surrogate pair (\\ud800 to \\udfff alone), which is no character",
        )


def _path(message: str) -> tuple[str, str]:
    """Split a msgspec error into (`contacts[1].time_zone`, reason)."""
    reason, _, where = message.rpartition(" - at `")
    if not reason:
        reason, where = message, "$`"
    if where.startswith("key` in `"):  # a dict key: `Invalid enum value 'someday' - at key` in `$.x`
        where, reason = where.removeprefix("key` in `"), f"a key: {reason}"
    path = where.rstrip("`").removeprefix("$").lstrip(".")
    if named := re.search(r"(?:missing required|unknown) field `([^`]+)`", reason):
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    if "matching regex" in reason:
        reason = "has a form or a character this field does not allow (see its pattern)"
    return path or "body", reason


def _options(request: Request[Any, Any, Any]) -> Response[None]:
    """Answer OPTIONS with every method of the path (Litestar's own answer can miss some)."""
    paths = request.route_handler.paths
    methods = {
        method
        for route in request.app.routes
        if isinstance(route, HTTPRoute) and route.path in paths
        for method in route.methods
    }
    return Response(None, status_code=204, headers={"Allow": ", ".join(sorted(methods))})


async def strict_edge(request: Request[Any, Any, Any]) -> Response[None] | None:
    """App-wide `before_request` hook: runs after authentication and guards, before the handler."""
    if request.method == "OPTIONS":
        return _options(request)
    _check_path(request)
    _check_query(request)
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return None
    body = await request.body()
    if not body.strip():
        if data.is_optional:
            return None
        raise BadRequest("this request needs a JSON body")
    media_type, _ = request.content_type
    if not JSON_MEDIA_TYPE.match(media_type.lower()):
        raise HTTPException(
            status_code=415, detail=f"send the body as application/json, not {media_type or 'untyped'}"
        )
    try:
        decoded = msgspec.convert(_integral(_parse(body)), type=data.annotation, strict=True)
    except msgspec.ValidationError as error:
        raise InvalidInput(*_path(str(error))) from None
    _check_instants(decoded, "")
    return None
