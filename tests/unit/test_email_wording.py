"""What an email's subject says, and how dates and money read in each language (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tracker.domain.events import EventType
from tracker.domain.money import Money
from tracker.domain.workflow import JobStatus
from tracker.services.email_composer import Formats, headline, mail_domain, net_moves
from tracker.settings import Settings


@pytest.mark.parametrize(
    ("kinds", "status", "says"),
    [
        ([EventType.ADVANCE], JobStatus.OPEN, "stage"),
        ([EventType.CREATED, EventType.ADVANCE], JobStatus.OPEN, "stage"),
        ([EventType.CREATED], JobStatus.OPEN, "stage"),
        ([EventType.HOLD], JobStatus.ON_HOLD, "on_hold"),
        ([EventType.ADVANCE, EventType.COMPLETE], JobStatus.COMPLETED, "completed"),
        ([EventType.CREATED], JobStatus.CANCELLED, "cancelled"),  # a late email never shows it open
        ([EventType.ETA_MOVED, EventType.COST_MOVED], JobStatus.OPEN, "eta"),
        ([EventType.COST_MOVED], JobStatus.OPEN, "cost"),
        ([EventType.AT_RISK], JobStatus.OPEN, "at_risk"),
        (
            [EventType.CREATED, EventType.ADVANCE, EventType.AT_RISK],
            JobStatus.OPEN,
            "at_risk",
        ),  # urgent first
        ([EventType.ADVANCE, EventType.STUCK], JobStatus.OPEN, "stage"),
        ([EventType.STUCK], JobStatus.ON_HOLD, "stuck"),
        ([EventType.BACK_ON_TRACK], JobStatus.OPEN, "back_on_track"),
        ([EventType.NOTE_ADDED], JobStatus.OPEN, "note"),
    ],
)
def test_the_subject_says_what_changed(kinds: list[EventType], status: JobStatus, says: str) -> None:
    assert headline(kinds, status) == says


@pytest.mark.parametrize(
    ("language", "day", "money"),
    [
        ("en", "Thu, Dec 3", "€1,234.50"),
        ("fr", "jeu. 3 déc.", "1\u202f234,50\u00a0€"),
        ("nl", "do 3 dec", "€\u00a01.234,50"),
        ("de", "Do., 3. Dez.", "1.234,50\u00a0€"),
    ],
)
def test_dates_and_money_read_as_in_the_contacts_language(language: str, day: str, money: str) -> None:
    formats = Formats(language, ZoneInfo("Europe/Paris"))
    late_evening_utc = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)  # already the 3rd in Paris
    assert formats.day(late_evening_utc) == day
    assert formats.money(Money(Decimal("1234.50"), "EUR")) == money
    assert formats.calendar_day(date(2026, 12, 3))


def test_message_ids_use_the_senders_domain_else_the_sites_else_a_reserved_one() -> None:
    assert mail_domain(Settings(mail_from="Garage <a@garage.example>")) == "garage.example"
    no_domain = Settings(mail_from="tracker@localhost", public_base_url="https://status.garage.example")
    assert mail_domain(no_domain) == "status.garage.example"
    assert mail_domain(Settings(mail_from="x@localhost", public_base_url="http://127.0.0.1:8000")) == (
        "tracker.invalid"
    )


def test_the_estimates_moves_in_one_email_read_as_one_ending_where_it_is_now() -> None:
    changes = [
        {"kind": "advance", "stage": "Repair"},
        {"kind": "eta_moved", "old": "Tue, Dec 8", "new": "Wed, Dec 9"},
        {"kind": "cost_moved", "old": "€640.00", "new": "€700.00"},
        {"kind": "eta_moved", "old": "Wed, Dec 9", "new": "Fri, Dec 11"},
        {"kind": "cost_moved", "old": "€700.00", "new": "€650.00"},
    ]
    now = {"eta_moved": "Thu, Dec 10", "cost_moved": "€640.00"}

    assert net_moves(changes, now) == [
        {"kind": "advance", "stage": "Repair"},
        {"kind": "eta_moved", "old": "Tue, Dec 8", "new": "Thu, Dec 10"},  # where the estimate is now
    ]  # the cost came back to where it started: no line


def test_without_an_estimate_now_a_move_keeps_its_own_end() -> None:
    moved = {"kind": "eta_moved", "old": "Tue, Dec 8", "new": "Wed, Dec 9"}
    assert net_moves([moved], {}) == [moved]
