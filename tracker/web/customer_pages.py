"""What every server-rendered page shares (the customer pages here, the staff dashboard too).

- `PageRenderer`: one Jinja environment per language (the emails' catalogs), Babel formats, fingerprinted
  static assets, and the security headers every page carries.
- `Assets`: files of `templates/static/` served as `/static/<name>.<hash>.<ext>`, cached for a year.
- `FormTokens`: a signed, expiring token per page and form, checked with the Origin header, so the forms
  are safe without cookies.
- `ClientRateLimit`: a token bucket per client address on the public pages (429 with Retry-After).
- `choose_language`: `?lang=`, then Accept-Language, then the customer's own locale.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import mimetypes
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from babel.dates import format_date, format_time
from babel.numbers import format_currency
from litestar import Request, Response
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException

from notifications.i18n import LANGUAGES, language_of, localized_environments
from notifications.ratelimit import Rate, TokenBucket
from tracker.domain.money import Money

STATIC_PREFIX = "/static"
IMMUTABLE = "public, max-age=31536000, immutable"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
TOKEN_PAGE_HEADERS = {**PAGE_HEADERS, "X-Robots-Tag": "noindex, nofollow"}
"""A page found by a secret link: never indexed, never cached, the link never sent on as a referrer."""
PAGE_METHODS = [HttpMethod.GET, HttpMethod.HEAD]
"""The pages answer HEAD as they answer GET, without the body: link checkers, uptime probes and mail
scanners ask before they fetch."""


class Assets:
    """The static files, each under a name that changes with its content."""

    def __init__(self, folder: Path) -> None:
        self._by_name: dict[str, str] = {}
        self._files: dict[str, tuple[bytes, str]] = {}
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if not path.is_file():
                continue
            content = path.read_bytes()
            digest = hashlib.sha256(content).hexdigest()[:16]
            fingerprinted = f"{path.stem}.{digest}{path.suffix}"
            media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            self._by_name[path.name] = fingerprinted
            self._files[fingerprinted] = (content, media_type)

    def url(self, name: str) -> str:
        """`site.css` -> `/static/site.1a2b3c4d5e6f7a8b.css`."""
        return f"{STATIC_PREFIX}/{self._by_name[name]}"

    def response(self, fingerprinted: str) -> Response[bytes]:
        found = self._files.get(fingerprinted)
        if found is None:
            raise NotFoundException()
        content, media_type = found
        return Response(
            content,
            media_type=media_type,
            headers={"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"},
        )


def negotiate(accept_language: str | None) -> str | None:
    """The supported language the browser prefers most (RFC 9110 quality values), if any."""
    if not accept_language:
        return None
    ranked: list[tuple[float, int, str]] = []
    for order, item in enumerate(accept_language.split(",")[:20]):
        tag, _, parameters = item.strip().partition(";")
        quality = 1.0
        name, _, value = parameters.strip().partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                continue
        primary = tag.strip().split("-", 1)[0].lower()
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, order, primary))
    return min(ranked)[2] if ranked else None


def choose_language(query: str | None, accept_language: str | None, own_locale: str | None) -> str:
    """`?lang=` (email links carry their contact's), else the browser's, else the customer's own."""
    if query and query.lower() in LANGUAGES:
        return query.lower()
    return negotiate(accept_language) or language_of(own_locale)


@dataclass(frozen=True)
class Formats:
    """Babel formats in one language and time zone, for templates."""

    language: str
    zone: tzinfo

    def day(self, moment: datetime | date) -> str:
        """`Tue 3 December` (in the zone, for an instant)."""
        value = moment.astimezone(self.zone).date() if isinstance(moment, datetime) else moment
        return format_date(value, "EEE d MMMM", locale=self.language)

    def range_start(self, start: datetime, end: datetime) -> str:
        """A range's first day, without its month when the range ends in it: `Tue 3` (to `Thu 5 December`)."""
        first, last = start.astimezone(self.zone).date(), end.astimezone(self.zone).date()
        if (first.year, first.month) == (last.year, last.month):
            return format_date(first, "EEE d", locale=self.language)
        return self.day(first)

    def full_day(self, moment: datetime | date) -> str:
        value = moment.astimezone(self.zone).date() if isinstance(moment, datetime) else moment
        return format_date(value, "long", locale=self.language)

    def moment(self, value: datetime) -> str:
        """`2 Mar 2026, 10:00` in the customer's zone and language (no seconds)."""
        local = value.astimezone(self.zone)
        day = format_date(local.date(), "medium", locale=self.language)
        return f"{day}, {format_time(local, 'short', tzinfo=self.zone, locale=self.language)}"

    def iso(self, value: datetime) -> str:
        return value.astimezone(self.zone).isoformat()

    def money(self, value: Money) -> str:
        return format_currency(value.amount, value.currency, locale=self.language)

    def same_day(self, first: datetime, second: datetime) -> bool:
        return first.astimezone(self.zone).date() == second.astimezone(self.zone).date()


class PageRenderer:
    """Renders `templates/pages/*.html` in a language, with the page headers."""

    def __init__(self, templates_dir: Path) -> None:
        self.assets = Assets(templates_dir / "static")
        self.environments = localized_environments(templates_dir)
        for environment in self.environments.values():
            environment.globals["asset"] = self.assets.url
            environment.filters["ics_text"] = ics_text

    def html(self, template: str, language: str, context: Mapping[str, Any]) -> str:
        return self.environments[language].get_template(f"pages/{template}").render(context)

    def render(
        self,
        template: str,
        language: str,
        context: Mapping[str, Any],
        *,
        status: int = 200,
        headers: Mapping[str, str] = TOKEN_PAGE_HEADERS,
    ) -> Response[str]:
        return page_response(self.html(template, language, context), status=status, headers=headers)


def page_response(
    html: str, *, status: int = 200, headers: Mapping[str, str] = TOKEN_PAGE_HEADERS
) -> Response[str]:
    return Response(html, status_code=status, media_type="text/html", headers=dict(headers))


@dataclass
class PageCache:
    """Rendered answers of the token pages, keyed by everything they show depends on (the job's version
    and estimate time among it), so a change of the job is a new key, never a stale answer. Entries live
    `ttl_s` at most (the page's form tokens and its confidence words were made when it was rendered)."""

    ttl_s: float = 60.0
    max_entries: int = 2000
    _entries: OrderedDict[tuple[object, ...], tuple[float, Any]] = field(default_factory=OrderedDict)

    def get(self, key: tuple[object, ...], now: float | None = None) -> Any:
        found = self._entries.get(key)
        moment = time.monotonic() if now is None else now
        if found is None or moment - found[0] > self.ttl_s:
            return None
        return found[1]

    def put(self, key: tuple[object, ...], value: Any, now: float | None = None) -> None:
        self._entries[key] = (time.monotonic() if now is None else now, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, token: str) -> None:
        """Drop what was rendered for a page token (its survey was answered: that changes no version)."""
        for key in [key for key in self._entries if token in key]:
            del self._entries[key]


def ics_text(value: str) -> str:
    """A TEXT value of RFC 5545: backslash, semicolon, comma and newline escaped."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def ics_lines(body: str) -> str:
    """CRLF line ends; lines over 75 octets folded (RFC 5545 3.1) between characters."""
    folded = []
    for line in body.splitlines():
        if not line:
            continue
        pieces: list[str] = []
        current = ""
        for character in line:
            limit = 75 if not pieces else 74  # a continuation starts with one space
            if len((current + character).encode()) > limit:
                pieces.append(current)
                current = ""
            current += character
        pieces.append(current)
        folded.append("\r\n ".join(pieces))
    return "\r\n".join(folded) + "\r\n"


def not_found() -> Response[str]:
    """The answer to an unknown token: the same plain text for every page, revealing nothing."""
    return Response("Not found\n", status_code=404, media_type="text/plain", headers=PAGE_HEADERS)


class FormRefused(HTTPException):
    status_code = 400


@dataclass(frozen=True)
class FormTokens:
    """`<issued>.<hmac>` over the purpose, the page token and the time issued; valid for `max_age_s`."""

    secret: str
    max_age_s: int = 86_400

    def _signature(self, purpose: str, page_token: str, issued: int) -> str:
        message = f"{purpose}\x00{page_token}\x00{issued}".encode()
        return hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()

    def issue(self, purpose: str, page_token: str, now: datetime) -> str:
        issued = int(now.timestamp())
        return f"{issued}.{self._signature(purpose, page_token, issued)}"

    def check(self, form_token: str, purpose: str, page_token: str, now: datetime) -> None:
        issued_text, _, signature = form_token.partition(".")
        if not issued_text.isdigit() or not hmac.compare_digest(
            signature, self._signature(purpose, page_token, int(issued_text))
        ):
            raise FormRefused(detail="this form was not issued by this page; reload the page and try again")
        if not 0 <= now.timestamp() - int(issued_text) <= self.max_age_s:
            raise FormRefused(detail="this form has expired; reload the page and try again")


def check_origin(request: Request[Any, Any, Any], public_base_url: str) -> None:
    """A form post must come from our own pages.

    Browsers say where a request comes from in `Sec-Fetch-Site` (same-origin for our own forms) and in
    `Origin`. Our pages' `Referrer-Policy: no-referrer` makes the browser send `Origin: null` for their own
    forms, so `null` proves nothing either way: then `Sec-Fetch-Site` and the signed form token decide.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in {"same-origin", "none"}:
        raise PermissionDeniedException(detail="this form may only be sent from its own page")
    origin = request.headers.get("origin")
    if origin in (None, "null"):
        return
    if origin not in {_origin(str(request.base_url)), _origin(public_base_url)}:
        raise PermissionDeniedException(detail="this form may only be sent from its own page")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class ClientRateLimit:
    """A token bucket per client address; the oldest buckets are dropped past `max_clients`."""

    rate: Rate
    max_clients: int = 10_000
    _buckets: OrderedDict[str, TokenBucket] = field(default_factory=OrderedDict)

    def check(self, client: str, now: float | None = None) -> None:
        """Let the request through, or raise 429 with the seconds until the client may try again."""
        moment = time.monotonic() if now is None else now
        bucket = self._buckets.pop(client, None) or TokenBucket.full(self.rate, moment)
        reservation = bucket.reserve(moment, max_wait=0.0)
        self._buckets[client] = reservation.bucket
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if not reservation.granted:
            raise HTTPException(
                status_code=429,
                detail="too many requests from this address; try again shortly",
                headers={"Retry-After": str(max(1, math.ceil(reservation.wait)))},
            )

    def check_request(self, request: Request[Any, Any, Any]) -> None:
        self.check(request.client.host if request.client else "unknown")

    @classmethod
    def per_minute(cls, requests: int) -> ClientRateLimit:
        return cls(Rate(per_second=requests / 60, burst=requests))
