"""Browser tests: the real app served by uvicorn on loopback, driven by Debian's headless Chromium.

- `live` serves `create_app` over a temporary SQLite file in the test's own event loop (it shares the test's
  database connection, as the contract test does); `live.api` is an httpx client on it for set-up through
  the API.
- `page` is a fresh Playwright page in Chromium (`/usr/bin/chromium`, installed by `make test`: Playwright
  cannot download its own browser here). A console error (a CSP refusal, a script error, a failed asset)
  fails the test.
- `axe(page)` injects axe-core (from `tests/browser/node_modules`, installed by `make test`) and fails on any
  serious or critical violation.
- `screenshots(page, name)` saves the page at 375 px and 1280 px under `test-artifacts/screenshots/`
  (`TRACKER_TEST_ARTIFACTS` moves the folder).

In CI (`CI=true`) a missing browser or axe-core fails the run; elsewhere the browser tests are skipped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from tests.conftest import FakeClock, _in_ci
from tests.serving import served
from tracker.app import create_app
from tracker.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
HERE = Path(__file__).resolve().parent
AXE_SCRIPT = HERE / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(os.environ.get("TRACKER_TEST_ARTIFACTS", HERE.parents[1] / "test-artifacts"))
WIDTHS = (375, 1280)
"""Mobile first: every page must be right on a small phone and on a laptop."""
BLOCKING_IMPACTS = {"serious", "critical"}
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def _missing(what: str) -> None:
    if _in_ci():
        pytest.fail(f"{what} is missing: CI must run the browser tests (make test installs it)")
    pytest.skip(f"{what} is missing: run `make browser`")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """One SQLite file per test: the served app and the test share it."""
    return f"sqlite://{tmp_path / 'tracker.sqlite3'}"


@pytest.fixture
def settings(db: str) -> Settings:
    return Settings(database_url=db, public_base_url="http://127.0.0.1", status_poll_s=1)


@dataclass
class Live:
    """The app as a browser reaches it."""

    base_url: str
    api: httpx.AsyncClient
    """An API client on the served app (add the key headers of `auth`)."""
    clock: FakeClock

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


@pytest.fixture
async def live(settings: Settings, clock: FakeClock) -> AsyncIterator[Live]:
    async with (
        served(create_app(settings, clock=clock)) as base_url,
        httpx.AsyncClient(base_url=base_url) as api,
    ):
        yield Live(base_url, api, clock)


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.is_file():
        _missing(f"Chromium ({CHROMIUM})")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class ConsoleErrors:
    messages: list[str] = field(default_factory=list)

    def record(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"{message.text} ({message.location.get('url', '')})")


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A page at 1280 px wide in a fresh context (no cookies, no cache), failing on any console error."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    opened = await context.new_page()
    errors = ConsoleErrors()
    opened.on("console", errors.record)
    opened.on("pageerror", lambda error: errors.messages.append(f"uncaught: {error}"))
    try:
        yield opened
    finally:
        await context.close()
    assert not errors.messages, "the browser console reported errors:\n" + "\n".join(errors.messages)


Axe = Callable[[Page], Awaitable[list[dict[str, Any]]]]


@pytest.fixture
def axe() -> Axe:
    """Run axe-core (WCAG 2.1 A and AA rules) on the page as it is; fail on serious or critical findings."""
    if not AXE_SCRIPT.is_file():
        _missing(f"axe-core ({AXE_SCRIPT})")
    source = AXE_SCRIPT.read_text(encoding="utf-8")

    async def check(page: Page) -> list[dict[str, Any]]:
        # Evaluated through the DevTools protocol, which the page's CSP (no inline script) does not govern.
        await page.evaluate(source)
        result = await page.evaluate(f"axe.run(document, {{runOnly: {{type: 'tag', values: {AXE_TAGS}}}}})")
        violations: list[dict[str, Any]] = result["violations"]
        blocking = [v for v in violations if v.get("impact") in BLOCKING_IMPACTS]
        assert not blocking, "\n".join(
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}" for v in blocking
        )
        return violations

    return check


Screenshots = Callable[[Page, str], Awaitable[list[Path]]]
SPILLED = """() => [...document.querySelectorAll('body *')]
    .filter(e => getComputedStyle(e).overflowX === 'visible' && e.clientWidth > 0
        && e.scrollWidth > e.clientWidth + 1)
    .map(e => `${e.tagName.toLowerCase()}.${e.classList} by ${e.scrollWidth - e.clientWidth} px`)"""
"""Elements whose content runs past their own box sideways (into the next one, or off the page), where
nothing lets it scroll: the page need not scroll sideways for a label to be cut or overlap."""


@pytest.fixture
def screenshots() -> Screenshots:
    """Save the page at each width in `WIDTHS` (full page); returns the files written."""

    async def take(page: Page, name: str) -> list[Path]:
        folder = ARTIFACTS / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        original = page.viewport_size or {"width": 1280, "height": 900}
        written = []
        for width in WIDTHS:
            await page.set_viewport_size({"width": width, "height": original["height"]})
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} scrolls sideways by {overflow} px at {width} px wide"
            spilled = await page.evaluate(SPILLED)
            assert not spilled, f"{name} at {width} px: content wider than its box in {spilled}"
            path = folder / f"{name}-{width}.png"
            await page.screenshot(path=str(path), full_page=True)
            written.append(path)
        await page.set_viewport_size(original)
        return written

    return take
