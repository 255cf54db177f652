"""Business calendar: opening hours, public holidays and closures, in working time.

Stage durations are learned and simulated in working seconds; this module converts between
working time and real (timezone-aware) instants. Open intervals are built from local wall-clock
times through ``zoneinfo``, so a 08:00-18:00 day lasts 10 h on both sides of a DST change.
Wall-clock times that do not exist (inside a spring-forward gap) are snapped to the instant of
the jump, so an opening interval that spans the gap is one hour shorter that day; times that
occur twice (fall-back) use their first occurrence (``fold=0``), so an interval spanning the
repeated hour is one hour longer.

The scalar methods walk the calendar day by day (for explanations and tests); the ``*_many``
methods work on float64 POSIX seconds over intervals materialised lazily per range of years, for
the hot recomputation path.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
# Opening hours of one weekday as (start, end) seconds after local midnight, end <= 86400.
DayHours = tuple[tuple[int, int], ...]
TimeLike = time | str | int  # an int is seconds after midnight
HoursSpec = Mapping[int, Sequence[tuple[TimeLike, TimeLike]]]

_DAY = 86_400
_MAX_YEAR = 9998
_MIN_EPOCH = datetime(2, 1, 1, tzinfo=UTC).timestamp()
_MAX_EPOCH = datetime(_MAX_YEAR, 1, 1, tzinfo=UTC).timestamp()

_DEFAULT_TZ_BY_COUNTRY: Mapping[str, str] = {
    "AT": "Europe/Vienna",
    "BE": "Europe/Brussels",
    "CH": "Europe/Zurich",
    "CZ": "Europe/Prague",
    "DE": "Europe/Berlin",
    "DK": "Europe/Copenhagen",
    "ES": "Europe/Madrid",
    "FI": "Europe/Helsinki",
    "FR": "Europe/Paris",
    "GB": "Europe/London",
    "IE": "Europe/Dublin",
    "IT": "Europe/Rome",
    "LU": "Europe/Luxembourg",
    "NL": "Europe/Amsterdam",
    "NO": "Europe/Oslo",
    "PL": "Europe/Warsaw",
    "PT": "Europe/Lisbon",
    "SE": "Europe/Stockholm",
    "UK": "Europe/London",
}
# Subdivisions of the countries above that lie in another time zone.
_DEFAULT_TZ_BY_SUBDIV: Mapping[tuple[str, str], str] = {
    ("ES", "CN"): "Atlantic/Canary",
    ("FR", "971"): "America/Guadeloupe",
    ("FR", "972"): "America/Martinique",
    ("FR", "973"): "America/Cayenne",
    ("FR", "974"): "Indian/Reunion",
    ("FR", "976"): "Indian/Mayotte",
    ("FR", "BL"): "America/St_Barthelemy",
    ("FR", "MF"): "America/Marigot",
    ("FR", "NC"): "Pacific/Noumea",
    ("FR", "PF"): "Pacific/Tahiti",
    ("FR", "PM"): "America/Miquelon",
    ("FR", "TF"): "Indian/Kerguelen",
    ("FR", "WF"): "Pacific/Wallis",
    ("PT", "20"): "Atlantic/Azores",
    ("PT", "30"): "Atlantic/Madeira",
}

DEFAULT_OPENING_HOURS: HoursSpec = dict.fromkeys(range(5), (("08:00", "18:00"),))


def _to_seconds(value: TimeLike) -> int:
    """Seconds after midnight of a ``time`` or an ``HH:MM[:SS]`` string (``24:00`` allowed)."""
    if isinstance(value, int):
        if not 0 <= value <= _DAY:
            raise ValueError(f"invalid time of day {value!r}")
        return value
    if isinstance(value, time):
        return value.hour * 3600 + value.minute * 60 + value.second
    parts = [int(p) for p in value.split(":")]
    if not 2 <= len(parts) <= 3:
        raise ValueError(f"invalid time of day {value!r}")
    hours, minutes, seconds = (*parts, 0)[:3]
    total = hours * 3600 + minutes * 60 + seconds
    if not (0 <= minutes < 60 and 0 <= seconds < 60 and 0 <= total <= _DAY):
        raise ValueError(f"invalid time of day {value!r}")
    return total


def _normalise_hours(spec: HoursSpec) -> tuple[DayHours, ...]:
    week: list[DayHours] = []
    for weekday in range(7):
        spans = sorted((_to_seconds(a), _to_seconds(b)) for a, b in spec.get(weekday, ()))
        for (_, e1), (s2, _) in pairwise(spans):
            if s2 < e1:
                raise ValueError(f"overlapping opening hours on weekday {weekday}")
        if any(s >= e for s, e in spans):
            raise ValueError(f"empty or reversed opening interval on weekday {weekday}")
        week.append(tuple(spans))
    if unknown := set(spec) - set(range(7)):
        raise ValueError(f"weekdays must be 0 (Monday) to 6, got {sorted(unknown)}")
    if not any(week):
        raise ValueError("the calendar must be open on at least one weekday")
    return tuple(week)


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant!r}: pass a timezone-aware datetime")


@dataclass
class _Materialised:
    """Open intervals of a range of years as epoch seconds, with cumulative working time."""

    first_year: int
    last_year: int
    starts: FloatArray
    ends: FloatArray
    cum_start: FloatArray  # working seconds from the horizon start to each interval start
    cum_end: FloatArray  # ... to each interval end


@dataclass
class _Cache:
    holidays: holidays.HolidayBase | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    materialised: _Materialised | None = None


@dataclass(frozen=True)
class BusinessCalendar:
    """Working time of a business: weekly opening hours minus public holidays and closures.

    Build it with :meth:`always_open`, :meth:`for_country` or :meth:`parse`. Instants
    returned by the methods are expressed in the calendar's time zone.
    """

    timezone: ZoneInfo
    opening_hours: tuple[DayHours, ...]
    country: str | None = None
    subdiv: str | None = None
    extra_closures: frozenset[date] = frozenset()
    _cache: _Cache = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if len(self.opening_hours) != 7:
            raise ValueError("opening_hours needs one entry per weekday")
        object.__setattr__(self, "opening_hours", _normalise_hours(dict(enumerate(self.opening_hours))))
        # The holidays object fills in years lazily as dates are looked up.
        calendar = (
            holidays.country_holidays(self.country, subdiv=self.subdiv) if self.country is not None else None
        )
        object.__setattr__(self, "_cache", _Cache(holidays=calendar))

    # ----------------------------------------------------------------- constructors

    @classmethod
    def always_open(cls) -> BusinessCalendar:
        """24x7 in UTC: working time equals elapsed time."""
        return cls(timezone=ZoneInfo("UTC"), opening_hours=(((0, _DAY),),) * 7)

    @classmethod
    def for_country(
        cls,
        country: str,
        subdiv: str | None = None,
        *,
        timezone: str | None = None,
        opening_hours: HoursSpec = DEFAULT_OPENING_HOURS,
        extra_closures: Sequence[date] = (),
    ) -> BusinessCalendar:
        """Public holidays of ``country`` (and ``subdiv``), Mon-Fri 08:00-18:00 by default.

        ``opening_hours`` maps a weekday (0 = Monday) to its intervals, e.g.
        ``{0: [("08:00", "12:00"), ("13:00", "17:30")]}``; missing weekdays are closed.
        The time zone defaults to the country's (or overseas subdivision's) usual one.
        """
        country = country.upper()
        if timezone is None:
            timezone = _DEFAULT_TZ_BY_SUBDIV.get((country, subdiv or ""), _DEFAULT_TZ_BY_COUNTRY.get(country))
            if timezone is None:
                raise ValueError(f"no default time zone for {country!r}: pass timezone=")
        return cls(
            timezone=ZoneInfo(timezone),
            opening_hours=_normalise_hours(opening_hours),
            country=country,
            subdiv=subdiv,
            extra_closures=frozenset(extra_closures),
        )

    @classmethod
    def parse(cls, spec: str) -> BusinessCalendar:
        """Parse ``24x7``, ``CC`` or ``CC-SUBDIV`` (e.g. ``FR``, ``DE-BY``), as given on a CLI."""
        spec = spec.strip()
        if spec.lower() == "24x7":
            return cls.always_open()
        country, _, subdiv = spec.partition("-")
        if len(country) != 2 or not country.isalpha():
            raise ValueError(f"invalid calendar {spec!r}: expected 24x7, CC or CC-SUBDIV")
        try:
            return cls.for_country(country, subdiv or None)
        except (NotImplementedError, ValueError) as exc:  # `holidays` raises the former
            raise ValueError(f"invalid calendar {spec!r}: {exc}") from exc

    # ----------------------------------------------------------------- days

    @property
    def working_day_seconds(self) -> float:
        """Nominal length of a full working day (the longest weekday's opening hours)."""
        return float(max(sum(e - s for s, e in day) for day in self.opening_hours))

    def is_working_day(self, day: date) -> bool:
        """Whether the local date has opening hours and is neither a holiday nor a closure."""
        return bool(self.opening_hours[day.weekday()]) and self.closure_reason(day) is None

    def closure_reason(self, day: date) -> str | None:
        """Name of the holiday or ``"closure"`` when the business is closed that date."""
        if day in self.extra_closures:
            return "closure"
        calendar = self._cache.holidays
        if calendar is not None and day in calendar:
            return str(calendar.get(day))
        return None

    def non_working_days_between(self, start: datetime, end: datetime) -> list[date]:
        """Local dates from ``start``'s to ``end``'s (inclusive) without any working time."""
        _require_aware(start)
        _require_aware(end)
        if end <= start:
            return []
        day = start.astimezone(self.timezone).date()
        last = end.astimezone(self.timezone).date()
        days: list[date] = []
        while day <= last:
            if not self.is_working_day(day):
                days.append(day)
            day += timedelta(days=1)
        return days

    def _wall_to_epoch(self, day: date, seconds: int) -> float:
        naive = datetime.combine(day, time()) + timedelta(seconds=seconds)
        first = naive.replace(tzinfo=self.timezone)
        offset_before = first.utcoffset()
        offset_after = naive.replace(tzinfo=self.timezone, fold=1).utcoffset()
        assert offset_before is not None and offset_after is not None
        if offset_after <= offset_before:  # regular or repeated (fall-back) time: fold=0
            return first.timestamp()
        # Non-existent wall time: binary-search the instant of the jump, which lies between
        # the two readings of the naive time.
        lo = int((naive - offset_after).replace(tzinfo=UTC).timestamp())
        hi = int((naive - offset_before).replace(tzinfo=UTC).timestamp())
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if datetime.fromtimestamp(mid, self.timezone).utcoffset() == offset_after:
                hi = mid
            else:
                lo = mid
        return float(hi)

    def _day_intervals(self, day: date) -> list[tuple[float, float]]:
        """Open intervals of a local date as epoch seconds (empty on closed days)."""
        if not self.is_working_day(day):
            return []
        spans = (
            (self._wall_to_epoch(day, s), self._wall_to_epoch(day, e))
            for s, e in self.opening_hours[day.weekday()]
        )
        return [(s, e) for s, e in spans if e > s]

    def _to_datetime(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, self.timezone)

    # ----------------------------------------------------------------- scalar operations

    def working_seconds_between(self, start: datetime, end: datetime) -> float:
        """Working seconds in ``[start, end)``; 0 when ``end <= start``."""
        _require_aware(start)
        _require_aware(end)
        lo, hi = start.timestamp(), end.timestamp()
        if hi <= lo:
            return 0.0
        # Scalar path without array overhead: change detection calls this per job.
        table = self._table(*_years_of(lo, hi))
        return _cumulative_at(table, hi) - _cumulative_at(table, lo)

    def working_seconds_excluding(
        self,
        start: datetime,
        end: datetime,
        pauses: Sequence[tuple[datetime, datetime]],
    ) -> float:
        """Working seconds in ``[start, end)`` outside the (possibly overlapping) pauses.

        Used for on-hold periods that stop the clock.
        """
        total = self.working_seconds_between(start, end)
        clipped = sorted((max(a, start), min(b, end)) for a, b in pauses)
        merged: list[tuple[datetime, datetime]] = []
        for a, b in clipped:
            if b <= a:
                continue
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return total - sum(self.working_seconds_between(a, b) for a, b in merged)

    def add_working_seconds(self, start: datetime, seconds: float) -> datetime:
        """Instant after ``seconds`` of working time from ``start``.

        The result lies inside opening hours, or exactly at the end of an interval when the
        time runs out there. ``seconds == 0`` returns ``start`` (in the calendar's zone) even
        when closed: use :meth:`next_open` to move to the next opening.
        """
        _require_aware(start)
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        if seconds == 0:
            return start.astimezone(self.timezone)
        return self._to_datetime(float(self.add_working_seconds_many([start.timestamp()], [seconds])[0]))

    def next_open(self, instant: datetime) -> datetime:
        """``instant`` itself (in the calendar's zone) when open, else the next opening."""
        _require_aware(instant)
        t = instant.timestamp()
        table = self._table(*_years_of(t, t))
        while True:
            index = int(np.searchsorted(table.starts, t, side="right"))
            if index > 0 and t < table.ends[index - 1]:
                return instant.astimezone(self.timezone)
            if index < len(table.starts):
                return self._to_datetime(float(table.starts[index]))
            table = self._table(table.first_year, table.last_year + 1)

    # ----------------------------------------------------------------- vectorised operations

    def working_seconds_between_many(
        self, start_epoch: npt.ArrayLike, end_epoch: npt.ArrayLike
    ) -> FloatArray:
        """Vectorised :meth:`working_seconds_between` on POSIX seconds (broadcast)."""
        start, end = np.broadcast_arrays(_as_epoch(start_epoch), _as_epoch(end_epoch))
        if start.size == 0:
            return np.zeros(start.shape)
        table = self._table(*_years_of(min(start.min(), end.min()), max(start.max(), end.max())))
        return np.maximum(_cumulative(table, end) - _cumulative(table, start), 0.0)

    def add_working_seconds_many(self, start_epoch: npt.ArrayLike, seconds: npt.ArrayLike) -> FloatArray:
        """Vectorised :meth:`add_working_seconds` on POSIX seconds (broadcast)."""
        start, secs = np.broadcast_arrays(_as_epoch(start_epoch), _as_epoch(seconds))
        if start.size == 0:
            return np.zeros(start.shape)
        if (secs < 0).any():
            raise ValueError("seconds must be >= 0")
        table = self._table(*_years_of(start.min(), start.max()))
        while True:
            target = _cumulative(table, start) + secs
            missing = target.max() - table.cum_end[-1]
            if missing <= 0:
                break
            # Extend the horizon by (a generous estimate of) the years still missing.
            per_year = max(table.cum_end[-1] / (table.last_year - table.first_year + 1), 1.0)
            table = self._table(table.first_year, table.last_year + int(missing / per_year) + 1)
        index = np.searchsorted(table.cum_end, target, side="left")
        result = table.starts[index] + (target - table.cum_start[index])
        # The clip only absorbs float rounding of the cumulative sums.
        result = np.clip(result, table.starts[index], table.ends[index])
        return np.where(secs == 0, start, result)

    def _table(self, first_year: int, last_year: int) -> _Materialised:
        """Open intervals covering at least those local years (cached, grown as needed)."""
        cache = self._cache
        with cache.lock:
            table = cache.materialised
            if table is not None and table.first_year <= first_year and last_year <= table.last_year:
                return table
            if table is not None:
                first_year, last_year = min(first_year, table.first_year), max(last_year, table.last_year)
            if not 1 < first_year <= last_year < _MAX_YEAR:
                raise ValueError("instant outside the supported calendar range")
            spans: list[tuple[float, float]] = []
            day, stop = date(first_year, 1, 1), date(last_year + 1, 1, 1)
            while day < stop:
                spans.extend(self._day_intervals(day))
                day += timedelta(days=1)
            starts = np.array([s for s, _ in spans], dtype=np.float64)
            ends = np.array([e for _, e in spans], dtype=np.float64)
            cum_end = np.cumsum(ends - starts)
            table = _Materialised(first_year, last_year, starts, ends, cum_end - (ends - starts), cum_end)
            cache.materialised = table
            return table


def _years_of(lo: float, hi: float) -> tuple[int, int]:
    """Years to materialise so that the local dates of instants in ``[lo, hi]`` are covered."""
    margin = 2 * _DAY
    return (
        datetime.fromtimestamp(max(lo - margin, _MIN_EPOCH), UTC).year,
        datetime.fromtimestamp(min(hi + margin, _MAX_EPOCH), UTC).year,
    )


def _as_epoch(values: npt.ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError("epoch seconds must be finite")
    return array


def _cumulative(table: _Materialised, instants: FloatArray) -> FloatArray:
    """Working seconds from the horizon start up to each instant."""
    index = np.searchsorted(table.starts, instants, side="right") - 1
    safe = np.maximum(index, 0)
    inside = np.clip(instants - table.starts[safe], 0.0, table.ends[safe] - table.starts[safe])
    return np.where(index >= 0, table.cum_start[safe] + inside, 0.0)


def _cumulative_at(table: _Materialised, instant: float) -> float:
    """Scalar :func:`_cumulative`."""
    index = int(np.searchsorted(table.starts, instant, side="right")) - 1
    if index < 0:
        return 0.0
    start, end = float(table.starts[index]), float(table.ends[index])
    return float(table.cum_start[index]) + min(max(instant - start, 0.0), end - start)
