"""Keyset pagination shared by every list: a stable order on (column, id) and an opaque cursor.

A cursor holds the sort order and the last row's sort value and id, so the next page starts right after
that row whatever was added or changed since, and costs the same however deep it is.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from tracker.db.models import INT32_MAX as INT32_MAX  # for the web layer, which reads no model
from tracker.domain.errors import InvalidInput

CURSOR = "query.cursor"
"""How problems name the cursor: a query parameter, as the edge names the others."""

M = TypeVar("M", bound=Model)
T = TypeVar("T")


class Sort(StrEnum):
    CREATED = "created"
    NEWEST = "-created"
    UPDATED = "updated"
    RECENTLY_UPDATED = "-updated"

    @property
    def descending(self) -> bool:
        return self.value.startswith("-")

    @property
    def column(self) -> str:
        """Rows are created in id order, so "created" sorts on the id alone."""
        return "id" if self in {Sort.CREATED, Sort.NEWEST} else "updated_at"


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(sort: Sort, row: Model) -> str:
    value: object = row.pk if sort.column == "id" else getattr(row, sort.column).isoformat()
    raw = json.dumps({"s": sort.value, "v": value, "i": row.pk}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> tuple[object, int]:
    """The last row's sort value and id; a cursor for another order or a forged one is a 422 (a forged
    one may hold an id beyond the id column or a time with no UTC instant: neither reaches a query)."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if raw["s"] != sort.value:
            raise InvalidInput(CURSOR, "was made for another sort order")
        row_id = raw["i"]
        if type(row_id) is not int or not 0 <= row_id <= INT32_MAX:
            raise ValueError(row_id)
        value: object = row_id
        if sort.column != "id":
            moment = datetime.fromisoformat(raw["v"])
            if moment.tzinfo is None:
                raise ValueError(raw["v"])
            value = moment.astimezone(UTC)
    except InvalidInput:
        raise
    except (ValueError, KeyError, TypeError, OverflowError):
        raise InvalidInput(CURSOR, "is not a cursor this API gave out") from None
    return value, row_id


async def paginate(query: QuerySet[M], sort: Sort, *, limit: int, cursor: str | None) -> Page[M]:
    """One page of `query` in `sort` order, after the row `cursor` names."""
    column, descending = sort.column, sort.descending
    if cursor is not None:
        value, last_id = decode_cursor(cursor, sort)
        after = "lt" if descending else "gt"
        if column == "id":
            query = query.filter(**{f"id__{after}": last_id})
        else:
            later: dict[str, Any] = {f"{column}__{after}": value}
            tie: dict[str, Any] = {column: value, f"id__{after}": last_id}
            query = query.filter(Q(**later) | Q(**tie))
    prefix = "-" if descending else ""
    order = [f"{prefix}id"] if column == "id" else [f"{prefix}{column}", f"{prefix}id"]
    rows = await query.order_by(*order).limit(limit + 1)
    has_more = len(rows) > limit
    items = rows[:limit]
    return Page(items, encode_cursor(sort, items[-1]) if has_more and items else None)
