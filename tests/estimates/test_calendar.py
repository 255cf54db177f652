from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tracker.estimates.calendar import BusinessCalendar

PARIS = ZoneInfo("Europe/Paris")
HOUR = 3600.0


def paris(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=PARIS)


def is_open(calendar: BusinessCalendar, instant: datetime) -> bool:
    """Inside an opening interval, or exactly at its end (where working time runs out)."""
    local = instant.astimezone(calendar.timezone)
    if not calendar.is_working_day(local.date()):
        return False
    seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return any(s <= seconds <= e for s, e in calendar.opening_hours[local.weekday()])


@pytest.fixture(scope="module")
def france() -> BusinessCalendar:
    return BusinessCalendar.for_country("FR")


@pytest.fixture(scope="module")
def garage() -> BusinessCalendar:
    """Lunch break on weekdays, Saturday morning, closed 2024-08-12 to 2024-08-16."""
    hours = {wd: [("08:00", "12:00"), ("13:00", "17:30")] for wd in range(5)}
    hours[5] = [("09:00", "12:00")]
    closures = [date(2024, 8, 12) + timedelta(days=i) for i in range(5)]
    return BusinessCalendar.for_country("FR", opening_hours=hours, extra_closures=closures)


def test_a_weekday_counts_only_opening_hours(france: BusinessCalendar) -> None:
    assert france.working_seconds_between(paris(2024, 6, 4, 0), paris(2024, 6, 5, 0)) == 10 * HOUR


def test_weekends_are_not_working_time(france: BusinessCalendar) -> None:
    friday_noon, monday_noon = paris(2024, 6, 7, 12), paris(2024, 6, 10, 12)
    assert france.working_seconds_between(friday_noon, monday_noon) == 10 * HOUR
    assert france.non_working_days_between(friday_noon, monday_noon) == [date(2024, 6, 8), date(2024, 6, 9)]


def test_reversed_or_empty_range_has_no_working_time(france: BusinessCalendar) -> None:
    assert france.working_seconds_between(paris(2024, 6, 5, 12), paris(2024, 6, 4, 12)) == 0.0
    assert france.non_working_days_between(paris(2024, 6, 5, 12), paris(2024, 6, 5, 12)) == []


@pytest.mark.parametrize(
    ("spec", "holiday", "name"),
    [
        ("FR", date(2025, 7, 14), "National Day"),
        ("FR", date(2024, 5, 9), "Ascension Day"),  # a Thursday, moves with Easter
        ("FR", date(2025, 5, 29), "Ascension Day"),
        ("NL", date(2023, 4, 27), "King's Day"),
        ("NL", date(2025, 4, 26), "King's Day"),  # 27 April 2025 is a Sunday: moved to Saturday
        ("BE", date(2024, 7, 22), None),  # the day after the national day is open
        ("BE", date(2025, 7, 21), "National Day"),
        ("DE-BY", date(2024, 1, 6), "Epiphany"),
    ],
)
def test_public_holidays_are_closed(spec: str, holiday: date, name: str | None) -> None:
    calendar = BusinessCalendar.parse(spec)
    assert calendar.closure_reason(holiday) == name
    assert calendar.is_working_day(holiday) is (name is None and holiday.weekday() < 5)


def test_subdivision_holidays_apply_only_to_that_subdivision() -> None:
    good_friday = date(2024, 3, 29)
    assert BusinessCalendar.for_country("FR").is_working_day(good_friday)
    assert not BusinessCalendar.for_country("FR", "57").is_working_day(good_friday)  # Moselle
    assert BusinessCalendar.parse("DE").is_working_day(date(2024, 1, 6) + timedelta(days=2))
    assert BusinessCalendar.parse("DE").closure_reason(date(2024, 1, 6)) is None


def test_holidays_are_known_for_any_year_touched(france: BusinessCalendar) -> None:
    assert not france.is_working_day(date(2061, 7, 14))
    assert not france.is_working_day(date(1999, 7, 14))
    span = france.add_working_seconds_many([datetime(2061, 7, 13, 17, tzinfo=PARIS).timestamp()], [2 * HOUR])
    assert datetime.fromtimestamp(span[0], PARIS) == paris(2061, 7, 15, 9)


def test_extra_closures_are_closed(garage: BusinessCalendar) -> None:
    assert garage.closure_reason(date(2024, 8, 14)) == "closure"
    # 15 August is also a public holiday; the closure takes precedence in the explanation.
    start, end = paris(2024, 8, 9, 17, 30), paris(2024, 8, 19, 8)
    assert garage.working_seconds_between(start, end) == 6 * HOUR  # two Saturday mornings
    assert garage.non_working_days_between(start, end) == [
        date(2024, 8, 11),
        *(date(2024, 8, 12) + timedelta(days=i) for i in range(5)),
        date(2024, 8, 18),
    ]


def test_lunch_break_is_not_working_time(garage: BusinessCalendar) -> None:
    assert garage.working_seconds_between(paris(2024, 6, 4, 11), paris(2024, 6, 4, 14)) == 2 * HOUR
    assert garage.add_working_seconds(paris(2024, 6, 4, 11), 1.5 * HOUR) == paris(2024, 6, 4, 13, 30)
    assert garage.next_open(paris(2024, 6, 4, 12, 15)) == paris(2024, 6, 4, 13)


def test_adding_time_lands_exactly_at_closing_when_it_runs_out_there(garage: BusinessCalendar) -> None:
    assert garage.add_working_seconds(paris(2024, 6, 4, 11), HOUR) == paris(2024, 6, 4, 12)
    assert garage.add_working_seconds(paris(2024, 6, 4, 11), HOUR + 1) == paris(2024, 6, 4, 13, 0, 1)


def test_adding_time_skips_a_long_weekend(france: BusinessCalendar) -> None:
    # 8 May (Victory Day) and 9 May (Ascension) 2024, Friday open, then the weekend.
    start = paris(2024, 5, 7, 16)
    assert france.add_working_seconds(start, 4 * HOUR) == paris(2024, 5, 10, 10)
    assert france.add_working_seconds(start, 14 * HOUR) == paris(2024, 5, 13, 10)
    assert france.non_working_days_between(start, paris(2024, 5, 13, 10)) == [
        date(2024, 5, 8),
        date(2024, 5, 9),
        date(2024, 5, 11),
        date(2024, 5, 12),
    ]


def test_zero_seconds_returns_the_start_even_when_closed(france: BusinessCalendar) -> None:
    saturday = paris(2024, 6, 8, 10)
    assert france.add_working_seconds(saturday, 0) == saturday
    assert france.add_working_seconds_many([saturday.timestamp()], [0.0])[0] == saturday.timestamp()
    assert france.next_open(saturday) == paris(2024, 6, 10, 8)


def test_next_open_keeps_an_open_instant(france: BusinessCalendar) -> None:
    assert france.next_open(paris(2024, 6, 4, 9, 30)) == paris(2024, 6, 4, 9, 30)
    assert france.next_open(paris(2024, 6, 4, 18)) == paris(2024, 6, 5, 8)


def test_opening_hours_keep_their_length_across_dst_changes(france: BusinessCalendar) -> None:
    # Spring forward on Sunday 31 March 2024 (then Easter Monday), fall back on Sunday 27 October 2024.
    assert france.working_seconds_between(paris(2024, 3, 28, 0), paris(2024, 4, 3, 0)) == 30 * HOUR
    assert france.working_seconds_between(paris(2024, 10, 25, 0), paris(2024, 10, 30, 0)) == 30 * HOUR
    assert france.add_working_seconds(paris(2024, 3, 29, 17), 2 * HOUR) == paris(2024, 4, 2, 9)
    assert france.add_working_seconds(paris(2024, 10, 25, 17), 2 * HOUR) == paris(2024, 10, 28, 9)


def test_a_dst_gap_inside_opening_hours_shortens_the_day() -> None:
    sunday = {6: [("00:00", "24:00")]}
    calendar = BusinessCalendar.for_country("FR", opening_hours=sunday)
    assert calendar.working_seconds_between(paris(2024, 3, 30), paris(2024, 4, 1)) == 23 * HOUR
    assert calendar.working_seconds_between(paris(2024, 10, 26), paris(2024, 10, 28)) == 25 * HOUR
    night = BusinessCalendar.for_country("FR", opening_hours={6: [("01:00", "02:30"), ("02:45", "04:00")]})
    # 02:00-03:00 does not exist that night: 01:00-02:00 then 03:00-04:00 remain.
    assert night.working_seconds_between(paris(2024, 3, 31), paris(2024, 4, 1)) == 2 * HOUR
    assert night.add_working_seconds(paris(2024, 3, 31), 1.5 * HOUR) == paris(2024, 3, 31, 3, 30)


def test_always_open_is_plain_arithmetic() -> None:
    calendar = BusinessCalendar.always_open()
    start = datetime(2024, 12, 31, 22, 15, tzinfo=UTC)
    assert calendar.working_seconds_between(start, start + timedelta(days=3, minutes=7)) == 3 * 86400 + 420
    assert calendar.add_working_seconds(start, 1e6) == start + timedelta(seconds=1e6)
    assert calendar.non_working_days_between(start, start + timedelta(days=30)) == []
    epochs = np.array([start.timestamp(), 1.0e9, 1.75e9])
    np.testing.assert_allclose(calendar.add_working_seconds_many(epochs, 12345.5), epochs + 12345.5)
    np.testing.assert_allclose(calendar.working_seconds_between_many(epochs, epochs + 99.0), 99.0)


def test_pauses_stop_the_clock(france: BusinessCalendar) -> None:
    start, end = paris(2024, 6, 3, 8), paris(2024, 6, 8, 0)  # Monday to Friday: 50 h
    pauses = [
        (paris(2024, 6, 4, 0), paris(2024, 6, 5, 0)),  # Tuesday on hold
        (paris(2024, 6, 4, 12), paris(2024, 6, 5, 12)),  # overlaps the previous pause
        (paris(2024, 6, 7, 17), paris(2024, 6, 10, 12)),  # runs past the end
    ]
    assert france.working_seconds_excluding(start, end, pauses) == 50 * HOUR - 14 * HOUR - HOUR


def test_naive_datetimes_are_rejected(france: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="naive"):
        france.working_seconds_between(datetime(2024, 6, 4, 8), paris(2024, 6, 4, 9))
    with pytest.raises(ValueError, match="naive"):
        france.add_working_seconds(datetime(2024, 6, 4, 8), 10)


def test_negative_seconds_are_rejected(france: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        france.add_working_seconds(paris(2024, 6, 4, 8), -1)
    with pytest.raises(ValueError, match=">= 0"):
        france.add_working_seconds_many([paris(2024, 6, 4, 8).timestamp()], [-1.0])


@pytest.mark.parametrize(
    ("spec", "zone"),
    [
        ("FR", "Europe/Paris"),
        ("NL", "Europe/Amsterdam"),
        ("BE", "Europe/Brussels"),
        ("DE-BY", "Europe/Berlin"),
    ],
)
def test_parse_picks_the_country_time_zone(spec: str, zone: str) -> None:
    assert BusinessCalendar.parse(spec).timezone == ZoneInfo(zone)


def test_parse_accepts_24x7() -> None:
    assert BusinessCalendar.parse("24x7") == BusinessCalendar.always_open()


@pytest.mark.parametrize("spec", ["", "France", "XX", "DE-ZZ", "1X"])
def test_parse_rejects_unknown_calendars(spec: str) -> None:
    with pytest.raises(ValueError, match="invalid calendar"):
        BusinessCalendar.parse(spec)


def test_overseas_subdivisions_get_their_own_time_zone() -> None:
    assert BusinessCalendar.for_country("FR", "974").timezone == ZoneInfo("Indian/Reunion")


def test_a_country_without_a_default_zone_needs_one() -> None:
    with pytest.raises(ValueError, match="timezone="):
        BusinessCalendar.for_country("US", "CA")
    calendar = BusinessCalendar.for_country("US", "CA", timezone="America/Los_Angeles")
    assert not calendar.is_working_day(date(2024, 7, 4))


@pytest.mark.parametrize(
    "hours",
    [{0: [("09:00", "08:00")]}, {0: [("08:00", "12:00"), ("11:00", "13:00")]}, {7: [("08:00", "09:00")]}, {}],
)
def test_invalid_opening_hours_are_rejected(hours: dict[int, list[tuple[str, str]]]) -> None:
    with pytest.raises(ValueError):
        BusinessCalendar.for_country("FR", opening_hours=hours)


def reference_working_seconds(calendar: BusinessCalendar, start: datetime, end: datetime) -> float:
    """Brute force over local days; valid while no opening boundary falls in a DST gap."""
    total, day = 0.0, start.astimezone(calendar.timezone).date() - timedelta(days=1)
    while day <= end.astimezone(calendar.timezone).date():
        if calendar.is_working_day(day):
            midnight = datetime.combine(day, time(), tzinfo=calendar.timezone)
            for s, e in calendar.opening_hours[day.weekday()]:
                lo = max(start, midnight + timedelta(seconds=s))
                hi = min(end, midnight + timedelta(seconds=e))
                total += max((hi - lo).total_seconds(), 0.0)
        day += timedelta(days=1)
    return total


@pytest.mark.parametrize("spec", ["FR", "24x7", "garage"])
def test_scalar_vectorised_and_brute_force_agree_on_random_inputs(
    spec: str, garage: BusinessCalendar
) -> None:
    calendar = garage if spec == "garage" else BusinessCalendar.parse(spec)
    rng = np.random.default_rng(42)
    lo = datetime(2023, 12, 1, tzinfo=UTC).timestamp()
    starts = rng.uniform(lo, lo + 2 * 365 * 86400, 300)
    # Whole-hour starts hit interval boundaries exactly, the rest fall anywhere.
    starts[:100] = np.round(starts[:100] / 3600) * 3600
    seconds = np.concatenate([rng.exponential(40 * HOUR, 250), np.zeros(10), np.full(40, 4 * HOUR)])
    ends = calendar.add_working_seconds_many(starts, seconds)
    for start, secs, end in zip(starts, seconds, ends, strict=True):
        start_dt = datetime.fromtimestamp(start, UTC)
        scalar_end = calendar.add_working_seconds(start_dt, float(secs))
        assert scalar_end.timestamp() == pytest.approx(end, abs=1e-3)
        if secs > 0:
            assert is_open(calendar, scalar_end)
        assert reference_working_seconds(calendar, start_dt, scalar_end) == pytest.approx(secs, abs=1e-3)
    span_ends = starts + rng.uniform(-86400, 60 * 86400, 300)
    spans = calendar.working_seconds_between_many(starts, span_ends)
    for start, end, span in zip(starts, span_ends, spans, strict=True):
        start_dt, end_dt = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
        assert calendar.working_seconds_between(start_dt, end_dt) == pytest.approx(span, abs=1e-3)
        assert reference_working_seconds(calendar, start_dt, end_dt) == pytest.approx(span, abs=1e-3)


def test_round_trip_returns_the_working_time_added(garage: BusinessCalendar) -> None:
    rng = np.random.default_rng(7)
    starts = rng.uniform(1.70e9, 1.80e9, 20_000)
    seconds = rng.uniform(0, 500 * HOUR, 20_000)
    ends = garage.add_working_seconds_many(starts, seconds)
    np.testing.assert_allclose(garage.working_seconds_between_many(starts, ends), seconds, atol=1e-3)
    assert (ends >= starts).all()


def test_vectorised_inputs_broadcast_and_keep_their_shape(france: BusinessCalendar) -> None:
    starts = np.full((2, 3), paris(2024, 6, 4, 8).timestamp())
    result = france.add_working_seconds_many(starts, np.array([0.0, HOUR, 10 * HOUR]))
    assert result.shape == (2, 3)
    assert result[1, 2] == paris(2024, 6, 4, 18).timestamp()
    assert france.working_seconds_between_many(np.array([]), np.array([])).shape == (0,)


def test_vectorised_rejects_non_finite_epochs(france: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="finite"):
        france.working_seconds_between_many([np.nan], [1.7e9])


def test_working_day_length_is_the_longest_weekday(garage: BusinessCalendar) -> None:
    assert garage.working_day_seconds == 8.5 * HOUR
    assert BusinessCalendar.always_open().working_day_seconds == 24 * HOUR
