"""The job page: what it shows, and each action going through the same services as the API."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import CURRENT_TIME, Keys
from tests.dashboard.conftest import csrf_of, record_delivery
from tests.factories import act, create_job
from tracker.db.models import Note, Question


async def form_of(client: httpx.AsyncClient, job_id: int) -> dict[str, str]:
    page = await client.get(f"/dashboard/jobs/{job_id}")
    assert page.status_code == 200, page.text
    version = page.text.split('name="version" value="')[1].split('"')[0]
    return {"csrf": csrf_of(page.text), "version": version}


async def api_job(client: httpx.AsyncClient, auth: Keys, job_id: int) -> dict[str, Any]:
    return (await client.get(f"/jobs/{job_id}", headers=auth.staff)).json()


async def history_types(client: httpx.AsyncClient, auth: Keys, job_id: int) -> list[str]:
    events = (await client.get(f"/jobs/{job_id}/history", headers=auth.staff)).json()
    return [event["type"] for event in events["items"]]


async def post(client: httpx.AsyncClient, job_id: int, action: str, **fields: str) -> httpx.Response:
    return await client.post(
        f"/dashboard/jobs/{job_id}/{action}", data={**await form_of(client, job_id), **fields}
    )


async def test_the_job_page_shows_the_job_its_estimate_and_history(
    staff: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    job = await create_job(staff, auth.staff, shop["account"]["id"])
    await act(staff, auth.staff, job, "advance")
    page = await staff.get(f"/dashboard/jobs/{job['id']}?lang=fr")
    assert page.status_code == 200
    assert job["reference"] in page.text and "Brake discs" in page.text
    assert "repair (fr)" in page.text[page.text.index('id="history"') :]  # the stage's label, not its key
    assert job["status_page_url"] in page.text
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    # How the estimate is made, all in French: the basis, the estimator and why it was chosen.
    assert "D'après le plan (0 travaux passés)." in text.replace("&#39;", "'")
    assert "Estimateur : ce qu'il restait aux travaux passés au même point (par défaut : seulement 0 " in (
        text.replace("&#39;", "'")
    )
    english = (await staff.get(f"/dashboard/jobs/{job['id']}")).text
    assert "How the estimate is made" in english and "Created" in english


async def test_signed_out_the_job_page_sends_to_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/dashboard/jobs/1")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"


async def test_an_unknown_job_is_a_page_not_found(staff: httpx.AsyncClient) -> None:
    response = await staff.get("/dashboard/jobs/999")
    assert response.status_code == 404
    assert "There is nothing at this address." in response.text


async def test_advancing_from_the_dashboard_is_an_advance_as_through_the_api(
    staff: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    job = await create_job(staff, auth.staff, shop["account"]["id"])
    response = await post(staff, job["id"], "advance")
    assert response.status_code == 303
    assert response.headers["location"] == f"/dashboard/jobs/{job['id']}?done=advance"
    after = await api_job(staff, auth, job["id"])
    assert after["stage"]["key"] == "repair"
    assert after["version"] == job["version"] + 1
    assert "advance" in await history_types(staff, auth, job["id"])
    events = (await staff.get(f"/jobs/{job['id']}/history", headers=auth.staff)).json()["items"]
    assert events[-1]["actor"] == "staff:test staff"
    done = await staff.get(response.headers["location"])
    assert "Done:" in done.text


async def test_move_hold_and_resume(staff: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]) -> None:
    job = await create_job(staff, auth.staff, shop["account"]["id"])
    assert (await post(staff, job["id"], "move", stage="check", reason="skip repair")).status_code == 303
    assert (await api_job(staff, auth, job["id"]))["stage"]["key"] == "check"
    assert (await post(staff, job["id"], "hold", reason="waiting for parts")).status_code == 303
    assert (await api_job(staff, auth, job["id"]))["status"] == "on_hold"
    page = (await staff.get(f"/dashboard/jobs/{job['id']}")).text
    assert "Resume the work" in page and "Advance to the next stage" not in page
    history = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page[page.index('id="history"') :]))
    assert "Put on hold → Check: waiting for parts" in history  # the reason right after what it explains
    assert (await post(staff, job["id"], "resume", reason="parts came")).status_code == 303
    assert (await api_job(staff, auth, job["id"]))["status"] == "open"
    assert (await history_types(staff, auth, job["id"]))[-3:] == ["move", "hold", "resume"]


async def test_notes_and_costs(staff: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]) -> None:
    job = await create_job(staff, auth.staff, shop["account"]["id"])
    note = await post(staff, job["id"], "note", body="<script>alert(1)</script>", visibility="internal")
    assert note.status_code == 303
    cost = await post(staff, job["id"], "cost", amount="45.50", kind="material", note="pads")
    assert cost.status_code == 303
    notes = (await staff.get(f"/jobs/{job['id']}/notes", headers=auth.staff)).json()
    assert [(n["visibility"], n["body"]) for n in notes] == [("internal", "<script>alert(1)</script>")]
    costs = (await staff.get(f"/jobs/{job['id']}/costs", headers=auth.staff)).json()
    assert [(c["kind"], c["amount"]["amount"]) for c in costs] == [("material", "45.50")]
    page = (await staff.get(f"/dashboard/jobs/{job['id']}")).text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_bad_input_is_shown_in_the_page_and_changes_nothing(
    staff: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    job = await create_job(staff, auth.staff, shop["account"]["id"])
    response = await post(staff, job["id"], "cost", amount="lots", kind="labour")
    assert response.status_code == 422
    assert "Nothing was saved: a field needs another value." in response.text
    assert "amount" in response.text
    job_path = f"/dashboard/jobs/{job['id']}"
    assert f'href="{job_path}?lang=fr"' in response.text  # not the POST-only address
    assert (await api_job(staff, auth, job["id"]))["version"] == job["version"]


async def test_a_stale_form_is_refused_in_the_page(
    staff: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    job = await create_job(staff, auth.staff, shop["account"]["id"])
    stale = await form_of(staff, job["id"])
    assert (await post(staff, job["id"], "advance")).status_code == 303
    response = await staff.post(f"/dashboard/jobs/{job['id']}/advance", data=stale)
    assert response.status_code == 409
    assert "Someone changed this job while you were looking at it." in response.text
    assert (await api_job(staff, auth, job["id"]))["stage"]["key"] == "repair"


async def test_an_action_without_the_csrf_token_is_refused_and_changes_nothing(
    staff: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    job = await create_job(staff, auth.staff, shop["account"]["id"])
    response = await staff.post(
        f"/dashboard/jobs/{job['id']}/advance", data={"version": str(job["version"]), "csrf": "x"}
    )
    assert response.status_code == 403
    assert (await api_job(staff, auth, job["id"]))["version"] == job["version"]


async def test_an_action_without_a_session_changes_nothing(
    client: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    job = await create_job(client, auth.staff, shop["account"]["id"])
    response = await client.post(f"/dashboard/jobs/{job['id']}/advance", data={"version": "1"})
    assert response.status_code == 401
    assert (await api_job(client, auth, job["id"]))["version"] == job["version"]


async def test_answering_a_question_posts_a_public_note_and_marks_it_answered(
    staff: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    job = await create_job(staff, auth.staff, shop["account"]["id"])
    question = await Question.create(job_id=job["id"], body="When can I pick it up?", asked_at=CURRENT_TIME)
    page = (await staff.get(f"/dashboard/jobs/{job['id']}")).text
    assert "When can I pick it up?" in page
    response = await post(staff, job["id"], "answer", question=str(question.id), body="Friday after 2 pm")
    assert response.status_code == 303, response.text
    await question.refresh_from_db()
    note = await Note.get(id=question.answer_note_id)
    assert (note.visibility, note.body) == ("public", "Friday after 2 pm")
    assert question.answered_by == "staff:test staff"
    assert question.answered_at == CURRENT_TIME
    assert (await history_types(staff, auth, job["id"]))[-1] == "note_added"
    again = await post(staff, job["id"], "answer", question=str(question.id), body="twice")
    assert again.status_code == 409
    assert await Note.filter(job_id=job["id"]).count() == 1
    assert "Friday after 2 pm" in (await staff.get(f"/dashboard/jobs/{job['id']}")).text


async def test_an_answer_that_fails_leaves_the_question_waiting(
    staff: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    job = await create_job(staff, auth.staff, shop["account"]["id"])
    question = await Question.create(job_id=job["id"], body="Any news?", asked_at=CURRENT_TIME)
    response = await post(staff, job["id"], "answer", question=str(question.id), body="   ")
    assert response.status_code == 422
    await question.refresh_from_db()
    assert question.answered_at is None
    assert await Note.filter(job_id=job["id"]).count() == 0


async def test_the_job_page_lists_the_notifications_of_the_job(
    staff: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    job = await create_job(staff, auth.staff, shop["account"]["id"])
    await record_delivery(
        job["id"],
        channel="email",
        kind="stage_changed",
        target="marie@example.com",
        status="sent",
        attempts=1,
    )
    await record_delivery(
        job["id"], channel="email", kind="hold", target="marie@example.com", status="dead", attempts=8
    )
    page = (await staff.get(f"/dashboard/jobs/{job['id']}")).text
    assert "stage_changed" in page and "marie@example.com" in page
    in_french = re.sub(
        r"\s+", " ", re.sub(r"<[^>]+>", " ", (await staff.get(f"/dashboard/jobs/{job['id']}?lang=fr")).text)
    )
    assert "e-mail Mis en attente marie@example.com abandonné 8" in in_french  # names, not codes
    assert "e-mail stage_changed marie@example.com envoyé 1" in in_french  # a kind it has no name for
