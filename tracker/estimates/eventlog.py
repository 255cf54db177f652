"""Event logs (CSV, XES, XES.gz) read into compact arrays.

One event is the completion of an activity in a case. Case and activity names become small
integer codes, timestamps float64 POSIX seconds, so a million events take a few tens of MB.
Files are streamed: CSV row by row, XES with ``iterparse`` and element clearing.

Real logs come as they are, so reading takes them as they are and says what it did
(:class:`LogReading`):

- Lifecycle. When some events have ``lifecycle:transition`` ``complete`` (any case: ``COMPLETE``),
  those events are the completions (an event without the attribute is atomic, so complete too);
  when none has, as in logs whose values are states such as ``In Progress`` or ``Resolved``, every
  event is taken as a completion. A chosen set of values (``lifecycle=``) overrides both.
- Timestamps without a UTC offset are taken in ``naive_tz`` (UTC unless told otherwise). Those
  that are not ISO 8601, such as ``03-04-2012 16:55`` or ``4/3/2012 4:55 PM``, are read as
  :mod:`tracker.estimates.timestamps` says, the order of day and month learnt from the file.
- Events out of time order inside a case are sorted by time (file order breaks ties). Events
  repeating one of the same case, activity, timestamp (and cost) are counted, and dropped only on
  request. Events without an activity or a timestamp are skipped; cases of a single event are kept.
- Resources: who handled each event (XES ``org:resource``, else the team, ``org:group``; a CSV
  column ``org:resource``, ``Resource`` or ``org:group``; or the one named) are kept when the log
  has them: how long a case has left often depends on who has it.
- CSV: the dialect (delimiter, quoting) is sniffed from the start of the file; a UTF-8 byte-order
  mark is skipped. A default column name the header lacks is looked for under the names other
  tools give it (``Case ID``, ``case:concept:name``...). A column named ``lifecycle:transition``
  or ``lifecycle`` is read as the lifecycle.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import math
from array import array
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO, Any, Protocol, cast
from xml.parsers import expat

import numpy as np
import numpy.typing as npt

from tracker.estimates.history import CaseHistory, FloatArray, IntArray, VisitRecord
from tracker.estimates.timestamps import DateOrder, LooseTimestamps, as_read

DEFAULT_CASE = "CaseID"
DEFAULT_ACTIVITY = "ActivityID"
DEFAULT_TIMESTAMP = "CompleteTimestamp"
EVERY_LIFECYCLE = "*"
"""As a chosen lifecycle value: every event is a completion, whatever its lifecycle."""

_COMPLETE = "complete"
_WELL_KNOWN_COLUMNS = {
    DEFAULT_CASE: ("case:concept:name", "Case ID", "case"),
    DEFAULT_ACTIVITY: ("concept:name", "Activity", "activity name"),
    DEFAULT_TIMESTAMP: ("time:timestamp", "Complete Timestamp", "timestamp", "End Timestamp", "end time"),
}
"""Names other tools give the columns a default name stands for, tried in order when the file does
not have the default (case, punctuation and spaces aside)."""
_LIFECYCLE_COLUMNS = ("lifecycle:transition", "lifecycle")
_RESOURCE_ATTRIBUTES = ("org:resource", "org:group")
"""XES event attributes read as the resource when none is named: the first an event has (a log that
names no person may still name the team)."""
_RESOURCE_COLUMNS = ("org:resource", "Resource", "org:group")
"""CSV columns read as the resource when none is named, the first the header has (case, punctuation
and spaces aside)."""
_SNIFF_BYTES = 64 * 1024
_VALUES_LISTED = 12


class WorkingTime(Protocol):
    """Working seconds between instants (POSIX seconds), as the business calendar gives them."""

    def working_seconds_between_many(
        self, start_epoch: npt.ArrayLike, end_epoch: npt.ArrayLike
    ) -> FloatArray: ...


@dataclass(frozen=True)
class LogReading:
    """How a file became an :class:`EventLog`: which events were kept, and what was assumed.

    ``lifecycle_rule`` is ``complete`` (the events whose lifecycle is complete), ``every-event``
    (no event is complete, so each is a completion) or ``chosen`` (the values in
    ``lifecycle_kept``, chosen by the caller). ``lifecycle_values`` counts each value seen in the
    file, most frequent first; events without a lifecycle are counted apart.
    """

    source: str
    events_in_file: int
    events: int
    cases: int
    lifecycle_rule: str
    lifecycle_kept: tuple[str, ...]
    lifecycle_values: tuple[tuple[str, int], ...]
    events_without_lifecycle: int
    lifecycle_events: int
    incomplete_events: int
    duplicate_events: int
    duplicates_dropped: bool
    reordered_cases: int
    single_event_cases: int
    naive_timestamps: int
    naive_time_zone: str
    date_order: DateOrder | None = None
    date_example: str = ""
    recognised_columns: tuple[tuple[str, str], ...] = ()
    """(what, column) of each CSV column found by a well-known name instead of the one asked for."""
    resource_column: str | None = None
    """The column (CSV) or attribute (XES) read as the resource, when the log has one."""
    resources: int = 0

    def lifecycle_summary(self) -> str:
        """One sentence: which lifecycle rule was applied, and to what."""
        seen = _listed(self.lifecycle_values, self.events_without_lifecycle)
        if self.lifecycle_rule == "every-event":
            if not self.lifecycle_values:
                return "none in the log: every event is a completion"
            return f"no event is 'complete' (values seen: {seen}): every event is a completion"
        kept = " or ".join(repr(value) for value in self.lifecycle_kept)
        how = "" if self.lifecycle_rule == _COMPLETE else ", as chosen"
        return (
            f"kept the {self.lifecycle_events:,} of {self.events_in_file:,} events whose lifecycle "
            f"is {kept}{how} (values seen: {seen})"
        )

    def describe(self) -> list[str]:
        """Lines for a report, labels in an 18-character column."""
        lines = [
            f"read              {self.source}: {self.events:,} events in {self.cases:,} cases "
            f"({self.events_in_file:,} events in the file)",
            f"lifecycle         {self.lifecycle_summary()}",
        ]
        if self.incomplete_events:
            lines.append(f"skipped           {self.incomplete_events:,} events without an activity or a time")
        if self.duplicate_events:
            fate = "dropped" if self.duplicates_dropped else "kept (drop them with --drop-duplicates)"
            lines.append(
                f"repeated          {self.duplicate_events:,} events repeat an earlier one of the same case, "
                f"activity and time: {fate}"
            )
        if self.reordered_cases:
            lines.append(f"out of order      {self.reordered_cases:,} cases, their events sorted by time")
        if self.single_event_cases:
            lines.append(f"single-event      {self.single_event_cases:,} cases of one event")
        if self.recognised_columns:
            found = ", ".join(f"{what} {column!r}" for what, column in self.recognised_columns)
            lines.append(f"columns           {found} (--case, --activity, --timestamp to choose others)")
        if self.resource_column:
            lines.append(
                f"resources         {self.resources:,} distinct in {self.resource_column!r} "
                "(who handled each event; --resource to choose another)"
            )
        if self.date_order:
            lines.append(
                f"timestamps        not ISO 8601, dates read {self.date_order}: {self.date_example!r} is "
                f"{as_read(self.date_example, self.date_order)} (--timestamp-format to say otherwise)"
            )
        if self.naive_timestamps:
            lines.append(
                f"time zone         {self.naive_timestamps:,} timestamps without a UTC offset, "
                f"read as {self.naive_time_zone}"
            )
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "events_in_file": self.events_in_file,
            "events": self.events,
            "cases": self.cases,
            "lifecycle_rule": self.lifecycle_rule,
            "lifecycle_kept": list(self.lifecycle_kept),
            "lifecycle_values": dict(self.lifecycle_values),
            "events_without_lifecycle": self.events_without_lifecycle,
            "lifecycle_summary": self.lifecycle_summary(),
            "incomplete_events": self.incomplete_events,
            "duplicate_events": self.duplicate_events,
            "duplicates_dropped": self.duplicates_dropped,
            "reordered_cases": self.reordered_cases,
            "single_event_cases": self.single_event_cases,
            "naive_timestamps": self.naive_timestamps,
            "naive_time_zone": self.naive_time_zone,
            "date_order": self.date_order,
            "recognised_columns": dict(self.recognised_columns),
            "resource_column": self.resource_column,
            "resources": self.resources,
        }


def _listed(values: tuple[tuple[str, int], ...], without: int) -> str:
    parts = [f"{value} ({count:,})" for value, count in values[:_VALUES_LISTED]]
    if len(values) > _VALUES_LISTED:
        parts.append(f"{len(values) - _VALUES_LISTED} more")
    if without:
        parts.append(f"no lifecycle ({without:,})")
    return ", ".join(parts) or "none"


@dataclass(frozen=True)
class EventLog:
    """Events sorted by case, then time (file order breaks ties). ``reading`` says how a file
    became this log (None for logs built in memory). ``resource`` codes who handled each event
    (names in ``resource_names``), None when the log does not say."""

    case: IntArray
    activity: IntArray
    time: FloatArray
    cost: FloatArray | None
    case_names: tuple[str, ...]
    activity_names: tuple[str, ...]
    reading: LogReading | None = None
    resource: IntArray | None = None
    resource_names: tuple[str, ...] = ()

    @property
    def n_events(self) -> int:
        return int(self.time.size)

    @property
    def n_cases(self) -> int:
        return len(self.case_names)

    @property
    def case_start(self) -> IntArray:
        """Index of each case's first event, plus the total count at the end."""
        counts = np.bincount(self.case, minlength=self.n_cases)
        return np.concatenate(([0], np.cumsum(counts))).astype(np.int64)

    @classmethod
    def from_arrays(
        cls,
        case: IntArray,
        activity: IntArray,
        time: FloatArray,
        cost: FloatArray | None,
        case_names: tuple[str, ...],
        activity_names: tuple[str, ...],
        *,
        ordered: bool = False,
        resource: IntArray | None = None,
        resource_names: tuple[str, ...] = (),
    ) -> EventLog:
        """Sort events into case/time order (unless already ``ordered``); cases without events
        are dropped."""
        if not ordered:
            order = _time_order(case, time)
            case, activity, time = case[order], activity[order], time[order]
            cost = None if cost is None else cost[order]
            resource = None if resource is None else resource[order]
        used, dense = np.unique(case, return_inverse=True)
        return cls(
            case=dense.astype(np.int64),
            activity=activity.astype(np.int64),
            time=time.astype(np.float64),
            cost=None if cost is None else cost.astype(np.float64),
            case_names=tuple(case_names[i] for i in used),
            activity_names=activity_names,
            resource=None if resource is None else resource.astype(np.int64),
            resource_names=resource_names,
        )


def _time_order(case: IntArray, time: FloatArray) -> IntArray:
    """Indices sorting events by case, then time, then position."""
    return np.lexsort((np.arange(time.size), time, case)).astype(np.int64)


class EventLogError(ValueError):
    """The file cannot be read as an event log with the given columns."""


def read_log(
    path: str | Path,
    *,
    case: str = DEFAULT_CASE,
    activity: str = DEFAULT_ACTIVITY,
    timestamp: str = DEFAULT_TIMESTAMP,
    timestamp_format: str | None = None,
    cost: str | None = None,
    lifecycle: Collection[str] | None = None,
    naive_tz: tzinfo = UTC,
    drop_duplicates: bool = False,
    resource: str | None = None,
) -> EventLog:
    """Read a CSV or XES log (optionally gzip-compressed), chosen by the file name.

    ``resource`` names the column or attribute of who handled each event; None reads the usual
    ones when the log has them (see the module docstring).
    ``lifecycle``: the lifecycle values that mark a completion (case-insensitive;
    :data:`EVERY_LIFECYCLE` for all events); None applies the rule of the module docstring.
    ``drop_duplicates`` keeps one of events equal in case, activity, time (and cost): by default
    they are kept, since at a coarse time resolution (dates only) they are distinct pieces of work.
    Raises :class:`EventLogError` saying why when no event can be used.
    """
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith(".xes"):
        return read_xes(
            path,
            cost=cost,
            lifecycle=lifecycle,
            naive_tz=naive_tz,
            drop_duplicates=drop_duplicates,
            resource=resource,
        )
    return read_csv(
        path,
        case=case,
        activity=activity,
        timestamp=timestamp,
        timestamp_format=timestamp_format,
        cost=cost,
        lifecycle=lifecycle,
        naive_tz=naive_tz,
        drop_duplicates=drop_duplicates,
        resource=resource,
    )


def _open_binary(path: str | Path) -> IO[bytes]:
    with Path(path).open("rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    if compressed:
        return cast("IO[bytes]", gzip.open(path, "rb"))
    return Path(path).open("rb")


class _Codes:
    """Names to dense integer codes, in order of first appearance."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.index)


_Event = tuple[str, str | None, str | None, str | None, str | None, str | None]
"""Case, activity, timestamp text, lifecycle, cost text and resource of one event, as written."""


class _RawEvents:
    """Events as the file gives them, in file order, before any is dropped. An event without a
    case, activity or timestamp gets activity -1; one without a lifecycle (or resource), -1."""

    def __init__(self, timestamp_format: str | None, naive_tz: tzinfo, with_cost: bool) -> None:
        self.timestamp_format = timestamp_format
        self.naive_tz = naive_tz
        self.with_cost = with_cost
        self.naive_timestamps = 0
        self.cases, self.activities, self.lifecycles = _Codes(), _Codes(), _Codes()
        self.resources = _Codes()
        self.case, self.activity, self.resource = array("q"), array("q"), array("q")
        self.lifecycle = array("i")  # few distinct values: 32 bits are plenty
        self.time, self.cost = array("d"), array("d")
        self.loose = LooseTimestamps(naive_tz)

    def read(self, events: Iterable[_Event]) -> None:
        """Append events; raises ValueError for a timestamp or cost that cannot be read.
        (The loop binds what it calls to locals: it runs once per event of big logs.)"""
        case_code, activity_code, lifecycle_code = (
            self.cases.index,
            self.activities.index,
            self.lifecycles.index,
        )
        add_case, add_activity, add_lifecycle = self.case.append, self.activity.append, self.lifecycle.append
        resource_code, add_resource = self.resources.index, self.resource.append
        add_time, add_cost = self.time.append, self.cost.append
        timestamp_format, naive_tz, with_cost = self.timestamp_format, self.naive_tz, self.with_cost
        parse, parse_format, nan = datetime.fromisoformat, datetime.strptime, math.nan
        loose, times = self.loose.read, self.time
        naive = 0
        case = ""
        try:
            for case, activity, stamp, lifecycle, amount, resource in events:
                text = stamp.strip() if stamp else ""
                if case and activity and text:
                    moment: datetime | None
                    if timestamp_format is not None:
                        moment = parse_format(text, timestamp_format)
                    else:
                        try:
                            moment = parse(text)
                        except ValueError:
                            moment = None
                    if moment is None:
                        add_time(loose(text, len(times)))
                    else:
                        if moment.tzinfo is None:
                            naive += 1
                            moment = moment.replace(tzinfo=naive_tz)
                        add_time(moment.timestamp())
                    code = activity_code.get(activity)
                    if code is None:
                        code = activity_code[activity] = len(activity_code)
                    add_activity(code)
                else:
                    add_time(nan)
                    add_activity(-1)
                if with_cost:
                    add_cost(float(amount) if amount and not amount.isspace() else 0.0)
                code = case_code.get(case)
                if code is None:
                    code = case_code[case] = len(case_code)
                add_case(code)
                if not resource:  # an empty cell names nobody
                    add_resource(-1)
                else:
                    code = resource_code.get(resource)
                    if code is None:
                        code = resource_code[resource] = len(resource_code)
                    add_resource(code)
                if lifecycle is None:
                    add_lifecycle(-1)
                else:
                    code = lifecycle_code.get(lifecycle := lifecycle.strip())
                    if code is None:
                        code = lifecycle_code[lifecycle] = len(lifecycle_code)
                    add_lifecycle(code)
        except ValueError as exc:
            raise ValueError(f"case {case!r}: {exc}") from exc
        finally:
            self.naive_timestamps += naive

    def assemble(
        self,
        path: str | Path,
        source: str,
        chosen: Collection[str] | None,
        drop_duplicates: bool,
        recognised_columns: tuple[tuple[str, str], ...] = (),
        resource_column: str | None = None,
    ) -> EventLog:
        """Keep the completion events and sort each case by time; count (and drop if asked)
        repeated events."""
        n = len(self.time)
        if n == 0:
            raise EventLogError(f"{path}: no events")
        try:
            for position, instant in self.loose.settle():
                self.time[position] = instant
        except ValueError as exc:
            raise EventLogError(f"{path}: {exc}") from exc
        lifecycle = np.frombuffer(self.lifecycle, dtype=np.int32)
        values = self.lifecycles.names
        counts = np.bincount(lifecycle + 1, minlength=len(values) + 1)
        rule, kept = _lifecycle_rule(values, chosen)
        folded = {value.casefold() for value in kept}
        keep_value = np.array(
            [EVERY_LIFECYCLE in folded or _COMPLETE in folded]
            + [EVERY_LIFECYCLE in folded or v.casefold() in folded for v in values]
        )
        keep = keep_value[lifecycle + 1]
        lifecycle_events = int(keep.sum())
        seen = tuple(sorted(zip(values, counts[1:].tolist(), strict=True), key=lambda vc: -vc[1]))
        if lifecycle_events == 0:
            wanted = " or ".join(repr(value) for value in kept)
            raise EventLogError(
                f"{path}: 0 of {n:,} events have lifecycle {wanted}; "
                f"lifecycle values seen: {_listed(seen, int(counts[0]))}"
            )
        activity = np.frombuffer(self.activity, dtype=np.int64)
        usable = keep & (activity >= 0)
        if not usable.any():
            raise EventLogError(
                f"{path}: none of the {lifecycle_events:,} events to use has a case, an activity "
                "and a timestamp"
            )
        used = int(usable.sum())
        every_case = np.frombuffer(self.case, dtype=np.int64)
        every_time = np.frombuffer(self.time, dtype=np.float64)
        idx = None if used == n else np.flatnonzero(usable)  # usually every event is used
        order = _time_order(
            every_case if idx is None else every_case[idx], every_time if idx is None else every_time[idx]
        )
        pick = order if idx is None else idx[order]
        case, time, activity = every_case[pick], every_time[pick], activity[pick]
        cost = np.frombuffer(self.cost, dtype=np.float64)[pick] if self.with_cost else None
        resource = np.frombuffer(self.resource, dtype=np.int64)[pick] if self.resources.index else None
        if resource is not None and not (resource >= 0).any():  # named on events not kept only
            resource = None
        same_case = case[1:] == case[:-1]
        reordered = np.unique(case[1:][same_case & (order[1:] < order[:-1])]).size
        repeats = _repeats(case, activity, time, cost)
        if drop_duplicates and repeats.size:
            unique = np.delete(np.arange(time.size), repeats)
            case, activity, time = case[unique], activity[unique], time[unique]
            cost = None if cost is None else cost[unique]
            resource = None if resource is None else resource[unique]
        named = 0 if resource is None else int(np.unique(resource[resource >= 0]).size)
        if resource is not None:  # events without a resource share the unnamed one
            resource = np.where(resource < 0, len(self.resources.index), resource)
        names = self.activities.names
        present = np.bincount(activity, minlength=len(names)) > 0
        if not present.all():  # activities seen only on events not kept
            activity = (np.cumsum(present) - 1)[activity]
        log = EventLog.from_arrays(
            case,
            activity,
            time,
            cost,
            self.cases.names,
            tuple(np.array(names, dtype=object)[present]),
            ordered=True,
            resource=resource,
            resource_names=(*self.resources.names, "") if resource is not None else (),
        )
        per_case = np.bincount(log.case, minlength=log.n_cases)
        reading = LogReading(
            source=source,
            events_in_file=n,
            events=log.n_events,
            cases=log.n_cases,
            lifecycle_rule=rule,
            lifecycle_kept=kept,
            lifecycle_values=seen,
            events_without_lifecycle=int(counts[0]),
            lifecycle_events=lifecycle_events,
            incomplete_events=lifecycle_events - used,
            duplicate_events=int(repeats.size),
            duplicates_dropped=drop_duplicates,
            reordered_cases=int(reordered),
            single_event_cases=int((per_case == 1).sum()),
            naive_timestamps=self.naive_timestamps + self.loose.naive,
            naive_time_zone=str(self.naive_tz),
            date_order=self.loose.order,
            date_example=self.loose.example,
            recognised_columns=recognised_columns,
            resource_column=resource_column if resource is not None else None,
            resources=named,
        )
        return replace(log, reading=reading)


def _lifecycle_rule(values: tuple[str, ...], chosen: Collection[str] | None) -> tuple[str, tuple[str, ...]]:
    """The rule's name and the lifecycle values it keeps."""
    if chosen is not None:
        return "chosen", tuple(value.strip() for value in chosen)
    if any(value.casefold() == _COMPLETE for value in values):
        return _COMPLETE, (_COMPLETE,)
    return "every-event", (EVERY_LIFECYCLE,)


def _repeats(case: IntArray, activity: IntArray, time: FloatArray, cost: FloatArray | None) -> IntArray:
    """Positions of events equal in case, activity, time (and cost) to an earlier one. Events are
    sorted by case and time, so only events sharing both with a neighbour can repeat another."""
    tie = (case[1:] == case[:-1]) & (time[1:] == time[:-1])
    if not tie.any():
        return np.zeros(0, dtype=np.int64)
    in_tie = np.zeros(case.size, dtype=np.bool_)
    in_tie[1:] |= tie
    in_tie[:-1] |= tie
    pos = np.flatnonzero(in_tie)
    keys = [case[pos], time[pos], activity[pos], *([] if cost is None else [cost[pos]])]
    order = np.lexsort((pos, *reversed(keys)))
    same = np.ones(order.size - 1, dtype=np.bool_)
    for key in keys:
        ordered = key[order]
        same &= ordered[1:] == ordered[:-1]
    return np.sort(pos[order[1:][same]])


def read_csv(
    path: str | Path,
    *,
    case: str = DEFAULT_CASE,
    activity: str = DEFAULT_ACTIVITY,
    timestamp: str = DEFAULT_TIMESTAMP,
    timestamp_format: str | None = None,
    cost: str | None = None,
    lifecycle: Collection[str] | None = None,
    naive_tz: tzinfo = UTC,
    drop_duplicates: bool = False,
    resource: str | None = None,
) -> EventLog:
    """Stream a CSV log. Timestamps are ISO 8601 unless ``timestamp_format`` (strptime) is given;
    naive ones are taken in ``naive_tz``. Empty cost cells count as 0. ``resource`` names the
    column of who handled each event (None: the first of the usual ones the header has, if any)."""
    raw = _RawEvents(timestamp_format, naive_tz, with_cost=cost is not None)
    with _open_binary(path) as binary:
        sample = binary.read(_SNIFF_BYTES)
        binary.seek(0)
        dialect, source = _sniff(sample)
        handle = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        reader = csv.reader(handle, dialect)
        header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            raise EventLogError(f"{path}: empty file")
        columns = {name.strip(): i for i, name in enumerate(header)}
        asked = (case, activity, timestamp)
        case, activity, timestamp = found = tuple(_recognised(name, columns) for name in asked)
        recognised = tuple(
            (what, column)
            for what, name, column in zip(("case", "activity", "time"), asked, found, strict=True)
            if column != name
        )
        if resource is None:
            resource = _first_present(_RESOURCE_COLUMNS, columns)
        wanted = [case, activity, timestamp, *([cost] if cost else []), *([resource] if resource else [])]
        absent = [name for name in wanted if name not in columns]
        if absent:
            raise EventLogError(
                f"{path}: no column {', '.join(map(repr, absent))} (has {', '.join(columns)}; read {source})"
            )
        li = next((i for name, i in columns.items() if name.casefold() in _LIFECYCLE_COLUMNS), -1)
        if lifecycle is not None and li < 0:
            raise EventLogError(f"{path}: a lifecycle was chosen but there is no column {_LIFECYCLE_COLUMNS}")
        ci, ai, ti = columns[case], columns[activity], columns[timestamp]
        ki = columns[cost] if cost else -1
        ri = columns[resource] if resource else -1

        def events() -> Iterator[_Event]:
            for row in reader:
                if row:
                    lifecycle_cell = row[li] if li >= 0 else None
                    cost_cell = row[ki] if ki >= 0 else None
                    yield row[ci], row[ai], row[ti], lifecycle_cell, cost_cell, row[ri] if ri >= 0 else None

        try:
            raw.read(events())
        except (ValueError, IndexError) as exc:
            raise EventLogError(f"{path}, line {reader.line_num}: {exc}") from exc
    return raw.assemble(path, source, lifecycle, drop_duplicates, recognised, resource)


def _recognised(name: str, columns: Mapping[str, int]) -> str:
    """``name``, unless it is a default the header lacks: then the first of its well-known names
    (:data:`_WELL_KNOWN_COLUMNS`) the header has, if any."""
    if name in columns or name not in _WELL_KNOWN_COLUMNS:
        return name
    return _first_present(_WELL_KNOWN_COLUMNS[name], columns) or name


def _first_present(names: Iterable[str], columns: Mapping[str, int]) -> str | None:
    """The header's column for the first of ``names`` it has (case, punctuation and spaces aside)."""
    folded = {_folded(column): column for column in columns}
    found = (folded.get(_folded(name)) for name in names)
    return next((column for column in found if column is not None), None)


def _folded(name: str) -> str:
    return "".join(character for character in name.casefold() if character.isalnum())


def _sniff(sample: bytes) -> tuple[type[csv.Dialect], str]:
    """The CSV dialect of the file's first bytes, and how to describe it."""
    bom = sample.startswith(codecs.BOM_UTF8)
    text = sample.decode("utf-8-sig", errors="ignore")
    if len(sample) == _SNIFF_BYTES:
        text = text[: text.rfind("\n") + 1] or text  # whole lines only
    try:
        dialect = csv.Sniffer().sniff(text, delimiters=",;\t|")
    except csv.Error:
        first_line = text.partition("\n")[0]

        class Counted(csv.excel):
            delimiter = max(",;\t|", key=first_line.count)

        dialect = Counted
    dialect.doublequote = True  # the sniffer guesses it from too little
    names = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
    source = f"CSV ({names.get(dialect.delimiter, repr(dialect.delimiter))}-separated"
    source += ", byte-order mark skipped)" if bom else ")"
    return dialect, source


_CHUNK = 1 << 20


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _xes_events(
    handle: IO[bytes], cost: str | None, resources: tuple[str, ...], used: set[str]
) -> Iterator[_Event]:
    """Yield (case name, activity, timestamp text, lifecycle, cost text, resource) for every event,
    trace by trace. A trace without a name is named by its position.

    An event's attributes are its child elements (``<string key=... value=.../>``, ``<date>``...),
    and a trace's name is a ``concept:name`` child of the trace itself. The file is read with expat's
    own callbacks, chunk by chunk: no element tree is built (a multi-year log has a dozen attributes
    per event, and building their elements took half as long as the backtest itself)."""
    parser = expat.ParserCreate(namespace_separator="}")
    ready: list[_Event] = []
    pending: list[tuple[str | None, str | None, str | None, str | None, str | None]] = []
    attributes: dict[str | None, str | None] = {}
    level = 0
    trace_level = event_level = -1  # the depth of the open trace and event, -1 outside one
    trace_name: str | None = None
    traces = 0

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal level, trace_level, event_level, trace_name
        level += 1
        if event_level >= 0:
            if level == event_level + 1:
                attributes[attrs.get("key")] = attrs.get("value")
            return
        local = _local(tag)
        if trace_level < 0:
            if local == "trace":
                trace_level, trace_name = level, None
        elif local == "event":
            event_level = level
            attributes.clear()
        elif level == trace_level + 1 and local == "string" and attrs.get("key") == "concept:name":
            trace_name = attrs.get("value") or ""

    def end(tag: str) -> None:
        nonlocal level, trace_level, event_level, traces
        if level == event_level:
            event_level = -1
            pending.append(
                (
                    attributes.get("concept:name"),
                    attributes.get("time:timestamp"),
                    attributes.get("lifecycle:transition"),
                    attributes.get(cost) if cost else None,
                    _first_named(attributes, resources, used),
                )
            )
        elif level == trace_level:
            trace_level = -1
            traces += 1
            name = trace_name if trace_name is not None else f"trace {traces}"
            ready.extend((name, *event) for event in pending)
            pending.clear()
        level -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    # Logs are files an operator chose to import; expat (>= 2.4) already bounds entity expansion.
    while chunk := handle.read(_CHUNK):
        parser.Parse(chunk, False)
        yield from ready
        ready.clear()
    parser.Parse(b"", True)
    yield from ready


def _first_named(
    attributes: Mapping[str | None, str | None], keys: tuple[str, ...], used: set[str]
) -> str | None:
    """The value of the first of ``keys`` the event has, the key added to ``used``."""
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            used.add(key)
            return value
    return None


def read_xes(
    path: str | Path,
    *,
    cost: str | None = None,
    lifecycle: Collection[str] | None = None,
    naive_tz: tzinfo = UTC,
    drop_duplicates: bool = False,
    resource: str | None = None,
) -> EventLog:
    """Stream an XES log (IEEE 1849): trace and event ``concept:name``, ``time:timestamp`` and
    ``lifecycle:transition`` (see the module docstring); ``cost`` names an event attribute, and
    ``resource`` the one of who handled the event (unless told, ``org:resource`` or ``org:group``)."""
    raw = _RawEvents(None, naive_tz, with_cost=cost is not None)
    keys = (resource,) if resource else _RESOURCE_ATTRIBUTES
    used: set[str] = set()
    with _open_binary(path) as handle:
        try:
            raw.read(_xes_events(handle, cost, keys, used))
        except (expat.ExpatError, ValueError) as exc:
            raise EventLogError(f"{path}: {exc}") from exc
    read_as = ", ".join(key for key in keys if key in used) or None
    return raw.assemble(path, "XES", lifecycle, drop_duplicates, resource_column=read_as)


def iso_utc(epoch: FloatArray) -> list[str]:
    """ISO 8601 UTC strings (millisecond precision) for POSIX seconds."""
    stamps = np.datetime_as_string(np.round(epoch * 1000).astype("datetime64[ms]"), unit="ms")
    return [f"{stamp}Z" for stamp in stamps.tolist()]


def write_csv(log: EventLog, path: str | Path) -> None:
    """Write a log as ``CaseID,ActivityID,CompleteTimestamp[,Cost][,Resource]`` with UTC ISO
    timestamps."""
    columns: list[list[Any]] = [
        np.array(log.case_names, dtype=object)[log.case].tolist(),
        np.array(log.activity_names, dtype=object)[log.activity].tolist(),
        iso_utc(log.time),
    ]
    header = [DEFAULT_CASE, DEFAULT_ACTIVITY, DEFAULT_TIMESTAMP]
    if log.cost is not None:
        header.append("Cost")
        columns.append(log.cost.tolist())
    if log.resource is not None:
        header.append("Resource")
        columns.append(np.array(log.resource_names, dtype=object)[log.resource].tolist())
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(zip(*columns, strict=True))


def log_to_cases(
    log: EventLog,
    *,
    mapping: Mapping[str, str] | None = None,
    calendar: WorkingTime | None = None,
    running: Collection[str] = frozenset(),
    now: datetime | None = None,
) -> list[CaseHistory]:
    """Turn a log into per-case stage visits for importing history.

    Each event completes a visit to the stage its activity maps to (``mapping``, identity for
    activities it does not name); the visit began at the case's previous event. The first event
    is the case start, so its visit lasts zero. Durations are working seconds of ``calendar``
    (24x7 when None). Cases are closed at their last event unless named in ``running``, whose
    open time since their last event runs up to ``now``.
    """
    if running and now is None:
        raise ValueError("now is needed to censor running cases")
    mapping = mapping or {}
    stages = [mapping.get(name, name) for name in log.activity_names]
    start = log.case_start
    previous = np.where(np.arange(log.n_events) == start[log.case], log.time, np.roll(log.time, 1))
    if calendar is None:
        durations = log.time - previous
    else:
        durations = calendar.working_seconds_between_many(previous, log.time)
    cases: list[CaseHistory] = []
    for c, case_id in enumerate(log.case_names):
        lo, hi = int(start[c]), int(start[c + 1])
        visits = tuple(
            VisitRecord(
                case_id=case_id,
                stage_key=stages[log.activity[i]],
                entered_at=datetime.fromtimestamp(previous[i], UTC),
                duration_s=float(durations[i]),
                finished=True,
            )
            for i in range(lo, hi)
        )
        is_open = case_id in running
        open_s = 0.0
        if is_open and now is not None:
            last = float(log.time[hi - 1])
            end = max(now.timestamp(), last)
            open_s = (
                end - last if calendar is None else float(calendar.working_seconds_between_many(last, end))
            )
        cases.append(CaseHistory(case_id, visits, finished=not is_open, open_s=open_s))
    return cases
