"""The customer's status page of a job (`/status/{token}`), its JSON, its calendar file and its two forms.

The page, the calendar file and the forms are for browsers and stay out of the API document; the JSON is
an API (a shop shows it on its own site) and is documented at `/status/{token}.json`. `StatusSuffixes`
maps `/status/{token}.json` and `.ics` onto the routes here, as a route cannot end a parameter with a
suffix.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post, route
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter, SkipValidation
from litestar.response import Redirect
from litestar.serialization import encode_json
from litestar.types import ASGIApp, Receive, Scope, Send

from notifications.i18n import LANGUAGES
from notifications.ratelimit import Rate
from tracker.domain.errors import Conflict, InvalidInput, NotFound
from tracker.services import status_pages
from tracker.services.bootstrap import Services
from tracker.services.keys import Principal, Role
from tracker.services.status_pages import (
    COMMENT_MAX_CHARS,
    QUESTION_MAX_CHARS,
    AccountPages,
    Questions,
    StatusPages,
    StatusView,
)
from tracker.settings import Settings
from tracker.web import schemas as s, views
from tracker.web.auth import PUBLIC, requires
from tracker.web.customer_pages import (
    PAGE_HEADERS,
    PAGE_METHODS,
    ClientRateLimit,
    Formats,
    FormRefused,
    FormTokens,
    PageCache,
    PageRenderer,
    check_origin,
    choose_language,
    ics_lines,
    negotiate,
    not_found,
    page_response,
)
from tracker.web.deps import Now
from tracker.web.openapi import PUBLIC_PATH

SUFFIXED = re.compile(r"^/status/([^/]+)\.(json|ics)$")
INTERNAL = re.compile(r"^/status/[^/]+/(?:json|ics)$")
Text = Annotated[str | None, QueryParameter()]
"""A free query value of the pages (they answer a value they do not know as if it were absent)."""
LANGUAGE_QUERY = Annotated[
    str | None,
    QueryParameter(
        pattern="^(en|fr|nl|de)$",
        description="The language of labels: en, fr, nl or de (else the customer's)",
    ),
]


class StatusSuffixes:
    """ASGI layer: `/status/<token>.json` -> `/status/<token>/json` (and `.ics`); the inner form itself
    answers 404, so each resource has one address."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            path: str = scope["path"]
            matched = SUFFIXED.match(path)
            if matched:
                scope = {**scope, "path": f"/status/{matched.group(1)}/{matched.group(2)}"}
            elif INTERNAL.match(path):
                scope = {**scope, "path": "/status/-/-/-"}  # found by no route: 404
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class CustomerPages:
    """The app's page machinery, built once in `create_app`."""

    renderer: PageRenderer
    forms: FormTokens
    limit: ClientRateLimit
    question_limit: ClientRateLimit
    """Per client: a few questions at once, then one every few minutes."""
    status: StatusPages
    accounts: AccountPages
    questions: Questions
    cache: PageCache
    public_base_url: str
    poll_seconds: int


def provide_pages(state: State) -> CustomerPages:
    pages: CustomerPages = state.customer_pages
    return pages


Pages = NamedDependency[SkipValidation[CustomerPages]]


def _etag(version: int, estimated_at: datetime, language: str | None) -> str:
    return f'W/"{version}-{int(estimated_at.timestamp())}-{language or "auto"}"'


def asked_language(request: Request[Any, Any, Any], query: str | None) -> str | None:
    """`?lang=`, else the browser's Accept-Language; None leaves it to the customer's own locale."""
    if query and query.lower() in LANGUAGES:
        return query.lower()
    return negotiate(request.headers.get("accept-language"))


def _status_html(pages: CustomerPages, view: StatusView, *, asked: bool, now: datetime) -> str:
    language = view.audience.locale
    token = view.token
    version, estimated = view.snapshot.version, view.snapshot.estimate
    at = estimated.computed_at if estimated is not None else view.snapshot.updated_at
    return pages.renderer.html(
        "status.html",
        language,
        {
            "view": view,
            "fmt": Formats(language, view.audience.time_zone),
            "here": f"/status/{token}",
            "poll_url": f"/status/{token}.json?lang={language}",
            "poll_seconds": pages.poll_seconds,
            "etag": _etag(version, at, language),
            "calendar_url": f"/status/{token}.ics?lang={language}",
            "question_url": f"/status/{token}/question",
            "survey_url": f"/status/{token}/survey",
            "question_token": pages.forms.issue("question", token, now),
            "survey_token": pages.forms.issue("survey", token, now),
            "question_limit": QUESTION_MAX_CHARS,
            "comment_limit": COMMENT_MAX_CHARS,
            "asked": asked,
        },
    )


def message(pages: CustomerPages, language: str, kind: str, back: str, status: int) -> Response[str]:
    context = {"kind": kind, "back": back, "limit": QUESTION_MAX_CHARS}
    return pages.renderer.render("message.html", language, context, status=status)


async def form_fields(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


class StatusPageController(Controller):
    path = "/status"
    opt = {PUBLIC: True}
    include_in_schema = False

    @route("/{token:str}", http_method=PAGE_METHODS, operation_id="StatusPage")
    async def page(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        pages: Pages,
        now: Now,
        lang: Text = None,
        asked: Text = None,
    ) -> Response[str]:
        pages.limit.check_request(request)
        language = asked_language(request, lang)
        try:
            key = ("page", token, language, asked == "1", await pages.status.revision(token))
            html = pages.cache.get(key)
            if html is None:
                view = await pages.status.view(token, locale=language, now=now)
                html = _status_html(pages, view, asked=asked == "1", now=now)
                pages.cache.put(key, html)
        except NotFound:
            return not_found()
        return page_response(html)

    @route("/{token:str}/ics", http_method=PAGE_METHODS, operation_id="StatusCalendar")
    async def calendar(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        pages: Pages,
        now: Now,
        lang: Text = None,
    ) -> Response[str]:
        pages.limit.check_request(request)
        try:
            view = await pages.status.view(token, locale=asked_language(request, lang), now=now)
        except NotFound:
            return not_found()
        language = view.audience.locale
        host = pages.public_base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "tracker"
        body = (
            pages.renderer.environments[language]
            .get_template("pages/calendar.ics")
            .render(
                {
                    "view": view,
                    "uid": f"job-{view.snapshot.id}-completion@{host}",
                    "now": now.astimezone(UTC),
                    "one_day": timedelta(days=1),
                }
            )
        )
        return Response(
            ics_lines(body),
            media_type="text/calendar",
            headers={
                **PAGE_HEADERS,
                "X-Robots-Tag": "noindex, nofollow",
                "Content-Disposition": f'attachment; filename="{view.snapshot.reference}.ics"',
            },
        )

    @post("/{token:str}/question", operation_id="AskQuestion", status_code=303)
    async def ask(
        self, request: Request[Any, Any, Any], token: FromPath[str], pages: Pages, now: Now
    ) -> Response[Any]:
        pages.limit.check_request(request)
        form = await form_fields(request)
        language = choose_language(form.get("lang"), None, None)
        back = f"/status/{token}?lang={language}#question"
        try:
            check_origin(request, pages.public_base_url)
            pages.forms.check(form.get("form_token", ""), "question", token, now)
            pages.question_limit.check_request(request)
            await pages.questions.ask(token, form.get("question", ""), now=now)
        except NotFound:
            return not_found()
        except (FormRefused, PermissionDeniedException):
            return message(pages, language, "form", back, 400)
        except InvalidInput:
            return message(pages, language, "question", back, 422)
        return Redirect(f"/status/{token}?lang={language}&asked=1#question", status_code=303)

    @post("/{token:str}/survey", operation_id="AnswerSurvey", status_code=303)
    async def survey(
        self, request: Request[Any, Any, Any], token: FromPath[str], pages: Pages, now: Now
    ) -> Response[Any]:
        pages.limit.check_request(request)
        form = await form_fields(request)
        language = choose_language(form.get("lang"), None, None)
        back = f"/status/{token}?lang={language}#survey"
        score = form.get("score", "")
        try:
            check_origin(request, pages.public_base_url)
            pages.forms.check(form.get("form_token", ""), "survey", token, now)
            if not (score.isascii() and score.isdigit()):
                raise InvalidInput("score", "must be a whole number from 1 to 5")
            await status_pages.answer_survey(token, int(score), form.get("comment", ""), now=now)
            pages.cache.forget(token)
        except NotFound:
            return not_found()
        except (FormRefused, PermissionDeniedException):
            return message(pages, language, "form", back, 400)
        except InvalidInput:
            return message(pages, language, "score", back, 422)
        except Conflict as conflict:
            pages.cache.forget(token)
            kind = "already_answered" if conflict.code == "already_answered" else "not_completed"
            return message(pages, language, kind, back, 409)
        return Redirect(f"/status/{token}?lang={language}#survey", status_code=303)


class StatusJsonController(Controller):
    """The JSON of the status page, documented at its public address `/status/{token}.json`."""

    path = "/status"
    opt = {PUBLIC: True}
    tags = ["Status pages"]

    @get(
        "/{token:str}/json",
        operation_id="GetPublicStatus",
        opt={PUBLIC_PATH: "/status/{token}.json"},
        summary="A job's status as its customer sees it",
        description="Read-only, no key, CORS open: a shop may show it on its own site. The token is the "
        "last part of the job's `status_page_url`. Send the ETag back in If-None-Match to get a 304 "
        "while nothing changed.",
        responses={
            200: ResponseSpec(s.PublicStatusOut, description="The job's status"),
            304: ResponseSpec(None, description="Unchanged since the ETag sent in If-None-Match"),
            429: ResponseSpec(None, description="Too many requests from this address; see Retry-After"),
        },
    )
    async def status_json(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        pages: Pages,
        now: Now,
        lang: LANGUAGE_QUERY = None,
    ) -> Response[bytes]:
        pages.limit.check_request(request)
        cors = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "ETag"}
        revision = await pages.status.revision(token)
        language = asked_language(request, lang)
        tag = _etag(*revision, language)
        headers = {**cors, "ETag": tag, "Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"}
        if request.headers.get("if-none-match") == tag:
            return Response(b"", status_code=304, headers=headers)
        key = ("json", token, language, revision)
        body = pages.cache.get(key)
        if body is None:
            view = await pages.status.view(token, locale=language, now=now)
            body = encode_json(views.public_status_out(view))
            pages.cache.put(key, body)
        return Response(body, media_type="application/json", headers=headers)


class StatusTokenController(Controller):
    path = "/jobs"
    tags = ["Jobs"]

    @post(
        "/{job_id:int}/status-token",
        guards=[requires(Role.STAFF)],
        operation_id="RegenerateStatusToken",
        summary="Give the job a new status-page link",
        description="The old link answers 404 from now on (a link shared too widely, a customer change).",
        status_code=200,
        responses={200: ResponseSpec(s.StatusTokenOut)},
    )
    async def regenerate(
        self, job_id: FromPath[int], state: State, principal: NamedDependency[Principal]
    ) -> s.StatusTokenOut:
        services: Services = state.services
        job = await status_pages.regenerate_token(job_id)
        return s.StatusTokenOut(status_page_url=services.snapshots.public_url(job.public_token))


@route(
    "/static/{name:str}",
    http_method=PAGE_METHODS,
    opt={PUBLIC: True},
    include_in_schema=False,
    operation_id="StaticAsset",
)
async def static_asset(name: FromPath[str], pages: Pages) -> Response[bytes]:
    """A fingerprinted asset of the pages (`site.<hash>.css`), cached for a year."""
    return pages.renderer.assets.response(name)


def customer_pages(settings: Settings, services: Services) -> CustomerPages:
    snapshots = services.snapshots
    return CustomerPages(
        renderer=PageRenderer(settings.templates_dir),
        forms=FormTokens(settings.secret_key or secrets.token_hex(32)),
        limit=ClientRateLimit.per_minute(settings.page_requests_per_minute),
        question_limit=ClientRateLimit(Rate(per_second=1 / 300, burst=3)),
        status=StatusPages(snapshots),
        accounts=AccountPages(snapshots),
        questions=Questions(settings.staff_alert_addresses, services.deliveries_queued),
        cache=PageCache(),
        public_base_url=settings.public_base_url,
        poll_seconds=settings.status_poll_s,
    )
