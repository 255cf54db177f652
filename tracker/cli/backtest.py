"""``tracker backtest``: score the estimator on an event log; helpers for importing history."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from tracker.estimates.backtest import run_backtest, write_predictions
from tracker.estimates.calendar import BusinessCalendar
from tracker.estimates.eventlog import (
    DEFAULT_ACTIVITY,
    DEFAULT_CASE,
    DEFAULT_TIMESTAMP,
    EventLog,
    EventLogError,
    log_to_cases,
    read_log,
)

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["backtest_command", "log_options", "log_to_cases", "parse_mapping", "read_log_option_values"]


def log_options(command: F) -> F:
    """The options naming a log's columns, shared by ``backtest`` and ``import-history``."""
    for option in reversed(
        (
            click.option(
                "--case", default=DEFAULT_CASE, show_default=True, help="CSV column of the case id."
            ),
            click.option(
                "--activity", default=DEFAULT_ACTIVITY, show_default=True, help="CSV column of the activity."
            ),
            click.option(
                "--timestamp",
                default=DEFAULT_TIMESTAMP,
                show_default=True,
                help="CSV column of the completion time.",
            ),
            click.option(
                "--timestamp-format",
                default=None,
                help="strptime format of the timestamps (default: ISO 8601; naive times are UTC).",
            ),
            click.option(
                "--cost", default=None, help="Column (CSV) or event attribute (XES) of the event's cost."
            ),
        )
    ):
        command = option(command)
    return command


def read_log_option_values(
    path: Path, case: str, activity: str, timestamp: str, timestamp_format: str | None, cost: str | None
) -> EventLog:
    """Read a log with the values of :func:`log_options`, as a click error when it fails."""
    try:
        return read_log(
            path,
            case=case,
            activity=activity,
            timestamp=timestamp,
            timestamp_format=timestamp_format,
            cost=cost,
        )
    except EventLogError as exc:
        raise click.ClickException(str(exc)) from exc


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
    case: str,
    activity: str,
    timestamp: str,
    timestamp_format: str | None,
    cost: str | None,
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
    events = read_log_option_values(log, case, activity, timestamp, timestamp_format, cost)
    if events.n_events == 0:
        raise click.ClickException(f"{log}: no events")
    result = run_backtest(events, calendar=calendar, calendar_name=calendar_spec, name=log.name)
    if predictions_path is not None:
        write_predictions(result.predictions, events.case_names, predictions_path, events.activity_names)
    click.echo(json.dumps(result.report.to_json(), indent=2) if as_json else result.report.render())
