"""GET /jobs/{id}/notifications: what was sent about a job, to whom, and how it went."""

from __future__ import annotations

import httpx

from tests.conftest import CURRENT_TIME, Keys
from tests.factories import act, create_account, create_job, create_workflow
from tests.outbox.conftest import RegisterEndpoint
from tracker.db.models import Contact, Delivery


async def test_staff_see_every_email_and_webhook_about_a_job_and_how_it_went(
    client: httpx.AsyncClient, auth: Keys, endpoint: RegisterEndpoint
) -> None:
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    hook = await endpoint()
    job = await create_job(client, auth.staff, account["id"])
    await act(client, auth.staff, job, "advance")
    contact = await Contact.get(account_id=account["id"])
    webhook = await Delivery.get(channel="webhook")
    await Delivery.filter(id=webhook.id).update(
        status="dead", attempts=10, last_error="HTTP 503", sent_at=None
    )
    email = await Delivery.get(channel="email", kind="advance")
    await Delivery.filter(id=email.id).update(status="sent", attempts=1, sent_at=CURRENT_TIME)

    response = await client.get(f"/jobs/{job['id']}/notifications", headers=auth.staff)

    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_after"] is None
    summary = [
        (i["channel"], i["kind"], i["contact_id"], i["endpoint_id"], i["address"], i["status"], i["attempts"])
        for i in page["items"]
    ]
    assert summary == [
        ("email", "created", contact.id, None, "marie@example.com", "queued", 0),
        ("email", "advance", contact.id, None, "marie@example.com", "sent", 1),
        ("webhook", "advance", None, hook.id, None, "dead", 10),
    ]
    assert [i["due_at"] for i in page["items"]] == ["2026-03-02T09:00:00Z", None, None]
    dead = page["items"][2]
    assert (dead["last_error"], dead["sent_at"]) == ("HTTP 503", None)
    assert page["items"][1]["sent_at"] == "2026-03-02T09:00:00Z"


async def test_the_list_pages_along_the_ids(client: httpx.AsyncClient, auth: Keys) -> None:
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    job = await create_job(client, auth.staff, account["id"])
    await act(client, auth.staff, job, "advance")
    url = f"/jobs/{job['id']}/notifications"

    first = (await client.get(url, params={"limit": 1}, headers=auth.staff)).json()
    rest = (await client.get(url, params={"after": first["next_after"]}, headers=auth.staff)).json()

    assert [i["kind"] for i in first["items"] + rest["items"]] == ["created", "advance"]
    assert rest["next_after"] is None


async def test_integrators_and_unknown_jobs_get_no_notifications(
    client: httpx.AsyncClient, auth: Keys
) -> None:
    await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    job = await create_job(client, auth.staff, account["id"])

    refused = await client.get(f"/jobs/{job['id']}/notifications", headers=auth.integrator)
    missing = await client.get("/jobs/999999/notifications", headers=auth.staff)

    assert refused.status_code == 403
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
