"""A contact's account page (`/a/{token}`): the account's jobs and the contact's email preferences."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.params import FromPath, QueryParameter

from tracker.domain.errors import NotFound
from tracker.services.status_pages import JobsShown
from tracker.web.auth import PUBLIC
from tracker.web.controllers.status_pages import Pages, asked_language
from tracker.web.customer_pages import Formats, not_found
from tracker.web.deps import Now

SEARCH_MAX_CHARS = 100


class AccountPageController(Controller):
    path = "/a"
    opt = {PUBLIC: True}
    include_in_schema = False

    @get("/{token:str}", operation_id="AccountPage")
    async def page(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        pages: Pages,
        now: Now,
        lang: Annotated[str | None, QueryParameter()] = None,
        show: Annotated[str | None, QueryParameter()] = None,
        q: Annotated[str | None, QueryParameter()] = None,
    ) -> Response[str]:
        pages.limit.check_request(request)
        shown = JobsShown(show) if show in {kind.value for kind in JobsShown} else JobsShown.ALL
        search = (q or "")[:SEARCH_MAX_CHARS]
        try:
            view = await pages.accounts.view(
                token, locale=asked_language(request, lang), shown=shown, search=search, now=now
            )
        except NotFound:
            return not_found()
        language = view.audience.locale
        return pages.renderer.render(
            "account.html",
            language,
            {
                "view": view,
                "account_name": view.account_name,
                "stage_labels": view.stage_labels,
                "fmt": Formats(language, view.audience.time_zone),
                "here": f"/a/{token}",
                "shown": shown.value,
                "search": search,
            },
        )
