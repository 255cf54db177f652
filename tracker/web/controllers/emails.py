"""Email controls: one-click unsubscribe (customers), suppressions (staff), the dev mailbox (developers)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import jinja2
from litestar import Controller, Request, Response, delete, get, post, route
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT
from litestar.types import Method
from litestar.types.internal_types import PathParameterDefinition

from notifications.i18n import language_of, localized_environments
from tracker.domain.events import EmailCategory
from tracker.services import mail, preferences
from tracker.services.keys import Role
from tracker.services.pages import Sort
from tracker.settings import Settings
from tracker.web import schemas as s
from tracker.web.auth import PUBLIC, requires
from tracker.web.customer_pages import PAGE_METHODS
from tracker.web.deps import Now, PageCursor, PageLimit

HTML = "text/html"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "script-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}
"""Pages carrying a token: never cached, never leaking the token in a Referer, never running a script."""
Token = Annotated[str, FromPath]
Category = Annotated[
    EmailCategory | None,
    QueryParameter(description="The category to turn off; every category when absent"),
]


@lru_cache(maxsize=4)
def _environments(templates_dir: Path) -> dict[str, jinja2.Environment]:
    return dict(localized_environments(templates_dir))


def _page(settings: Settings, language: str, name: str, context: dict[str, Any]) -> Response[str]:
    html = _environments(settings.templates_dir)[language].get_template(name).render(context)
    return Response(html, media_type=HTML, status_code=HTTP_200_OK, headers=PAGE_HEADERS)


async def _unsubscribe_page(
    request: Request[Any, Any, Any], token: str, category: EmailCategory | None, *, done: bool
) -> Response[str]:
    settings: Settings = request.app.state.settings
    contact = await preferences.contact_by_page_token(token)
    base = settings.public_base_url.rstrip("/")
    query = "" if category is None else f"?c={category.value}"
    context = {
        "done": done,
        "category": None if category is None else category.value,
        "email": contact.email,
        "action": f"{base}/unsubscribe/{token}{query}",
        "preferences_url": f"{base}/a/{token}",
    }
    return _page(settings, language_of(contact.locale), "unsubscribe.html", context)


def _page_operation(
    handler: HTTPRouteHandler, method: Method, path: list[str | PathParameterDefinition]
) -> str:
    """The page's operation ids: `UnsubscribePage` for GET, `UnsubscribePageHead` for its headers alone."""
    return "UnsubscribePageHead" if method == "HEAD" else "UnsubscribePage"


UNSUBSCRIBE_PAGE = {
    200: ResponseSpec(str, media_type=HTML, description="A small page in the contact's language"),
}


class UnsubscribeController(Controller):
    """RFC 8058 one-click unsubscribe: the token in the link is the only credential."""

    path = "/unsubscribe"
    tags = ["Email"]
    opt = {PUBLIC: True}

    @route(
        "/{token:str}",
        http_method=PAGE_METHODS,
        operation_id=_page_operation,
        media_type=HTML,
        responses=UNSUBSCRIBE_PAGE,
    )
    async def page(self, request: Request[Any, Any, Any], token: Token, c: Category = None) -> Response[str]:
        """A page with a button; opening it changes nothing (mail scanners open links, and link checkers
        ask for its headers alone with HEAD)."""
        return await _unsubscribe_page(request, token, c, done=False)

    @post(
        "/{token:str}",
        operation_id="Unsubscribe",
        media_type=HTML,
        status_code=HTTP_200_OK,
        responses=UNSUBSCRIBE_PAGE,
    )
    async def unsubscribe(
        self, request: Request[Any, Any, Any], token: Token, now: Now, c: Category = None
    ) -> Response[str]:
        """Turn the category `c` (or every category) off; the body `List-Unsubscribe=One-Click` is what
        mail clients send, and any other body is accepted as well. Answers 200, never a redirect."""
        await preferences.unsubscribe(token, c, now=now)
        return await _unsubscribe_page(request, token, c, done=True)


class SuppressionController(Controller):
    """Addresses we no longer email (they bounced for good); staff clear one once it works again."""

    path = "/suppressions"
    tags = ["Email"]
    guards = [requires(Role.STAFF)]

    @get(operation_id="ListSuppressions")
    async def list_suppressions(
        self,
        sort: Annotated[Literal["created", "-created"], QueryParameter()] = "-created",
        limit: PageLimit = 50,
        cursor: PageCursor = None,
    ) -> s.SuppressionList:
        page = await preferences.list_suppressions(sort=Sort(sort), limit=limit, cursor=cursor)
        return s.SuppressionList(
            items=[
                s.SuppressionOut(address=x.address, reason=x.reason, created_at=x.created_at)
                for x in page.items
            ],
            next_cursor=page.next_cursor,
        )

    @delete("/{address:str}", operation_id="ClearSuppression", status_code=HTTP_204_NO_CONTENT)
    async def clear_suppression(self, address: FromPath[str]) -> None:
        """Email the address again."""
        await preferences.clear_suppression(address)


def dev_mailbox_controller(settings: Settings) -> type[Controller]:
    """The dev mailbox: open without a key in dev mode (see `dev_mailbox_is_open`), else for admins."""
    is_open = mail.dev_mailbox_is_open(settings)

    class DevMailboxController(Controller):
        path = "/dev/mailbox"
        tags = ["Email"]
        opt = {PUBLIC: is_open}
        guards = [] if is_open else [requires(Role.ADMIN)]

        @get(operation_id="DevMailbox", media_type=HTML, responses={200: ResponseSpec(str, media_type=HTML)})
        async def mailbox(self) -> Response[str]:
            """The emails kept instead of sent (no SMTP server configured), newest first."""
            context = {
                "mails": await mail.recent_dev_mails(),
                "base": "",
                "smtp_configured": not mail.uses_dev_mailbox(settings),
            }
            return _page(settings, "en", "dev/mailbox.html", context)

        @get(
            "/{mail_id:int}",
            operation_id="DevMailboxMessage",
            media_type=HTML,
            responses={200: ResponseSpec(str, media_type=HTML)},
        )
        async def message(self, mail_id: FromPath[int]) -> Response[str]:
            """One kept email: headers, the HTML part in a sandboxed frame (no script runs), the text."""
            kept = await mail.kept_mail(mail_id)
            context = {
                "base": "",
                "subject": kept.subject,
                "headers": kept.headers,
                "html": kept.html,
                "text": kept.text,
            }
            return _page(settings, "en", "dev/message.html", context)

    return DevMailboxController
