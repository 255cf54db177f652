"""Dashboard session cookies, CSRF tokens and the page language: pure parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracker.web.dashboard import choose_language
from tracker.web.dashboard_sessions import SessionSigner

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
SIGNER = SessionSigner(b"k" * 32, timedelta(hours=8))


def test_a_cookie_reads_back_as_its_session_until_it_expires() -> None:
    session, cookie = SIGNER.issue(7, NOW)
    assert SIGNER.read(cookie, NOW + timedelta(hours=7, minutes=59)) == session
    assert session.key_id == 7 and session.expires_at == NOW + timedelta(hours=8)
    assert SIGNER.read(cookie, NOW + timedelta(hours=8)) is None


@pytest.mark.parametrize("cookie", [None, "", "garbage", "a.b.c", "e30.AAAA", "!!.!!"])
def test_malformed_cookies_are_no_session(cookie: str | None) -> None:
    assert SIGNER.read(cookie, NOW) is None


def test_a_cookie_signed_with_another_secret_or_altered_is_no_session() -> None:
    _, cookie = SessionSigner(b"x" * 32, timedelta(hours=8)).issue(7, NOW)
    assert SIGNER.read(cookie, NOW) is None
    _, mine = SIGNER.issue(7, NOW)
    body, signature = mine.split(".")
    forged_body = body.replace(body[2], "A" if body[2] != "A" else "B", 1)
    assert SIGNER.read(f"{forged_body}.{signature}", NOW) is None


def test_csrf_tokens_belong_to_one_session() -> None:
    first, _ = SIGNER.issue(7, NOW)
    second, _ = SIGNER.issue(7, NOW)
    token = SIGNER.csrf_token(first)
    assert SIGNER.csrf_matches(first, token)
    assert not SIGNER.csrf_matches(second, token)
    assert not SIGNER.csrf_matches(first, "")


def test_sessions_sign_with_a_key_derived_from_the_app_secret_key() -> None:
    one = SessionSigner.from_secret_key("a" * 32, 60)
    _, cookie = one.issue(1, NOW)
    assert SessionSigner.from_secret_key("a" * 32, 60).read(cookie, NOW) is not None
    assert SessionSigner.from_secret_key("b" * 32, 60).read(cookie, NOW) is None
    assert one.secret != b"a" * 32


@pytest.mark.parametrize(
    ("query", "header", "language"),
    [
        ("fr", "de", "fr"),
        (None, "de-CH, en;q=0.5", "de"),
        (None, "en;q=0.4, nl;q=0.9", "nl"),
        (None, "es, it;q=0.9, fr;q=0.1", "fr"),
        (None, "fr;q=0, de;q=0.2", "de"),
        ("xx", "nl-BE", "nl"),
        (None, "*", "en"),
        (None, None, "en"),
        (None, "fr;q=abc, nl", "nl"),
    ],
)
def test_the_language_is_the_query_then_the_best_accepted_then_english(
    query: str | None, header: str | None, language: str
) -> None:
    assert choose_language(query, header) == language
