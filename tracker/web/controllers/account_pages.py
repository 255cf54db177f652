"""A contact's account page (`/a/{token}`): the account's jobs and the contact's email preferences."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post, route
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath
from litestar.response import Redirect

from tracker.domain.emails import Preference
from tracker.domain.errors import NotFound
from tracker.domain.events import EmailCategory
from tracker.services import preferences
from tracker.services.status_pages import JobsShown
from tracker.web.auth import PUBLIC
from tracker.web.controllers.status_pages import Pages, Text, asked_language, form_fields, message
from tracker.web.customer_pages import (
    PAGE_METHODS,
    Formats,
    FormRefused,
    check_origin,
    choose_language,
    not_found,
)
from tracker.web.deps import Now

SEARCH_MAX_CHARS = 100


class AccountPageController(Controller):
    path = "/a"
    opt = {PUBLIC: True}
    include_in_schema = False

    @route("/{token:str}", http_method=PAGE_METHODS, operation_id="AccountPage")
    async def page(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        pages: Pages,
        now: Now,
        lang: Text = None,
        show: Text = None,
        q: Text = None,
        saved: Text = None,
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
                "saved": saved == "1",
                "preferences_token": pages.forms.issue("preferences", token, now),
            },
        )

    @post("/{token:str}/preferences", operation_id="SavePreferences", status_code=303)
    async def save_preferences(
        self, request: Request[Any, Any, Any], token: FromPath[str], pages: Pages, now: Now
    ) -> Response[Any]:
        """The contact's choice per category of email (each, in the daily digest, or none)."""
        pages.limit.check_request(request)
        form = await form_fields(request)
        language = choose_language(form.get("lang"), None, None)
        back = f"/a/{token}?lang={language}#preferences"
        try:
            check_origin(request, pages.public_base_url)
            pages.forms.check(form.get("form_token", ""), "preferences", token, now)
            contact = await preferences.contact_by_page_token(token)
            changes = {category: Preference(form[category.value]) for category in EmailCategory}
            await preferences.set_preferences(contact.id, changes, now=now)
        except NotFound:
            return not_found()
        except (FormRefused, PermissionDeniedException):
            return message(pages, language, "form", back, 400)
        except (KeyError, ValueError):
            return message(pages, language, "preferences", back, 422)
        return Redirect(f"/a/{token}?lang={language}&saved=1#preferences", status_code=303)
