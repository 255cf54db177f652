"""The page machinery's pure parts: language choice, form tokens, the per-client limit, calendar lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from litestar.exceptions import HTTPException

from notifications.ratelimit import Rate
from tracker.web.customer_pages import (
    ClientRateLimit,
    FormRefused,
    FormTokens,
    choose_language,
    ics_lines,
    ics_text,
    negotiate,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("nl-BE,nl;q=0.9,en;q=0.8", "nl"),
        ("ja, de;q=0.5, fr;q=0.7", "fr"),
        ("en-US,en;q=0.9", "en"),
        ("ja,zh", None),
        ("de;q=0, fr;q=abc", None),
        ("", None),
        (None, None),
    ],
)
def test_negotiate_takes_the_best_supported_language(header: str | None, expected: str | None) -> None:
    assert negotiate(header) == expected


def test_the_query_beats_the_browser_which_beats_the_customers_locale() -> None:
    assert choose_language("DE", "fr", "nl_NL") == "de"
    assert choose_language("xx", "fr", "nl_NL") == "fr"
    assert choose_language(None, "ja", "nl_NL") == "nl"
    assert choose_language(None, None, None) == "en"


def test_a_form_token_holds_for_its_purpose_and_page_only_and_expires() -> None:
    tokens = FormTokens("s" * 64, max_age_s=3600)
    token = tokens.issue("question", "page-a", NOW)

    tokens.check(token, "question", "page-a", NOW + timedelta(minutes=59))
    for purpose, page, when in [
        ("survey", "page-a", NOW),
        ("question", "page-b", NOW),
        ("question", "page-a", NOW + timedelta(hours=2)),
    ]:
        with pytest.raises(FormRefused):
            tokens.check(token, purpose, page, when)
    with pytest.raises(FormRefused):
        FormTokens("t" * 64).check(token, "question", "page-a", NOW)
    with pytest.raises(FormRefused):
        tokens.check("not-a-token", "question", "page-a", NOW)


def test_the_client_limit_refuses_past_the_burst_and_says_when_to_come_back() -> None:
    limit = ClientRateLimit(Rate(per_second=1.0, burst=2))
    limit.check("10.0.0.1", now=0.0)
    limit.check("10.0.0.1", now=0.0)
    limit.check("10.0.0.2", now=0.0)  # another client has its own bucket

    with pytest.raises(HTTPException) as refused:
        limit.check("10.0.0.1", now=0.5)
    assert refused.value.status_code == 429
    assert refused.value.headers == {"Retry-After": "1"}
    limit.check("10.0.0.1", now=1.0)


def test_the_client_limit_forgets_the_oldest_clients_first() -> None:
    limit = ClientRateLimit(Rate(per_second=0.001, burst=1), max_clients=2)
    for client in ("a", "b", "c"):
        limit.check(client, now=0.0)

    limit.check("a", now=0.0)  # forgotten, so full again
    with pytest.raises(HTTPException):
        limit.check("c", now=0.0)


def test_calendar_text_is_escaped_and_long_lines_folded() -> None:
    assert ics_text("Brakes; discs, pads\\rotors\nfront") == "Brakes\\; discs\\, pads\\\\rotors\\nfront"
    body = ics_lines("SUMMARY:" + "é" * 60 + "\nEND:VEVENT\n")
    lines = body.split("\r\n")

    assert body.endswith("END:VEVENT\r\n")
    assert all(len(line.encode()) <= 75 for line in lines)
    assert lines[1].startswith(" ")
    assert "".join(line.removeprefix(" ") for line in lines[:2]) == "SUMMARY:" + "é" * 60
