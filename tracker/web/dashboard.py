"""The staff dashboard: server-rendered pages behind a session that an API key of role staff or admin opens.

Every action goes through the same service functions as the API, one transaction each, so its events and
notifications are the API's. Forms carry the job version read (a stale form is refused, not applied) and a
CSRF token tied to the session; a POST from another origin is refused outright.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import format_date, format_time
from babel.numbers import format_currency, format_decimal, format_percent
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException, PermissionDeniedException
from litestar.params import FromPath
from litestar.status_codes import HTTP_303_SEE_OTHER

from notifications.i18n import LANGUAGES, localized_environments
from tracker.clock import Clock
from tracker.domain.errors import DomainError, InvalidInput, NotFound, PreconditionRequired
from tracker.domain.money import Money
from tracker.domain.workflow import TransitionKind
from tracker.services import dashboard as queries, jobs as job_queries
from tracker.services.bootstrap import Services
from tracker.services.keys import KeyRefused, Principal, Role, authenticate, key_principal
from tracker.services.versions import ExpectedVersion
from tracker.settings import Settings
from tracker.web import views
from tracker.web.auth import PUBLIC
from tracker.web.customer_pages import PAGE_HEADERS, Assets, ClientRateLimit, check_origin, negotiate
from tracker.web.dashboard_charts import Frame, error_chart, share_chart
from tracker.web.dashboard_sessions import COOKIE, SIGN_IN_RATE, Session, SessionSigner

PATH = "/dashboard"
STAFF_ROLES = frozenset({Role.STAFF, Role.ADMIN})
DASHBOARD_HEADERS = {**PAGE_HEADERS, "X-Robots-Tag": "noindex, nofollow"}
SHARE_CHART = Frame(width=640, height=240)
ERROR_ROW_HEIGHT = 22
ACTIONS = ("advance", "move", "hold", "resume", "note", "cost", "answer")

AnyRequest = Request[Any, Any, Any]


@dataclass(frozen=True)
class Dashboard:
    environments: Mapping[str, jinja2.Environment]
    signer: SessionSigner
    sign_in_limit: ClientRateLimit
    public_base_url: str


def build_dashboard(settings: Settings, assets: Assets) -> Dashboard:
    """The dashboard's pages in each language, over the shared layout and fingerprinted assets."""
    environments = localized_environments(settings.templates_dir)
    for language, environment in environments.items():
        environment.globals["asset"] = assets.url
        environment.filters.update(_filters(language))
    return Dashboard(
        environments=environments,
        signer=SessionSigner.from_secret_key(settings.secret_key, settings.session_max_age_s),
        sign_in_limit=ClientRateLimit(SIGN_IN_RATE),
        public_base_url=settings.public_base_url,
    )


def error_frame(rows: int) -> Frame:
    """The first/last estimate chart: a row per job, and room on the left for their references."""
    margins = Frame(width=640, height=0, left=110)
    return replace(margins, height=margins.top + margins.bottom + ERROR_ROW_HEIGHT * max(rows, 1))


def _filters(language: str) -> dict[str, Callable[..., str]]:
    def when(instant: datetime | None, time_zone: str) -> str:
        if instant is None:
            return ""
        local = instant.astimezone(ZoneInfo(time_zone))
        return (
            f"{format_date(local, 'medium', locale=language)} {format_time(local, 'short', locale=language)}"
        )

    def day(instant: datetime, time_zone: str) -> str:
        return format_date(instant.astimezone(ZoneInfo(time_zone)), "medium", locale=language)

    def money(value: Money) -> str:
        return format_currency(value.amount, value.currency, locale=language)

    def number(value: float, digits: int = 1) -> str:
        return format_decimal(round(float(value), digits), locale=language)

    def percent(value: float) -> str:
        return format_percent(value, locale=language)

    return {"when": when, "day": day, "money": money, "number": number, "percent": percent}


def choose_language(query: str | None, accept_language: str | None) -> str:
    """`?lang=` when it names one of ours, else the browser's preference, else English."""
    if query in LANGUAGES:
        return query
    return negotiate(accept_language) or LANGUAGES[0]


@dataclass(frozen=True)
class Visit:
    """One request to the dashboard, with what every page needs."""

    dashboard: Dashboard
    services: Services
    now: datetime
    language: str
    explicit_language: str | None
    session: Session | None
    principal: Principal | None

    def link(self, path: str, **query: str) -> str:
        """An address on the dashboard that keeps a language chosen with `?lang=`."""
        if self.explicit_language:
            query["lang"] = self.explicit_language
        return f"{path}?{urlencode(query)}" if query else path

    def render(
        self, template: str, status_code: int = 200, *, here: str = PATH, **context: Any
    ) -> Response[str]:
        """`here`: the page's own address, which its language links lead to (a form's answer is at
        another address that only takes POST)."""
        environment = self.dashboard.environments[self.language]
        csrf = self.dashboard.signer.csrf_token(self.session) if self.session else ""
        html = environment.get_template(f"dashboard/{template}").render(
            visit=self, principal=self.principal, csrf=csrf, here=here, **context
        )
        return Response(html, status_code=status_code, media_type="text/html", headers=DASHBOARD_HEADERS)

    def redirect(self, path: str, *, cookies: list[Cookie] | None = None, **query: str) -> Response[str]:
        return Response(
            "",
            status_code=HTTP_303_SEE_OTHER,
            headers={**DASHBOARD_HEADERS, "Location": self.link(path, **query)},
            cookies=cookies or [],
        )


async def _visit(request: AnyRequest, language_field: str | None = None) -> Visit:
    dashboard: Dashboard = request.app.state.dashboard
    clock: Clock = request.app.state.clock
    now = clock()
    explicit = language_field or request.query_params.get("lang")
    explicit = explicit if explicit in LANGUAGES else None
    session = dashboard.signer.read(request.cookies.get(COOKIE), now)
    principal = None
    if session is not None:
        principal = await key_principal(session.key_id, now=now)
        if principal is None or principal.role not in STAFF_ROLES:
            session = principal = None
    return Visit(
        dashboard=dashboard,
        services=request.app.state.services,
        now=now,
        language=choose_language(explicit, request.headers.get("accept-language")),
        explicit_language=explicit,
        session=session,
        principal=principal,
    )


def _same_origin(request: AnyRequest, dashboard: Dashboard) -> bool:
    """The pages' one rule for where a form may come from (`check_origin`)."""
    try:
        check_origin(request, dashboard.public_base_url)
    except PermissionDeniedException:
        return False
    return True


def _cookie(request: AnyRequest, value: str, max_age: int) -> Cookie:
    return Cookie(
        key=COOKIE,
        value=value,
        path=PATH,
        max_age=max_age,
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
    )


@get(PATH, opt={PUBLIC: True}, include_in_schema=False)
async def board_page(request: AnyRequest) -> Response[str]:
    visit = await _visit(request)
    if visit.principal is None:
        return visit.render("sign_in.html")
    board = await queries.board(
        visit.services.snapshots,
        now=visit.now,
        locale=visit.language,
        staff_time_zone=visit.services.settings.staff_time_zone,
    )
    return visit.render(
        "board.html",
        board=board,
        errors=error_chart(board.accuracy.outcomes, error_frame(len(board.accuracy.outcomes))),
        shares=share_chart(board.accuracy.months, SHARE_CHART),
    )


@post(f"{PATH}/sign-in", opt={PUBLIC: True}, include_in_schema=False)
async def sign_in(request: AnyRequest) -> Response[str]:
    form = await request.form()
    visit = await _visit(request, str(form.get("lang", "")) or None)
    if not _same_origin(request, visit.dashboard):
        return visit.render("sign_in.html", 403, problem="origin")
    client = request.client.host if request.client else "unknown"
    try:
        visit.dashboard.sign_in_limit.check(client, visit.now.timestamp())
    except HTTPException as refused:
        response = visit.render("sign_in.html", 429, problem="rate")
        response.headers.update(refused.headers or {})
        return response
    try:
        principal = await authenticate(str(form.get("key", "")).strip(), now=visit.now)
    except KeyRefused as refused:
        return visit.render("sign_in.html", 401, problem=refused.code)
    if principal.role not in STAFF_ROLES:
        return visit.render("sign_in.html", 403, problem="role")
    _, value = visit.dashboard.signer.issue(principal.key_id, visit.now)
    cookie = _cookie(request, value, int(visit.dashboard.signer.max_age.total_seconds()))
    return visit.redirect(PATH, cookies=[cookie])


async def _checked_form(request: AnyRequest) -> tuple[Visit, Mapping[str, str], Response[str] | None]:
    """The form of a signed-in POST, or the page that refuses it (signed out, foreign, forged)."""
    form = await request.form()
    fields = {name: str(value) for name, value in form.items()}
    visit = await _visit(request, fields.get("lang") or None)
    if visit.session is None:
        return visit, fields, visit.render("sign_in.html", 401, problem="signed_out")
    if not _same_origin(request, visit.dashboard) or not visit.dashboard.signer.csrf_matches(
        visit.session, fields.get("csrf", "")
    ):
        return visit, fields, visit.render("message.html", 403, kind="refused")
    return visit, fields, None


@post(f"{PATH}/sign-out", opt={PUBLIC: True}, include_in_schema=False)
async def sign_out(request: AnyRequest) -> Response[str]:
    visit, _, refusal = await _checked_form(request)
    if refusal is not None:
        return refusal
    return visit.redirect(PATH, cookies=[_cookie(request, "", 0)])


async def _job_page(
    visit: Visit, job_id: int, *, status_code: int = 200, error: DomainError | None = None, done: str = ""
) -> Response[str]:
    services = visit.services
    try:
        job = await job_queries.get_job(job_id)
    except NotFound:
        return visit.render("message.html", 404, kind="not_found")
    snapshot = await services.snapshots.of(job, locale=visit.language)
    version = await services.workflows.get(job.workflow_id)
    explanation = None
    if snapshot.status.is_open:
        explained = await services.estimates.explain(job_id, now=visit.now, locale=visit.language)
        explanation = views.explanation_out(explained, snapshot)
    history = await job_queries.job_history(job_id, after=None, limit=500)
    return visit.render(
        "job.html",
        status_code,
        here=f"{PATH}/jobs/{job_id}",
        job=snapshot,
        time_zone=services.settings.staff_time_zone or version.calendar.timezone.key,
        stages=[(stage.key, stage.label(visit.language)) for stage in version.definition.stages],
        explanation=explanation,
        history=list(reversed(history)),
        notes=await job_queries.job_notes(job_id),
        costs=await job_queries.job_costs(job_id),
        deliveries=await queries.job_deliveries(job_id),
        questions=await queries.job_questions(job_id),
        error=error,
        done=done if done in ACTIONS else "",
    )


@get(f"{PATH}/jobs", opt={PUBLIC: True}, include_in_schema=False)
async def jobs_page(request: AnyRequest) -> Response[str]:
    """A whole board column (`?stage=workflow:stage`) or flag list (`?flag=at_risk`), a page at a time."""
    visit = await _visit(request)
    if visit.principal is None:
        return visit.redirect(PATH)
    query, services = request.query_params, visit.services
    stage, flag, page = query.get("stage"), query.get("flag"), query.get("page", "1")
    if not page.isdigit() or int(page) < 1 or (stage is None) == (flag is None):
        return visit.render("message.html", 404, kind="not_found")
    number, language = int(page), visit.language
    if flag is not None:
        if flag not in queries.FLAG_NAMES:
            return visit.render("message.html", 404, kind="not_found")
        listing = await queries.flagged_jobs(services.snapshots, flag, page=number, locale=language)
        heading, workflow = None, None
    else:
        workflow_key, _, stage_key = (stage or "").partition(":")
        found = await queries.stage_heading(services.snapshots, workflow_key, stage_key, locale=language)
        if found is None:
            return visit.render("message.html", 404, kind="not_found")
        workflow, heading = found
        listing = await queries.stage_jobs(
            services.snapshots, workflow_key, stage_key, page=number, locale=language
        )
    if number > listing.pages:
        return visit.render("message.html", 404, kind="not_found")
    selected = {"flag": flag} if flag is not None else {"stage": stage or ""}
    return visit.render(
        "jobs.html",
        listing=listing,
        flag=flag,
        heading=heading,
        workflow=workflow,
        time_zone=await queries.board_time_zone(services.snapshots, services.settings.staff_time_zone),
        previous=visit.link(f"{PATH}/jobs", **selected, page=str(number - 1)) if number > 1 else None,
        following=(
            visit.link(f"{PATH}/jobs", **selected, page=str(number + 1)) if number < listing.pages else None
        ),
    )


@get(f"{PATH}/jobs/{{job_id:int}}", opt={PUBLIC: True}, include_in_schema=False)
async def job_page(request: AnyRequest, job_id: FromPath[int]) -> Response[str]:
    visit = await _visit(request)
    if visit.principal is None:
        return visit.redirect(PATH)
    return await _job_page(visit, job_id, done=request.query_params.get("done", ""))


@post(f"{PATH}/jobs/{{job_id:int}}/{{action:str}}", opt={PUBLIC: True}, include_in_schema=False)
async def job_action(request: AnyRequest, job_id: FromPath[int], action: FromPath[str]) -> Response[str]:
    visit, fields, refusal = await _checked_form(request)
    if refusal is not None:
        return refusal
    if action not in ACTIONS:
        return visit.render("message.html", 404, kind="not_found")
    assert visit.principal is not None
    try:
        await _act(visit, job_id, action, fields, visit.principal.actor)
    except NotFound:
        return visit.render("message.html", 404, kind="not_found")
    except DomainError as error:
        return await _job_page(visit, job_id, status_code=_status_of(error), error=error)
    return visit.redirect(f"{PATH}/jobs/{job_id}", done=action)


async def _act(visit: Visit, job_id: int, action: str, fields: Mapping[str, str], actor: str) -> None:
    jobs = visit.services.jobs
    expected = ExpectedVersion(_version(fields.get("version", "")))
    reason = fields.get("reason", "").strip() or None
    now = visit.now
    match action:
        case "advance" | "hold" | "resume" | "move":
            stage = fields.get("stage") or None
            await jobs.act(
                job_id, expected, TransitionKind(action), actor=actor, now=now, stage=stage, reason=reason
            )
        case "note":
            await jobs.add_note(
                job_id,
                expected,
                visibility=fields.get("visibility", ""),
                body=fields.get("body", ""),
                actor=actor,
                now=now,
            )
        case "cost":
            await jobs.add_cost(
                job_id,
                expected,
                kind=fields.get("kind", ""),
                amount=fields.get("amount", "").strip(),
                currency=None,
                note=fields.get("note", "").strip(),
                stage=None,
                actor=actor,
                now=now,
            )
        case "answer":
            await queries.answer_question(
                jobs,
                job_id,
                _question(fields.get("question", "")),
                expected,
                body=fields.get("body", ""),
                actor=actor,
                now=now,
            )


def _status_of(error: DomainError) -> int:
    if isinstance(error, InvalidInput):
        return 422
    if isinstance(error, PreconditionRequired):
        return 428
    return 409


def _version(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None


def _question(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit() and len(raw) < 10):
        raise InvalidInput("question", "name the question to answer")
    return int(raw)


DASHBOARD_HANDLERS = [board_page, sign_in, sign_out, jobs_page, job_page, job_action]
