"""The status page in a real browser: what the customer reads, live updates, language, calendar, forms."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Axe, Live, Screenshots
from tests.conftest import Keys
from tests.factories import act, create_account, create_job, create_workflow, stage, workflow_body
from tracker.db.models import Question

pytestmark = pytest.mark.browser


@pytest.fixture
async def job(live: Live, auth: Keys) -> dict[str, Any]:
    await create_workflow(live.api, auth.admin)
    account = await create_account(live.api, auth.staff)
    return await create_job(live.api, auth.staff, account["id"], promised_on="2026-03-20")


def status_path(job: dict[str, Any]) -> str:
    return urlsplit(job["status_page_url"]).path


async def test_customer_reads_stage_eta_and_cost_and_sees_changes_without_reload(
    page: Page, live: Live, auth: Keys, job: dict[str, Any], axe: Axe, screenshots: Screenshots
) -> None:
    await page.goto(live.url(f"{status_path(job)}?lang=en"))

    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Brake discs")
    await expect(page.locator("[aria-current=step]")).to_contain_text("Intake")
    await expect(page.locator("#eta")).to_have_text(
        re.compile(r"^(Between \w{3} \d+ \w+ and|On) \w{3} \d+ \w+")
    )
    await expect(page.locator("#quote")).to_have_text("€640.00")
    await axe(page)
    await screenshots(page, "status-open")

    await page.evaluate("window.__sameDocument = true")
    await act(live.api, auth.staff, job, "advance")

    await expect(page.locator("[aria-current=step]")).to_contain_text("Repair", timeout=10_000)
    assert await page.evaluate("window.__sameDocument") is True  # updated in place, not reloaded
    await expect(page.locator("#live-note")).not_to_be_empty()


async def test_customer_switches_language_and_downloads_the_calendar(
    page: Page, live: Live, job: dict[str, Any]
) -> None:
    await page.goto(live.url(status_path(job)))
    await expect(page.locator("html")).to_have_attribute("lang", "en")  # the browser's Accept-Language

    await page.get_by_role("link", name="Nederlands").click()
    await expect(page.locator("html")).to_have_attribute("lang", "nl")
    await expect(page.locator("[aria-current=step]")).to_contain_text("intake (nl)")

    async with page.expect_download() as waiting:
        await page.locator("a[download]").click()
    download = await waiting.value
    content = (await download.path()).read_text(encoding="utf-8")
    assert download.suggested_filename == f"{job['reference']}.ics"
    assert "BEGIN:VEVENT" in content and f"job-{job['id']}-completion@" in content


async def test_customer_asks_a_question_without_javascript(
    browser: Any, live: Live, job: dict[str, Any], axe: Axe
) -> None:
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    try:
        await page.goto(live.url(f"{status_path(job)}?lang=en"))
        await page.get_by_label("Your question").fill("Can I collect it on Saturday?")
        await page.get_by_role("button", name="Send my question").click()

        await expect(page.get_by_role("status").filter(has_text="we have your question")).to_be_visible()
    finally:
        await context.close()
    assert [question.body for question in await Question.filter(job_id=job["id"])] == [
        "Can I collect it on Saturday?"
    ]


async def test_customer_answers_the_survey_once_after_completion(
    page: Page, live: Live, auth: Keys, job: dict[str, Any], axe: Axe, screenshots: Screenshots
) -> None:
    completed = await act(live.api, auth.staff, job, "complete", force=True, reason="collected early")
    assert completed.status_code == 200, completed.text
    await page.goto(live.url(f"{status_path(job)}?lang=en"))
    await expect(page.get_by_role("heading", name="Completed")).to_be_visible()
    await axe(page)
    await screenshots(page, "status-completed")

    await page.get_by_label("4").check()
    await page.get_by_label("Comment (optional)").fill("Quick and friendly")
    await page.get_by_role("button", name="Send my rating").click()

    await expect(page.get_by_text("you gave us 4 out of 5")).to_be_visible()
    await expect(page.get_by_role("button", name="Send my rating")).to_have_count(0)


async def test_long_stage_names_stay_within_their_steps(
    page: Page, live: Live, auth: Keys, screenshots: Screenshots
) -> None:
    names = (
        "Voertuig ontvangen",
        "Diagnose",
        "Wachten op onderdelen",
        "Reparatie",
        "Kwaliteitscontrole",
        "Klaar om op te halen",
        "Opgehaald",
    )
    body = workflow_body()
    body["stages"] = [
        stage(f"step-{i}", labels={"en": f"Step {i}", "nl": name}) for i, name in enumerate(names, 1)
    ]
    assert (await live.api.post("/workflows", json=body, headers=auth.admin)).status_code == 201
    account = await create_account(live.api, auth.staff)
    job = await create_job(live.api, auth.staff, account["id"])

    await page.goto(live.url(f"{status_path(job)}?lang=nl"))
    await expect(page.locator("[aria-current=step]")).to_contain_text("Voertuig ontvangen")

    await screenshots(page, "status-long-stages")  # fails on any label running out of its step
