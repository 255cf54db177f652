"""Reading event logs: CSV and XES (plain and gzip), and turning them into stage visits."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from click.testing import CliRunner

from tracker.cli.backtest import backtest_command
from tracker.estimates.eventlog import EVERY_LIFECYCLE, EventLogError, log_to_cases, read_log, write_csv
from tracker.estimates.synthetic import generate_workload

XES = """<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1.0" xmlns="http://www.xes-standard.org/">
  <string key="concept:name" value="tiny"/>
  <trace>
    <string key="concept:name" value="A-1"/>
    <event>
      <string key="concept:name" value="intake"/>
      <string key="lifecycle:transition" value="start"/>
      <date key="time:timestamp" value="2024-03-01T08:00:00.000+01:00"/>
    </event>
    <event>
      <string key="concept:name" value="intake"/>
      <string key="lifecycle:transition" value="complete"/>
      <date key="time:timestamp" value="2024-03-01T09:00:00.000+01:00"/>
      <float key="cost:total" value="12.5"/>
    </event>
    <event>
      <string key="concept:name" value="repair"/>
      <date key="time:timestamp" value="2024-03-02T09:00:00.000+01:00"/>
    </event>
  </trace>
  <trace>
    <string key="concept:name" value="B-2"/>
    <event>
      <string key="concept:name" value="repair"/>
      <string key="lifecycle:transition" value="COMPLETE"/>
      <date key="time:timestamp" value="2024-03-01T10:00:00Z"/>
    </event>
  </trace>
</log>
"""


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _epochs(*texts: str) -> list[float]:
    return [_epoch(text) for text in texts]


def test_csv_defaults_fit_the_lstm_paper_layout_and_naive_times_are_utc(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "CaseID,ActivityID,CompleteTimestamp\n"
        "7,3,2011-10-01 19:45:13\n"
        "5,1,2011-10-01 08:00:00\n"
        "7,5,2011-10-01 20:17:08\n"
    )

    log = read_log(path)

    assert log.case_names == ("7", "5")
    assert log.activity_names == ("3", "1", "5")
    assert log.case.tolist() == [0, 0, 1]
    assert [log.activity_names[a] for a in log.activity] == ["3", "5", "1"]
    assert log.time[0] == _epoch("2011-10-01T19:45:13+00:00")
    assert log.cost is None


def test_csv_with_named_columns_format_semicolons_and_cost(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("job;step;when;eur\nJ1;paint;01/03/2024 10:30;100\nJ1;dry;02/03/2024 10:30;\n")

    log = read_log(
        path, case="job", activity="step", timestamp="when", timestamp_format="%d/%m/%Y %H:%M", cost="eur"
    )

    assert log.time.tolist() == [_epoch("2024-03-01T10:30:00+00:00"), _epoch("2024-03-02T10:30:00+00:00")]
    assert log.cost is not None
    assert log.cost.tolist() == [100.0, 0.0]


def test_csv_without_the_named_column_says_which_columns_exist(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("id,step,when\n1,a,2024-01-01T00:00:00Z\n")

    with pytest.raises(EventLogError, match=r"no column 'CaseID'.*has id, step, when"):
        read_log(path)


def test_csv_with_an_unreadable_timestamp_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("CaseID,ActivityID,CompleteTimestamp\n1,a,2024-01-01\n1,b,yesterday\n")

    with pytest.raises(EventLogError, match="line 3"):
        read_log(path)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Case ID;Activity;Resource;Complete Timestamp", ("Case ID", "Activity", "Complete Timestamp")),
        (
            "case:concept:name;concept:name;time:timestamp",
            ("case:concept:name", "concept:name", "time:timestamp"),
        ),
        (
            "case;CASE ID;activity_name;Start Timestamp;End Timestamp",
            ("CASE ID", "activity_name", "End Timestamp"),
        ),
    ],
)
def test_columns_other_tools_name_are_recognised_when_the_defaults_are_absent(
    tmp_path: Path, header: str, expected: tuple[str, str, str]
) -> None:
    names = header.split(";")
    rows = [
        {expected[0]: "A1", expected[1]: "intake", expected[2]: "2024-01-02T10:00:00Z"},
        {expected[0]: "A1", expected[1]: "repair", expected[2]: "2024-01-05T10:00:00Z"},
    ]
    text = header + "\n" + "".join(";".join(row.get(name, "x") for name in names) + "\n" for row in rows)

    log = read_log(_write(tmp_path, "export.csv", text))

    assert log.activity_names == ("intake", "repair")
    assert log.time.tolist() == [_epoch("2024-01-02T10:00:00+00:00"), _epoch("2024-01-05T10:00:00+00:00")]
    assert log.reading is not None
    assert log.reading.recognised_columns == tuple(zip(("case", "activity", "time"), expected, strict=True))
    assert f"columns           case {expected[0]!r}, activity {expected[1]!r}" in "\n".join(
        log.reading.describe()
    )


def test_a_column_asked_for_by_name_is_never_swapped_for_a_well_known_one(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "export.csv", "Case ID,Activity,Complete Timestamp\nA1,intake,2024-01-02T10:00:00Z\n"
    )

    with pytest.raises(EventLogError, match=r"no column 'job' \(has Case ID, Activity, Complete Timestamp"):
        read_log(path, case="job")


def _stamps(tmp_path: Path, *stamps: str, separator: str = ",") -> Path:
    """A CSV log of one case with an event at each of ``stamps``."""
    rows = "".join(f"1{separator}step {i}{separator}{stamp}\n" for i, stamp in enumerate(stamps))
    return _write(tmp_path, "log.csv", f"CaseID{separator}ActivityID{separator}CompleteTimestamp\n{rows}")


def test_day_first_dates_are_learnt_from_a_day_above_12_even_after_the_first_rows(tmp_path: Path) -> None:
    # A bank's export: semicolons, day-month-year; the first rows alone could be either order.
    path = _stamps(
        tmp_path, "07-01-2013 08:17:17", "09-01-2013 10:00:00", "14-01-2013 16:05:00", separator=";"
    )

    log = read_log(path)

    assert log.time.tolist() == _epochs(
        "2013-01-07T08:17:17+00:00", "2013-01-09T10:00:00+00:00", "2013-01-14T16:05:00+00:00"
    )
    assert log.reading is not None
    assert log.reading.date_order == "day-first"
    assert log.reading.naive_timestamps == 3
    assert "dates read day-first: '07-01-2013 08:17:17' is 2013-01-07 08:17:17" in "\n".join(
        log.reading.describe()
    )


def test_month_first_dates_with_am_pm_and_year_first_dates_with_slashes_and_offsets(tmp_path: Path) -> None:
    month_first = read_log(
        _stamps(tmp_path, "4/13/2012 4:55:38 PM", "4/14/2012 12:05 AM", "5/1/2012 12:00 PM")
    )
    year_first = read_log(
        _stamps(tmp_path, "2012/04/03 16:55:38.25+02:00", "2012/04/04", "2012.04.05 07:00Z")
    )

    assert month_first.time.tolist() == _epochs(
        "2012-04-13T16:55:38+00:00", "2012-04-14T00:05:00+00:00", "2012-05-01T12:00:00+00:00"
    )
    assert month_first.reading is not None and month_first.reading.date_order == "month-first"
    assert year_first.time.tolist() == _epochs(
        "2012-04-03T16:55:38.25+02:00", "2012-04-04T00:00:00+00:00", "2012-04-05T07:00:00+00:00"
    )
    assert year_first.reading is not None
    assert year_first.reading.date_order == "year-first"
    assert year_first.reading.naive_timestamps == 1


def test_dates_read_in_the_given_zone_when_they_have_no_offset(tmp_path: Path) -> None:
    log = read_log(
        _stamps(tmp_path, "01/07/2024 10:00", "31/07/2024 10:00"), naive_tz=ZoneInfo("Europe/Paris")
    )

    assert log.time.tolist() == [_epoch("2024-07-01T08:00:00+00:00"), _epoch("2024-07-31T08:00:00+00:00")]


@pytest.mark.parametrize(
    ("stamps", "message"),
    [
        (
            ("03-04-2012 16:55", "04-04-2012 09:00"),
            r"no date tells whether timestamps such as '03-04-2012 16:55'",
        ),
        (("13-04-2012", "04-13-2012"), r"line 3: .*'04-13-2012' read day-first: month must be in 1..12"),
        (("April 3 2012",), r"line 2: .*'April 3 2012' is neither ISO 8601 nor a date such as"),
        (("03-04-12 10:00",), r"'03-04-12 10:00' is neither ISO 8601"),  # a two-digit year could be any field
        (("4/3/2012 13:00 PM",), r"hour 13 with AM/PM"),
    ],
)
def test_dates_that_cannot_be_read_for_sure_are_refused_with_the_format_option(
    tmp_path: Path, stamps: tuple[str, ...], message: str
) -> None:
    with pytest.raises(EventLogError, match=message) as refused:
        read_log(_stamps(tmp_path, *stamps))

    assert "--timestamp-format" in str(refused.value)


@pytest.mark.parametrize("compressed", [False, True])
def test_xes_keeps_completion_events_with_their_offsets(tmp_path: Path, compressed: bool) -> None:
    path = tmp_path / ("log.xes.gz" if compressed else "log.xes")
    if compressed:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(XES)
    else:
        path.write_text(XES, encoding="utf-8")

    log = read_log(path, cost="cost:total")

    assert log.case_names == ("A-1", "B-2")
    assert [log.activity_names[a] for a in log.activity] == ["intake", "repair", "repair"]
    assert log.time.tolist() == _epochs(
        "2024-03-01T08:00:00+00:00", "2024-03-02T08:00:00+00:00", "2024-03-01T10:00:00+00:00"
    )
    assert log.cost is not None
    assert log.cost.tolist() == [12.5, 0.0, 0.0]


def test_written_csv_reads_back_the_same_log(tmp_path: Path) -> None:
    log = generate_workload(50, seed=3).event_log(with_cost=True)
    path = tmp_path / "synthetic.csv"

    write_csv(log, path)
    again = read_log(path, cost="Cost")

    assert again.case_names == log.case_names
    names = np.array(log.activity_names)
    assert np.array_equal(np.array(again.activity_names)[again.activity], names[log.activity])
    assert np.allclose(again.time, log.time, atol=1e-3)
    assert again.cost is not None and log.cost is not None
    assert np.allclose(again.cost, log.cost, atol=1e-9)


def test_xes_keeps_who_handled_each_event_and_says_so(tmp_path: Path) -> None:
    def event(activity: str, stamp: str, resource: str | None) -> str:
        who = "" if resource is None else f'<string key="org:resource" value="{resource}"/>'
        return (
            f'<event><string key="concept:name" value="{activity}"/>{who}'
            f'<date key="time:timestamp" value="{stamp}"/></event>'
        )

    text = (
        '<log xes.version="1.0"><trace><string key="concept:name" value="A-1"/>'
        + event("intake", "2024-03-01T08:00:00Z", "Ann")
        + event("repair", "2024-03-02T08:00:00Z", "Bob")
        + '</trace><trace><string key="concept:name" value="B-2"/>'
        + event("intake", "2024-03-01T09:00:00Z", None)
        + event("repair", "2024-03-03T08:00:00Z", "Ann")
        + "</trace></log>"
    )

    log = read_log(_write(tmp_path, "log.xes", text))

    assert log.resource is not None
    assert [log.resource_names[r] for r in log.resource] == ["Ann", "Bob", "", "Ann"]
    assert log.reading is not None
    assert log.reading.resources == 2
    assert any("2 distinct in 'org:resource'" in line for line in log.reading.describe())

    # A log that names teams only: the team is who has the case.
    teams = read_log(_write(tmp_path, "teams.xes", text.replace("org:resource", "org:group")))
    assert teams.resource is not None and teams.reading is not None
    assert [teams.resource_names[r] for r in teams.resource] == ["Ann", "Bob", "", "Ann"]
    assert teams.reading.resource_column == "org:group"

    # Named on a start event only: no completion names anyone.
    start = '<string key="lifecycle:transition" value="start"/>'
    started = read_log(
        _write(
            tmp_path, "started.xes", XES.replace(start, start + '<string key="org:resource" value="Ann"/>')
        )
    )
    assert started.resource is None and started.reading is not None
    assert started.reading.resources == 0


def test_csv_resource_column_is_found_by_its_usual_names_or_named(tmp_path: Path) -> None:
    rows = "J1,intake,2024-03-01T08:00:00Z,Ann\nJ1,repair,2024-03-02T08:00:00Z,Bob\n"

    def csv_log(name: str, column: str, body: str = rows) -> Path:
        return _write(tmp_path, name, f"CaseID,ActivityID,CompleteTimestamp,{column}\n{body}")

    usual, named = csv_log("usual.csv", "Resource"), csv_log("named.csv", "mechanic")
    for log in (read_log(usual), read_log(named, resource="mechanic")):
        assert log.resource is not None
        assert [log.resource_names[r] for r in log.resource] == ["Ann", "Bob"]
    assert read_log(named).resource is None  # no usual name: the log does without
    with pytest.raises(EventLogError, match="no column 'fitter'"):
        read_log(named, resource="fitter")

    # An empty cell names nobody.
    some = read_log(csv_log("some.csv", "Resource", rows.replace("Ann", "")))
    assert some.resource is not None
    assert [some.resource_names[r] for r in some.resource] == ["", "Bob"]
    assert (
        read_log(csv_log("none.csv", "Resource", rows.replace("Ann", "").replace("Bob", ""))).resource is None
    )

    again = tmp_path / "again.csv"
    write_csv(read_log(usual), again)
    assert again.read_text(encoding="utf-8").splitlines()[0] == "CaseID,ActivityID,CompleteTimestamp,Resource"
    written = read_log(again)
    assert written.resource is not None
    assert [written.resource_names[r] for r in written.resource] == ["Ann", "Bob"]


def test_log_to_cases_maps_activities_to_stages_and_keeps_running_cases_open(tmp_path: Path) -> None:
    path = tmp_path / "log.xes"
    path.write_text(XES, encoding="utf-8")
    log = read_log(path)
    now = datetime(2024, 3, 3, 8, tzinfo=UTC)

    cases = log_to_cases(log, mapping={"intake": "reception"}, running={"A-1"}, now=now)

    first, second = cases
    assert [v.stage_key for v in first.visits] == ["reception", "repair"]
    assert [v.duration_s for v in first.visits] == [0.0, 86_400.0]  # the first event starts the case
    assert first.visits[1].entered_at == datetime(2024, 3, 1, 8, tzinfo=UTC)
    assert not first.finished
    assert first.open_s == 86_400.0
    assert second.finished
    assert second.open_s == 0.0


def test_log_to_cases_needs_now_to_censor_running_cases(tmp_path: Path) -> None:
    path = tmp_path / "log.xes"
    path.write_text(XES, encoding="utf-8")

    with pytest.raises(ValueError, match="now"):
        log_to_cases(read_log(path), running={"A-1"})


# ------------------------------------------------------------------ real logs as they come


def _xes(*traces: tuple[str | None, list[tuple[str, str | None, str]]]) -> str:
    """An XES document: traces of (name, [(activity, lifecycle or None, timestamp)])."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<log xes.version="1.0">']
    for name, events in traces:
        parts.append("<trace>")
        if name is not None:
            parts.append(f'<string key="concept:name" value="{name}"/>')
        for activity, lifecycle, stamp in events:
            parts.append("<event>")
            parts.append(f'<string key="concept:name" value="{activity}"/>')
            if lifecycle is not None:
                parts.append(f'<string key="lifecycle:transition" value="{lifecycle}"/>')
            parts.append(f'<date key="time:timestamp" value="{stamp}"/></event>')
        parts.append("</trace>")
    parts.append("</log>")
    return "\n".join(parts)


# The IT incident log's shape: lifecycle values are states, and none is "complete".
INCIDENTS = _xes(
    (
        "IN-1",
        [
            ("Queued", "Awaiting Assignment", "2012-01-02T08:00:00+01:00"),
            ("Accepted", "In Progress", "2012-01-02T09:00:00+01:00"),
            ("Accepted", "Resolved", "2012-01-03T09:00:00+01:00"),
            ("Completed", "Closed", "2012-01-04T09:00:00+01:00"),
        ],
    ),
    (
        "IN-2",
        [
            ("Accepted", "In Progress", "2012-01-05T09:00:00+01:00"),
            ("Accepted", "In Progress", "2012-01-05T10:00:00+01:00"),
            ("Completed", "Closed", "2012-01-06T09:00:00+01:00"),
        ],
    ),
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_xes_without_complete_lifecycle_takes_every_event_and_says_so(tmp_path: Path) -> None:
    log = read_log(_write(tmp_path, "incidents.xes", INCIDENTS))

    assert log.n_events == 7
    assert log.case_names == ("IN-1", "IN-2")
    assert log.activity_names == ("Queued", "Accepted", "Completed")
    assert log.reading is not None
    assert log.reading.lifecycle_rule == "every-event"
    assert log.reading.lifecycle_values == (
        ("In Progress", 3),
        ("Closed", 2),
        ("Awaiting Assignment", 1),
        ("Resolved", 1),
    )
    summary = log.reading.lifecycle_summary()
    assert "no event is 'complete'" in summary
    assert "In Progress (3)" in summary
    assert "every event is a completion" in summary


def test_choosing_a_lifecycle_no_event_has_says_which_values_the_log_has(tmp_path: Path) -> None:
    path = _write(tmp_path, "incidents.xes", INCIDENTS)

    with pytest.raises(EventLogError) as raised:
        read_log(path, lifecycle=["complete"])

    assert "0 of 7 events have lifecycle 'complete'; lifecycle values seen: In Progress (3), Closed (2)," in (
        str(raised.value)
    )


def test_chosen_lifecycle_values_match_whatever_their_case(tmp_path: Path) -> None:
    log = read_log(_write(tmp_path, "incidents.xes", INCIDENTS), lifecycle=["resolved", "CLOSED"])

    assert [log.activity_names[a] for a in log.activity] == ["Accepted", "Completed", "Completed"]
    assert log.activity_names == ("Accepted", "Completed")
    assert log.reading is not None
    assert log.reading.lifecycle_rule == "chosen"
    assert log.reading.lifecycle_events == 3
    assert "'resolved' or 'CLOSED', as chosen" in log.reading.lifecycle_summary()


def test_every_lifecycle_can_be_chosen_even_when_complete_events_exist(tmp_path: Path) -> None:
    path = _write(tmp_path, "log.xes", XES)

    assert read_log(path).n_events == 3
    assert read_log(path, lifecycle=[EVERY_LIFECYCLE]).n_events == 4


def test_complete_events_win_over_start_events_in_any_case(tmp_path: Path) -> None:
    text = _xes(
        (
            "P-1",
            [
                ("check", "start", "2014-04-11T01:00:00.000+03:00"),
                ("check", "COMPLETE", "2014-04-11T05:00:00.000+03:00"),
                ("decide", "Start", "2014-04-14T01:00:00.000+03:00"),
                ("decide", "Complete", "2014-04-15T01:00:00.000+03:00"),
            ],
        )
    )

    log = read_log(_write(tmp_path, "permits.xes", text))

    assert log.time.tolist() == [_epoch("2014-04-11T02:00:00+00:00"), _epoch("2014-04-14T22:00:00+00:00")]
    assert log.reading is not None
    assert log.reading.lifecycle_rule == "complete"
    assert log.reading.events_in_file == 4
    assert log.reading.lifecycle_values == (("start", 1), ("COMPLETE", 1), ("Start", 1), ("Complete", 1))


def test_timestamps_without_offset_are_read_in_the_given_zone_and_counted(tmp_path: Path) -> None:
    text = _xes(("A", [("x", None, "2024-07-01T10:00:00"), ("y", None, "2024-07-01T12:00:00+00:00")]))
    path = _write(tmp_path, "naive.xes", text)

    as_utc = read_log(path)
    as_amsterdam = read_log(path, naive_tz=ZoneInfo("Europe/Amsterdam"))

    assert as_utc.time.tolist() == [_epoch("2024-07-01T10:00:00+00:00"), _epoch("2024-07-01T12:00:00+00:00")]
    assert as_amsterdam.time[0] == _epoch("2024-07-01T08:00:00+00:00")  # summer time: UTC+2
    assert as_amsterdam.reading is not None
    assert as_amsterdam.reading.naive_timestamps == 1
    assert "1 timestamps without a UTC offset, read as Europe/Amsterdam" in "\n".join(
        as_amsterdam.reading.describe()
    )


def test_events_out_of_order_in_a_trace_are_sorted_by_time(tmp_path: Path) -> None:
    text = _xes(
        ("late", [("b", None, "2024-01-02T00:00:00Z"), ("a", None, "2024-01-01T00:00:00Z")]),
        ("fine", [("a", None, "2024-01-01T00:00:00Z"), ("b", None, "2024-01-03T00:00:00Z")]),
    )

    log = read_log(_write(tmp_path, "order.xes", text))

    assert [log.activity_names[a] for a in log.activity] == ["a", "b", "a", "b"]
    assert np.all(np.diff(log.time)[[0, 2]] > 0)
    assert log.reading is not None
    assert log.reading.reordered_cases == 1


def test_repeated_events_are_counted_and_dropped_only_on_request(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "log.csv",
        "CaseID,ActivityID,CompleteTimestamp\n"
        "1,a,2024-01-01T10:00:00Z\n"
        "1,b,2024-01-01T10:00:00Z\n"
        "1,a,2024-01-01T10:00:00Z\n"  # repeats the first row, not next to it
        "1,a,2024-01-02T10:00:00Z\n"
        "2,a,2024-01-01T10:00:00Z\n",  # same activity and time, another case
    )

    kept = read_log(path)
    dropped = read_log(path, drop_duplicates=True)

    assert kept.n_events == 5
    assert kept.reading is not None and kept.reading.duplicate_events == 1
    assert dropped.n_events == 4
    assert [dropped.activity_names[a] for a in dropped.activity] == ["a", "b", "a", "a"]
    assert dropped.reading is not None and dropped.reading.duplicates_dropped


def test_single_event_cases_are_kept_and_counted(tmp_path: Path) -> None:
    text = _xes(
        ("one", [("a", "complete", "2024-01-01T00:00:00Z")]),
        ("two", [("a", "complete", "2024-01-01T00:00:00Z"), ("b", "complete", "2024-01-02T00:00:00Z")]),
    )

    log = read_log(_write(tmp_path, "log.xes", text))

    assert log.case_names == ("one", "two")
    assert log.case_start.tolist() == [0, 1, 3]
    assert log.reading is not None and log.reading.single_event_cases == 1


def test_traces_without_a_name_stay_apart(tmp_path: Path) -> None:
    text = _xes((None, [("a", None, "2024-01-01T00:00:00Z")]), (None, [("a", None, "2024-01-02T00:00:00Z")]))

    log = read_log(_write(tmp_path, "log.xes", text))

    assert log.case_names == ("trace 1", "trace 2")


NESTED = (
    '<log xmlns:x="http://www.xes-standard.org/"><global scope="event">'
    '<string key="concept:name" value="__INVALID__"/></global>'
    '<x:trace><string key="concept:name" value="P-7"/>'
    '<list key="history"><string key="concept:name" value="not the name"/></list>'
    '<x:event><list key="parts"><string key="concept:name" value="not the activity"/></list>'
    '<string key="concept:name" value="intake"/><date key="time:timestamp" value="2024-01-01T00:00:00Z"/>'
    "</x:event></x:trace></log>"
)


def test_names_are_the_trace_and_event_own_attributes_not_nested_ones(tmp_path: Path) -> None:
    log = read_log(_write(tmp_path, "nested.xes", NESTED))

    assert log.case_names == ("P-7",)
    assert log.activity_names == ("intake",)


def test_a_broken_xes_file_is_refused_with_where_it_breaks(tmp_path: Path) -> None:
    broken = _xes(("A", [("a", None, "2024-01-01T00:00:00Z")]))[:-20]

    with pytest.raises(EventLogError, match=r"broken\.xes: .*line \d+, column \d+"):
        read_log(_write(tmp_path, "broken.xes", broken))


def test_events_without_a_timestamp_are_skipped_and_a_log_of_only_those_is_refused(tmp_path: Path) -> None:
    text = (
        '<log><trace><string key="concept:name" value="A"/>'
        '<event><string key="concept:name" value="a"/></event>'
        '<event><string key="concept:name" value="b"/>'
        '<date key="time:timestamp" value="2024-01-01T00:00:00Z"/>'
        "</event></trace></log>"
    )
    assert (reading := read_log(_write(tmp_path, "some.xes", text)).reading) is not None
    assert reading.incomplete_events == 1

    only = '<log><trace><event><string key="concept:name" value="a"/></event></trace></log>'
    with pytest.raises(
        EventLogError, match="none of the 1 events to use has a case, an activity and a timestamp"
    ):
        read_log(_write(tmp_path, "none.xes", only))
    with pytest.raises(EventLogError, match="no events"):
        read_log(_write(tmp_path, "empty.xes", "<log/>"))


@pytest.mark.parametrize(
    ("text", "described"),
    [
        (
            '"case";"activity";"time"\r\n"J;1";"paint; dry";"2024-03-01T10:30:00Z"\r\n'
            '"J;1";"say ""done""";"2024-03-02T10:30:00Z"\r\n',
            "semicolon-separated",
        ),
        (
            "case\tactivity\ttime\nJ;1\tpaint; dry\t2024-03-01T10:30:00Z\n"
            'J;1\tsay "done"\t2024-03-02T10:30:00Z\n',
            "tab-separated",
        ),
        (
            'case|activity|time\nJ;1|paint; dry|2024-03-01T10:30:00Z\nJ;1|say "done"|2024-03-02T10:30:00Z\n',
            "pipe-separated",
        ),
        (
            '\ufeffcase,activity,time\n"J;1","paint; dry",2024-03-01T10:30:00Z\n'
            '"J;1","say ""done""",2024-03-02T10:30:00Z\n',
            "comma-separated, byte-order mark skipped",
        ),
    ],
)
def test_csv_dialects_are_sniffed(tmp_path: Path, text: str, described: str) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes(text.encode("utf-8"))

    log = read_log(path, case="case", activity="activity", timestamp="time")

    assert log.case_names == ("J;1",)
    assert log.activity_names == ("paint; dry", 'say "done"')
    assert log.time.tolist() == [_epoch("2024-03-01T10:30:00+00:00"), _epoch("2024-03-02T10:30:00+00:00")]
    assert log.reading is not None
    assert described in log.reading.source


def test_csv_lifecycle_column_follows_the_same_rule(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "log.csv",
        "CaseID,ActivityID,CompleteTimestamp,lifecycle:transition\n"
        "1,a,2024-01-01T08:00:00Z,start\n"
        "1,a,2024-01-01T10:00:00Z,complete\n"
        "1,b,2024-01-02T10:00:00Z,start\n",
    )

    log = read_log(path)

    assert log.n_events == 1
    assert read_log(path, lifecycle=["start"]).n_events == 2


def test_choosing_a_lifecycle_for_a_csv_without_one_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "log.csv", "CaseID,ActivityID,CompleteTimestamp\n1,a,2024-01-01T08:00:00Z\n")

    with pytest.raises(EventLogError, match="no column"):
        read_log(path, lifecycle=["complete"])


def test_unreadable_xes_timestamp_names_the_case(tmp_path: Path) -> None:
    path = _write(tmp_path, "log.xes", _xes(("IN-9", [("a", None, "last Tuesday")])))

    with pytest.raises(EventLogError, match="case 'IN-9'"):
        read_log(path)


# ------------------------------------------------------------------ the commands


def _incident_log(tmp_path: Path, cases: int = 30) -> Path:
    """Cases of Awaiting Assignment, In Progress, Closed: states, none of them 'complete'."""
    traces: list[tuple[str | None, list[tuple[str, str | None, str]]]] = []
    for c in range(cases):
        day = 1 + c % 20
        traces.append(
            (
                f"IN-{c}",
                [
                    ("Queued", "Awaiting Assignment", f"2012-01-{day:02d}T08:00:00"),
                    ("Accepted", "In Progress", f"2012-01-{day:02d}T{9 + c % 5:02d}:00:00"),
                    ("Completed", "Closed", f"2012-01-{day + 2:02d}T09:00:00"),
                ],
            )
        )
    return _write(tmp_path, "incidents.xes", _xes(*traces))


def test_backtest_says_which_lifecycle_rule_it_applied(tmp_path: Path) -> None:
    path = _incident_log(tmp_path)

    text = CliRunner().invoke(backtest_command, [str(path), "--tz", "Europe/Brussels"])
    as_json = CliRunner().invoke(backtest_command, [str(path), "--json"])

    assert text.exit_code == 0, text.output
    assert "lifecycle         no event is 'complete'" in text.output
    assert "90 timestamps without a UTC offset, read as Europe/Brussels" in text.output
    assert as_json.exit_code == 0, as_json.output
    reading = json.loads(as_json.output)["reading"]
    assert reading["lifecycle_rule"] == "every-event"
    assert reading["lifecycle_values"] == {"Awaiting Assignment": 30, "In Progress": 30, "Closed": 30}
    assert reading["events"] == 90
    assert reading["naive_time_zone"] == "UTC"


def test_backtest_reads_the_chosen_lifecycle_values(tmp_path: Path) -> None:
    path = _incident_log(tmp_path)

    chosen = CliRunner().invoke(backtest_command, [str(path), "--lifecycle", "in progress, closed", "--json"])
    missing = CliRunner().invoke(backtest_command, [str(path), "--lifecycle", "complete"])

    assert chosen.exit_code == 0, chosen.output
    assert json.loads(chosen.output)["events"] == 60
    assert missing.exit_code == 1
    assert "0 of 90 events have lifecycle 'complete'; lifecycle values seen: Awaiting Assignment (30)" in (
        missing.output
    )


@pytest.mark.parametrize(("option", "value"), [("--tz", "Mars/Olympus_Mons"), ("--lifecycle", " , ")])
def test_backtest_refuses_a_bad_log_option(tmp_path: Path, option: str, value: str) -> None:
    result = CliRunner().invoke(backtest_command, [str(_incident_log(tmp_path)), option, value])

    assert result.exit_code == 2
    assert option in result.output


def test_backtest_reads_the_resource_column_and_refuses_one_the_file_lacks(tmp_path: Path) -> None:
    rows = [
        f"J{i},{step},2024-03-{1 + i % 20:02d}T{8 + k:02d}:00:00Z,{'Ann' if i % 2 else 'Bob'}"
        for i in range(40)
        for k, step in enumerate(("intake", "repair", "handover"))
    ]
    path = _write(tmp_path, "jobs.csv", "\n".join(["CaseID,ActivityID,CompleteTimestamp,fitter", *rows]))

    named = CliRunner().invoke(backtest_command, [str(path), "--resource", "fitter", "--json"])
    missing = CliRunner().invoke(backtest_command, [str(path), "--resource", "mechanic"])

    assert named.exit_code == 0, named.output
    reading = json.loads(named.output)["reading"]
    assert (reading["resource_column"], reading["resources"]) == ("fitter", 2)
    assert missing.exit_code == 1
    assert "no column 'mechanic'" in missing.output
