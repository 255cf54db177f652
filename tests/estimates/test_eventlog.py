"""Reading event logs: CSV and XES (plain and gzip), and turning them into stage visits."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tracker.estimates.eventlog import EventLogError, log_to_cases, read_log, write_csv
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
    path.write_text("case,activity,time\n1,a,2024-01-01T00:00:00Z\n")

    with pytest.raises(EventLogError, match=r"no column 'CaseID'.*has case, activity, time"):
        read_log(path)


def test_csv_with_an_unreadable_timestamp_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("CaseID,ActivityID,CompleteTimestamp\n1,a,2024-01-01\n1,b,yesterday\n")

    with pytest.raises(EventLogError, match="line 3"):
        read_log(path)


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
    assert log.time.tolist() == [
        _epoch("2024-03-01T08:00:00+00:00"),
        _epoch("2024-03-02T08:00:00+00:00"),
        _epoch("2024-03-01T10:00:00+00:00"),
    ]
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
