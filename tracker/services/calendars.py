"""A workflow's business calendar as stored JSON: validated on the way in, built into a `BusinessCalendar`.

    {"time_zone": "Europe/Paris", "country": "FR", "subdivision": null,
     "opening_hours": {"mon": [["08:00", "12:00"], ["13:00", "18:00"]], ...}, "closures": ["2026-08-14"]}

No opening hours and no country means open around the clock (working time is elapsed time).
With a country but no opening hours, Monday to Friday 08:00-18:00.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from tracker.domain.errors import InvalidInput
from tracker.estimates.calendar import DEFAULT_OPENING_HOURS, BusinessCalendar

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def check_calendar(spec: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Validate a calendar as sent in a request; returns its normalised JSON form."""
    if spec is None:
        return None
    country = spec.get("country")
    subdivision = spec.get("subdivision")
    time_zone = spec.get("time_zone")
    if country is not None:
        try:
            holidays.country_holidays(country, subdiv=subdivision)
        except NotImplementedError:
            field = "calendar.subdivision" if subdivision else "calendar.country"
            raise InvalidInput(field, "has no public holiday calendar") from None
        if time_zone is None:
            try:
                time_zone = BusinessCalendar.for_country(country, subdivision).timezone.key
            except ValueError:
                raise InvalidInput("calendar.time_zone", f"is needed for country {country}") from None
    elif subdivision is not None:
        raise InvalidInput("calendar.subdivision", "needs a country")
    time_zone = time_zone or "UTC"
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("calendar.time_zone", f"{time_zone!r} is not an IANA time zone") from None
    hours = spec.get("opening_hours")
    normalised_hours: dict[str, list[list[str]]] | None = None
    if hours is not None:
        normalised_hours = {}
        for day, intervals in hours.items():
            if day not in WEEKDAYS:
                raise InvalidInput(f"calendar.opening_hours.{day}", f"is not one of {', '.join(WEEKDAYS)}")
            previous_end = -1
            for index, (start, end) in enumerate(intervals):
                where = f"calendar.opening_hours.{day}[{index}]"
                if not (CLOCK.match(start) and CLOCK.match(end)) or _minutes(start) >= _minutes(end):
                    raise InvalidInput(where, "needs HH:MM start and a later HH:MM end")
                if _minutes(start) < previous_end:
                    raise InvalidInput(where, "overlaps the interval before it")
                previous_end = _minutes(end)
            normalised_hours[day] = [[start, end] for start, end in intervals]
        if not any(normalised_hours.values()):
            raise InvalidInput("calendar.opening_hours", "the business must open at least once a week")
    closures = sorted({date.fromisoformat(str(d)).isoformat() for d in spec.get("closures", [])})
    return {
        "time_zone": time_zone,
        "country": country,
        "subdivision": subdivision,
        "opening_hours": normalised_hours,
        "closures": closures,
    }


def calendar_from_spec(spec: Mapping[str, Any] | None) -> BusinessCalendar:
    """Build the calendar of a normalised spec (`check_calendar`'s output); None is 24x7 in UTC."""
    if spec is None:
        return BusinessCalendar.always_open()
    hours = spec["opening_hours"]
    if hours is not None:
        week: Mapping[int, Any] = {WEEKDAYS.index(day): intervals for day, intervals in hours.items()}
    else:
        week = DEFAULT_OPENING_HOURS if spec["country"] else dict.fromkeys(range(7), (("00:00", "24:00"),))
    return BusinessCalendar(
        timezone=ZoneInfo(spec["time_zone"]),
        opening_hours=tuple(tuple(tuple(interval) for interval in week.get(day, ())) for day in range(7)),
        country=spec["country"],
        subdiv=spec["subdivision"],
        extra_closures=frozenset(date.fromisoformat(d) for d in spec["closures"]),
    )
