"""Event logs (CSV, XES, XES.gz) read into compact arrays.

One event is the completion of an activity in a case. Case and activity names become small
integer codes, timestamps float64 POSIX seconds, so a million events take a few tens of MB.
Files are streamed: CSV row by row, XES with ``iterparse`` and element clearing.
"""

from __future__ import annotations

import csv
import gzip
import io
import xml.etree.ElementTree as ET
from array import array
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO, Protocol, cast

import numpy as np
import numpy.typing as npt

from tracker.estimates.history import CaseHistory, FloatArray, IntArray, VisitRecord

DEFAULT_CASE = "CaseID"
DEFAULT_ACTIVITY = "ActivityID"
DEFAULT_TIMESTAMP = "CompleteTimestamp"


class WorkingTime(Protocol):
    """Working seconds between instants (POSIX seconds), as the business calendar gives them."""

    def working_seconds_between_many(
        self, start_epoch: npt.ArrayLike, end_epoch: npt.ArrayLike
    ) -> FloatArray: ...


@dataclass(frozen=True)
class EventLog:
    """Events sorted by case, then time (file order breaks ties)."""

    case: IntArray
    activity: IntArray
    time: FloatArray
    cost: FloatArray | None
    case_names: tuple[str, ...]
    activity_names: tuple[str, ...]

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
    ) -> EventLog:
        """Sort events into case/time order; cases without events are dropped."""
        order = np.lexsort((np.arange(time.size), time, case))
        case = case[order]
        used, dense = np.unique(case, return_inverse=True)
        return cls(
            case=dense.astype(np.int64),
            activity=activity[order].astype(np.int64),
            time=time[order].astype(np.float64),
            cost=None if cost is None else cost[order].astype(np.float64),
            case_names=tuple(case_names[i] for i in used),
            activity_names=activity_names,
        )


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
    naive_tz: tzinfo = UTC,
) -> EventLog:
    """Read a CSV or XES log (optionally gzip-compressed), chosen by the file name."""
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith(".xes"):
        return read_xes(path, cost=cost, naive_tz=naive_tz)
    return read_csv(
        path,
        case=case,
        activity=activity,
        timestamp=timestamp,
        timestamp_format=timestamp_format,
        cost=cost,
        naive_tz=naive_tz,
    )


def _open_binary(path: str | Path) -> IO[bytes]:
    with Path(path).open("rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    if compressed:
        return cast("IO[bytes]", gzip.open(path, "rb"))
    return Path(path).open("rb")


def _epoch(text: str, timestamp_format: str | None, naive_tz: tzinfo) -> float:
    moment = (
        datetime.fromisoformat(text.strip())
        if timestamp_format is None
        else datetime.strptime(text.strip(), timestamp_format)
    )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=naive_tz)
    return moment.timestamp()


class _Codes:
    """Names to dense integer codes, in order of first appearance."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, name: str) -> int:
        code = self.index.get(name)
        if code is None:
            code = self.index[name] = len(self.index)
        return code

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.index)


def read_csv(
    path: str | Path,
    *,
    case: str = DEFAULT_CASE,
    activity: str = DEFAULT_ACTIVITY,
    timestamp: str = DEFAULT_TIMESTAMP,
    timestamp_format: str | None = None,
    cost: str | None = None,
    naive_tz: tzinfo = UTC,
) -> EventLog:
    """Stream a CSV log. Timestamps are ISO 8601 unless ``timestamp_format`` (strptime) is given;
    naive ones are taken in ``naive_tz``. Empty cost cells count as 0."""
    cases, activities = _Codes(), _Codes()
    case_col, activity_col, time_col, cost_col = array("q"), array("q"), array("d"), array("d")
    with io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", newline="") as handle:
        first_line = handle.readline()
        if not first_line.strip():
            raise EventLogError(f"{path}: empty file")
        delimiter = max(",;\t|", key=first_line.count)
        header = next(csv.reader([first_line], delimiter=delimiter))
        reader = csv.reader(handle, delimiter=delimiter)
        columns = {name.strip(): i for i, name in enumerate(header)}
        wanted = [case, activity, timestamp, *([cost] if cost else [])]
        absent = [name for name in wanted if name not in columns]
        if absent:
            raise EventLogError(
                f"{path}: no column {', '.join(map(repr, absent))} (has {', '.join(columns)})"
            )
        ci, ai, ti = columns[case], columns[activity], columns[timestamp]
        ki = columns[cost] if cost else -1
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                time_col.append(_epoch(row[ti], timestamp_format, naive_tz))
                if ki >= 0:
                    cost_col.append(float(row[ki]) if row[ki].strip() else 0.0)
            except (ValueError, IndexError) as exc:
                raise EventLogError(f"{path}, line {line}: {exc}") from exc
            case_col.append(cases(row[ci]))
            activity_col.append(activities(row[ai]))
    return EventLog.from_arrays(
        np.frombuffer(case_col, dtype=np.int64),
        np.frombuffer(activity_col, dtype=np.int64),
        np.frombuffer(time_col, dtype=np.float64),
        np.frombuffer(cost_col, dtype=np.float64) if cost else None,
        cases.names,
        activities.names,
    )


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _xes_events(handle: IO[bytes], cost: str | None) -> Iterator[tuple[str, str, str, str | None]]:
    """Yield (case name, activity, timestamp text, cost text) for completion events, trace by trace."""
    depth = 0
    trace_name = ""
    pending: list[tuple[str, str, str | None]] = []
    root: ET.Element | None = None
    # Logs are files an operator chose to import; expat (>= 2.4) already bounds entity expansion.
    for event, element in ET.iterparse(handle, events=("start", "end")):  # noqa: S314
        tag = _local(element.tag)
        if event == "start":
            if root is None:
                root = element
            if tag in ("trace", "event"):
                depth += 1
            continue
        if tag == "event":
            depth -= 1
            values = {child.get("key"): child.get("value") for child in element}
            lifecycle = (values.get("lifecycle:transition") or "complete").lower()
            name, stamp = values.get("concept:name"), values.get("time:timestamp")
            if lifecycle == "complete" and name is not None and stamp is not None:
                pending.append((name, stamp, values.get(cost) if cost else None))
            element.clear()
        elif tag == "trace":
            depth -= 1
            for activity, stamp, amount in pending:
                yield trace_name, activity, stamp, amount
            pending.clear()
            trace_name = ""
            element.clear()
            if root is not None:
                root.clear()
        elif depth == 1 and tag == "string" and element.get("key") == "concept:name":
            trace_name = element.get("value") or ""


def read_xes(path: str | Path, *, cost: str | None = None, naive_tz: tzinfo = UTC) -> EventLog:
    """Stream an XES log (IEEE 1849): trace and event ``concept:name``, ``time:timestamp``,
    events whose ``lifecycle:transition`` is complete or absent; ``cost`` names an event attribute."""
    cases, activities = _Codes(), _Codes()
    case_col, activity_col, time_col, cost_col = array("q"), array("q"), array("d"), array("d")
    with _open_binary(path) as handle:
        try:
            for trace, activity, stamp, amount in _xes_events(handle, cost):
                time_col.append(_epoch(stamp, None, naive_tz))
                if cost:
                    cost_col.append(float(amount) if amount else 0.0)
                case_col.append(cases(trace))
                activity_col.append(activities(activity))
        except (ET.ParseError, ValueError) as exc:
            raise EventLogError(f"{path}: {exc}") from exc
    return EventLog.from_arrays(
        np.frombuffer(case_col, dtype=np.int64),
        np.frombuffer(activity_col, dtype=np.int64),
        np.frombuffer(time_col, dtype=np.float64),
        np.frombuffer(cost_col, dtype=np.float64) if cost else None,
        cases.names,
        activities.names,
    )


def iso_utc(epoch: FloatArray) -> list[str]:
    """ISO 8601 UTC strings (millisecond precision) for POSIX seconds."""
    stamps = np.datetime_as_string(np.round(epoch * 1000).astype("datetime64[ms]"), unit="ms")
    return [f"{stamp}Z" for stamp in stamps.tolist()]


def write_csv(log: EventLog, path: str | Path) -> None:
    """Write a log as ``CaseID,ActivityID,CompleteTimestamp[,Cost]`` with UTC ISO timestamps."""
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        header = [DEFAULT_CASE, DEFAULT_ACTIVITY, DEFAULT_TIMESTAMP]
        writer.writerow([*header, "Cost"] if log.cost is not None else header)
        names = np.array(log.case_names, dtype=object)[log.case]
        acts = np.array(log.activity_names, dtype=object)[log.activity]
        stamps = iso_utc(log.time)
        if log.cost is None:
            writer.writerows(zip(names.tolist(), acts.tolist(), stamps, strict=True))
        else:
            writer.writerows(zip(names.tolist(), acts.tolist(), stamps, log.cost.tolist(), strict=True))


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
