"""Timestamps as event logs write them when they are not ISO 8601: ``2012/04/03 16:55:38``,
``03-04-2012 16:55``, ``4/3/2012 4:55:38 PM``, ``03.04.2012``.

A date whose first field has four digits is year first. Otherwise the year comes last, and the
order of day and month is learnt from the file: a first field above 12 makes it day-first, a
second field above 12 month-first. Until one does, dates are held; in a file where none does the
order cannot be known, and the reader is told to give the format.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Literal, NamedTuple

DateOrder = Literal["year-first", "day-first", "month-first"]

_SHAPE = re.compile(
    r"(?P<a>\d{1,4})[-/.](?P<b>\d{1,2})[-/.](?P<c>\d{1,4})"
    r"(?:[ T]+(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?"
    r"\s*(?P<half>[AaPp]\.?[Mm]\.?)?)?"
    r"\s*(?P<offset>Z|[+-]\d{2}:?\d{2})?"
)
HINT = (
    "give the format with --timestamp-format (strptime codes, such as '%d-%m-%Y %H:%M:%S' or "
    "'%m/%d/%Y %I:%M %p')"
)


class _Fields(NamedTuple):
    """The numbers of one timestamp, its date's fields in file order (``a``, ``b``, ``c``)."""

    text: str
    a: int
    b: int
    c: int
    hour: int
    minute: int
    second: int
    microsecond: int
    offset: tzinfo | None

    @classmethod
    def of(cls, text: str) -> _Fields:
        found = _SHAPE.fullmatch(text)
        if found is None:
            raise ValueError(_unreadable(text))
        a, b, c, hour, minute, second, fraction, half, offset = found.groups()
        if len(a) != 4 and len(c) != 4:
            raise ValueError(_unreadable(text))
        h = int(hour) if hour else 0
        if half:
            if not 1 <= h <= 12:
                raise ValueError(f"timestamp {text!r}: hour {h} with AM/PM; {HINT}")
            h = h % 12 + (12 if half[0] in "pP" else 0)
        return cls(
            text,
            int(a),
            int(b),
            int(c),
            h,
            int(minute) if minute else 0,
            int(second) if second else 0,
            int(fraction.ljust(6, "0")[:6]) if fraction else 0,
            _offset(offset) if offset else None,
        )

    @property
    def year_first(self) -> bool:
        return self.a > 999

    def instant(self, order: DateOrder, naive_tz: tzinfo) -> datetime:
        if order == "year-first":
            year, month, day = self.a, self.b, self.c
        elif order == "day-first":
            year, month, day = self.c, self.b, self.a
        else:
            year, month, day = self.c, self.a, self.b
        try:
            return datetime(
                year,
                month,
                day,
                self.hour,
                self.minute,
                self.second,
                self.microsecond,
                tzinfo=self.offset or naive_tz,
            )
        except ValueError as exc:
            raise ValueError(f"timestamp {self.text!r} read {order}: {exc}; {HINT}") from exc


def _unreadable(text: str) -> str:
    return (
        f"timestamp {text!r} is neither ISO 8601 nor a date such as 2012/04/03, 03-04-2012 or "
        f"4/3/2012 with an optional time: {HINT}"
    )


def _offset(text: str) -> tzinfo:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def as_read(text: str, order: DateOrder) -> str:
    """``text`` as it is read in ``order``, in ISO 8601 (without its offset): for a report."""
    fields = _Fields.of(text)
    moment = fields.instant("year-first" if fields.year_first else order, UTC)
    return moment.replace(tzinfo=None).isoformat(sep=" ")


class LooseTimestamps:
    """Reads the timestamps of one file that ISO 8601 could not read (see the module docstring).

    :meth:`read` gives the instant in POSIX seconds, or NaN while the date's order is not known
    yet; :meth:`settle` then gives the instants held back, by the position they were read at.
    """

    def __init__(self, naive_tz: tzinfo) -> None:
        self.naive_tz = naive_tz
        self.order: DateOrder | None = None
        self.example = ""
        self.naive = 0
        self._held: list[tuple[int, _Fields]] = []

    def read(self, text: str, position: int) -> float:
        fields = _Fields.of(text)
        self.example = self.example or text
        self.naive += fields.offset is None
        if fields.year_first:
            self.order = self.order or "year-first"
            return fields.instant("year-first", self.naive_tz).timestamp()
        if self.order in (None, "year-first"):
            if fields.a > 12:
                self.order = "day-first"
            elif fields.b > 12:
                self.order = "month-first"
            else:
                self._held.append((position, fields))
                return math.nan
        return fields.instant(self.order, self.naive_tz).timestamp()

    def settle(self) -> list[tuple[int, float]]:
        """The instants of the dates held back. Raises ValueError when no date of the file said
        whether it is day-first or month-first."""
        if not self._held:
            return []
        order = self.order
        if order is None or order == "year-first":
            example = self._held[0][1].text
            raise ValueError(
                f"no date tells whether timestamps such as {example!r} are day-first or month-first "
                f"(every day and month is 12 or less): {HINT}"
            )
        held, self._held = self._held, []
        return [(position, fields.instant(order, self.naive_tz).timestamp()) for position, fields in held]
