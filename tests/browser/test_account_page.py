"""The account page in a real browser: an institution's contact sees the account's jobs and filters them."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.api.test_account_pages import page_token
from tests.browser.conftest import Axe, Live, Screenshots
from tests.conftest import Keys
from tests.factories import create_fleet_account, create_job, create_workflow
from tracker.db.models import Contact

pytestmark = pytest.mark.browser


async def test_the_account_page_lists_and_filters_the_accounts_jobs(
    page: Page, live: Live, auth: Keys, axe: Axe, screenshots: Screenshots
) -> None:
    await create_workflow(live.api, auth.admin)
    account = await create_fleet_account(live.api, auth.staff)
    for title in ("Van 12 brakes", "Car 7 tyres", "Truck 3 service"):
        await create_job(live.api, auth.staff, account["id"], title=title)
    token = await page_token(account["contacts"][0]["id"])

    await page.goto(live.url(f"/a/{token}?lang=en"))

    jobs = page.locator(".jobs > li")
    await expect(jobs).to_have_count(3)
    await expect(page.get_by_role("heading", level=2, name="3 jobs")).to_be_visible()
    await axe(page)
    await screenshots(page, "account")

    await page.get_by_label("Search by reference or title").fill("van")
    await page.get_by_label("Search by reference or title").press("Enter")
    await expect(jobs).to_have_count(1)
    await expect(jobs.first).to_contain_text("Van 12 brakes")

    await jobs.first.get_by_role("link").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Van 12 brakes")


async def test_the_contact_moves_progress_emails_to_the_daily_digest(
    page: Page, live: Live, auth: Keys, axe: Axe
) -> None:
    account = await create_fleet_account(live.api, auth.staff)
    contact_id = account["contacts"][0]["id"]
    token = await page_token(contact_id)
    await page.goto(live.url(f"/a/{token}?lang=en"))

    progress = page.get_by_role("group", name="When a job moves to its next stage")
    await progress.get_by_label("In one daily digest").check()
    await page.get_by_role("button", name="Save my choices").click()

    await expect(page.get_by_role("status")).to_have_text("Your choices are saved.")
    await expect(progress.get_by_label("In one daily digest")).to_be_checked()
    await axe(page)
    assert (await Contact.get(id=contact_id)).progress_emails == "digest"
