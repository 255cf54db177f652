"""``tracker backtest``: score the estimator on an event log; helpers for importing history."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from tracker.estimates.backtest import run_backtest, write_predictions
from tracker.estimates.calendar import BusinessCalendar
from tracker.estimates.eventlog import (
    DEFAULT_ACTIVITY,
    DEFAULT_CASE,
    DEFAULT_TIMESTAMP,
    EVERY_LIFECYCLE,
    EventLog,
    EventLogError,
    log_to_cases,
    read_log,
)

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["LogReader", "backtest_command", "log_options", "log_to_cases", "parse_mapping"]


@dataclass(frozen=True)
class LogReader:
    """How to read a log: the values of :func:`log_options`."""

    case: str
    activity: str
    timestamp: str
    timestamp_format: str | None
    naive_tz: tzinfo
    cost: str | None
    resource: str | None
    lifecycle: tuple[str, ...] | None
    drop_duplicates: bool

    def read(self, path: Path) -> EventLog:
        """The log, or a click error saying why it cannot be used."""
        try:
            return read_log(
                path,
                case=self.case,
                activity=self.activity,
                timestamp=self.timestamp,
                timestamp_format=self.timestamp_format,
                cost=self.cost,
                resource=self.resource,
                lifecycle=self.lifecycle,
                naive_tz=self.naive_tz,
                drop_duplicates=self.drop_duplicates,
            )
        except EventLogError as exc:
            raise click.ClickException(str(exc)) from exc


def reading_lines(log: EventLog) -> list[str]:
    """How the file was read (lifecycle rule, assumptions), for the command's output."""
    return log.reading.describe() if log.reading is not None else []


def log_options(command: F) -> F:
    """The options saying how to read a log, shared by ``backtest`` and ``import-history``; the
    command gets them as one ``log_reader`` (:class:`LogReader`)."""
    names = [field.name for field in fields(LogReader)]

    @functools.wraps(command)
    def with_reader(*args: Any, **kwargs: Any) -> Any:
        reader = LogReader(**{name: kwargs.pop(name) for name in names})
        return command(*args, log_reader=reader, **kwargs)

    decorated: Callable[..., Any] = with_reader
    for option in reversed(
        (
            click.option(
                "--case",
                default=DEFAULT_CASE,
                show_default=True,
                help="CSV column of the case id (if absent: Case ID, case:concept:name...).",
            ),
            click.option(
                "--activity",
                default=DEFAULT_ACTIVITY,
                show_default=True,
                help="CSV column of the activity (if absent: Activity, concept:name...).",
            ),
            click.option(
                "--timestamp",
                default=DEFAULT_TIMESTAMP,
                show_default=True,
                help="CSV column of the completion time (if absent: Complete Timestamp, time:timestamp...).",
            ),
            click.option(
                "--timestamp-format",
                default=None,
                help=(
                    "strptime format of the timestamps (default: ISO 8601, or dates such as "
                    "2012/04/03, 07-01-2013 or 4/13/2012 with an optional time, the order of day and "
                    "month learnt from the file)."
                ),
            ),
            click.option(
                "--tz",
                "naive_tz",
                default="UTC",
                show_default=True,
                callback=_time_zone,
                help="Time zone (IANA name, e.g. Europe/Amsterdam) of timestamps without a UTC offset.",
            ),
            click.option(
                "--cost", default=None, help="Column (CSV) or event attribute (XES) of the event's cost."
            ),
            click.option(
                "--resource",
                default=None,
                help="Column (CSV) or event attribute (XES) of who handled the event (if absent: "
                "org:resource, Resource, org:group; none is needed).",
            ),
            click.option(
                "--lifecycle",
                default=None,
                metavar="VALUES",
                callback=_lifecycle_values,
                help="Comma-separated lifecycle values that mark a completion (any case), or "
                f"{EVERY_LIFECYCLE!r} for every event. Default: the 'complete' events when the log has "
                "any, otherwise every event.",
            ),
            click.option(
                "--drop-duplicates",
                is_flag=True,
                help="Keep one of events equal in case, activity, time (and cost); by default all are kept.",
            ),
        )
    ):
        decorated = option(decorated)
    return cast("F", decorated)


def _time_zone(_context: click.Context, _parameter: click.Parameter, name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise click.BadParameter(f"unknown time zone {name!r}") from exc


def _lifecycle_values(
    _context: click.Context, _parameter: click.Parameter, text: str | None
) -> tuple[str, ...] | None:
    if text is None:
        return None
    values = tuple(value.strip() for value in text.split(",") if value.strip())
    if not values:
        raise click.BadParameter("give at least one lifecycle value")
    return values


def parse_mapping(pairs: Sequence[str]) -> dict[str, str]:
    """``ACTIVITY=STAGE`` pairs (``--map``) as a dict; unmapped activities keep their name."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        activity, sep, stage = pair.partition("=")
        if not sep or not activity or not stage:
            raise click.BadParameter(f"expected ACTIVITY=STAGE, got {pair!r}", param_hint="--map")
        mapping[activity] = stage
    return mapping


@click.command("backtest")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@log_options
@click.option(
    "--calendar",
    "calendar_spec",
    default="24x7",
    show_default=True,
    help="Working time: 24x7, or a country (and subdivision) calendar such as FR or DE-BY.",
)
@click.option(
    "--predictions",
    "predictions_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write one CSV row per prediction to this file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def backtest_command(
    log: Path,
    log_reader: LogReader,
    calendar_spec: str,
    predictions_path: Path | None,
    as_json: bool,
) -> None:
    """Replay an event log (CSV, XES, XES.gz) in time order and score the remaining-time estimates
    against the median-after-last-activity baseline, without look-ahead."""
    try:
        calendar = BusinessCalendar.parse(calendar_spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--calendar") from exc
    events = log_reader.read(log)
    always_open = calendar == BusinessCalendar.always_open()
    result = run_backtest(
        events, calendar=None if always_open else calendar, calendar_name=calendar_spec, name=log.name
    )
    if predictions_path is not None:
        write_predictions(result.predictions, events.case_names, predictions_path, events.activity_names)
    if as_json:
        reading = events.reading.to_json() if events.reading is not None else None
        click.echo(json.dumps({**result.report.to_json(), "reading": reading}, indent=2))
    else:
        click.echo("\n".join([*reading_lines(events), result.report.render()]))
