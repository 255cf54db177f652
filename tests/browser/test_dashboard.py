"""The staff dashboard in a real browser: sign in, advance a job, answer a customer's question."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import Axe, Live, Screenshots
from tests.conftest import Keys
from tests.factories import create_account, create_job, create_workflow
from tracker.services.dashboard import SHOWN

pytestmark = pytest.mark.browser


@pytest.fixture
async def job(live: Live, auth: Keys) -> dict[str, Any]:
    await create_workflow(live.api, auth.admin)
    account = await create_account(live.api, auth.staff)
    return await create_job(live.api, auth.staff, account["id"], promised_on="2026-03-20")


async def sign_in(page: Page, live: Live, auth: Keys, axe: Axe | None = None) -> None:
    await page.goto(live.url("/dashboard?lang=en"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    if axe is not None:
        await axe(page)
    await page.get_by_label("API key").fill(auth.staff["Authorization"].removeprefix("Bearer "))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Board")


async def test_staff_sign_in_and_advance_a_job_on_the_dashboard(
    page: Page, live: Live, auth: Keys, job: dict[str, Any], axe: Axe, screenshots: Screenshots
) -> None:
    await sign_in(page, live, auth, axe)
    await expect(page.get_by_text("Signed in as test staff")).to_be_visible()
    intake = page.locator("section.column").filter(has=page.get_by_role("heading", name="Intake"))
    await expect(intake.locator(".count")).to_have_text("1")
    await axe(page)
    await screenshots(page, "dashboard-board")

    await page.get_by_role("link", name=job["reference"]).first.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(job["reference"])
    await axe(page)
    await screenshots(page, "dashboard-job")

    await page.get_by_role("button", name="Advance to the next stage").click()
    await expect(page.get_by_role("status")).to_contain_text("Done:")
    await expect(page.locator(".job-facts")).to_contain_text("Repair")
    after = (await live.api.get(f"/jobs/{job['id']}", headers=auth.staff)).json()
    assert (after["stage"]["key"], after["version"]) == ("repair", job["version"] + 1)
    history = (await live.api.get(f"/jobs/{job['id']}/history", headers=auth.staff)).json()["items"]
    assert (history[-1]["type"], history[-1]["actor"]) == ("advance", "staff:test staff")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    await page.goto(live.url(f"/dashboard/jobs/{job['id']}"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")


async def test_a_question_from_the_status_page_is_answered_on_the_dashboard(
    browser: Browser, page: Page, live: Live, auth: Keys, job: dict[str, Any], axe: Axe
) -> None:
    customer_context = await browser.new_context()
    customer = await customer_context.new_page()
    status_page = live.url(f"{urlsplit(job['status_page_url']).path}?lang=en")
    try:
        await customer.goto(status_page)
        await customer.get_by_label("Your question").fill("Can I collect it on Saturday?")
        await customer.get_by_role("button", name="Send my question").click()
        await expect(customer.get_by_role("status").filter(has_text="we have your question")).to_be_visible()

        await sign_in(page, live, auth)
        waiting = page.locator("section").filter(
            has=page.get_by_role("heading", name="Questions waiting for an answer")
        )
        await expect(waiting).to_contain_text("Can I collect it on Saturday?")
        await waiting.get_by_role("link", name=job["reference"]).click()
        await page.get_by_label("Your answer").fill("Yes, we are open until noon on Saturday.")
        await axe(page)
        await page.get_by_role("button", name="Send the answer").click()
        await expect(page.get_by_role("status")).to_contain_text("Done:")
        await expect(page.get_by_text("Answered by staff:test staff")).to_be_visible()

        await page.goto(live.url("/dashboard?lang=en"))
        await expect(waiting).not_to_contain_text("Can I collect it on Saturday?")

        await customer.goto(status_page)
        await expect(customer.get_by_text("Yes, we are open until noon on Saturday.")).to_be_visible()
    finally:
        await customer_context.close()


async def test_a_crowded_column_opens_in_full_from_the_board(
    page: Page, live: Live, auth: Keys, job: dict[str, Any], axe: Axe, screenshots: Screenshots
) -> None:
    for n in range(SHOWN):
        live.clock.advance(minutes=5)
        await create_job(live.api, auth.staff, job["account_id"], title=f"Queued {n}")
    await sign_in(page, live, auth)
    intake = page.locator("section.column").filter(has=page.get_by_role("heading", name="Intake"))
    await expect(intake.locator(".count")).to_have_text(str(SHOWN + 1))
    await intake.get_by_role("link", name="and 1 more").click()

    await expect(page.get_by_role("heading", level=1)).to_contain_text("Intake")
    await expect(page.locator("tbody tr")).to_have_count(SHOWN + 1)
    await axe(page)
    await screenshots(page, "dashboard-list")
    await page.get_by_role("link", name=job["reference"]).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(job["reference"])
