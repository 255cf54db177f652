"""The board: open jobs per stage, the flagged lists (read from the job snapshot), questions, delivery
failures, satisfaction and forecast accuracy; in the language asked for."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import CURRENT_TIME, FakeClock, Keys
from tests.dashboard.conftest import record_delivery
from tests.factories import act, create_job
from tracker.db.models import Question, Suppression, SurveyResponse
from tracker.services import dashboard
from tracker.services.dashboard import SHOWN


def section(html: str, heading_id: str) -> str:
    """The HTML of the board's section headed by `heading_id`."""
    start = html.index(f'id="{heading_id}"')
    return html[start : html.index("</section>", start)]


def wip(html: str, label: str) -> int:
    found = re.search(rf">{label} <span class=\"count\"[^>]*>(\d+)</span>", html)
    assert found is not None, f"no column {label}"
    return int(found.group(1))


async def test_open_jobs_are_counted_per_stage_and_closed_ones_are_not(
    staff: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    account = shop["account"]["id"]
    first = await create_job(staff, auth.staff, account, title="Clutch")
    await create_job(staff, auth.staff, account, title="Tyres")
    advanced = await create_job(staff, auth.staff, account, title="Brakes")
    assert (await act(staff, auth.staff, advanced, "advance")).status_code == 200
    cancelled = await act(staff, auth.staff, first, "cancel", reason="customer withdrew")
    assert cancelled.status_code == 200
    board = (await staff.get("/dashboard")).text
    assert (wip(board, "Intake"), wip(board, "Repair"), wip(board, "Check"), wip(board, "Ready")) == (
        1,
        1,
        0,
        0,
    )
    assert "Tyres" in board and "Brakes" in board and "Clutch" not in board


async def test_flagged_lists_show_exactly_the_jobs_the_snapshot_flags(
    staff: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    account = shop["account"]["id"]
    late = await create_job(staff, auth.staff, account, title="Late", promised_on="2026-03-02")
    relaxed = await create_job(staff, auth.staff, account, title="Relaxed", promised_on="2026-12-30")
    costly = await create_job(staff, auth.staff, account, title="Costly")
    cost = {"kind": "material", "amount": "2000.00", "currency": "EUR"}
    added = await staff.post(
        f"/jobs/{costly['id']}/costs", json={"version": costly["version"], **cost}, headers=auth.staff
    )
    assert added.status_code == 201, added.text
    board = (await staff.get("/dashboard")).text
    for heading, flag in [
        ("at-risk", "at_risk"),
        ("over-budget", "over_budget"),
        ("stuck", "stuck"),
        ("overdue", "overdue"),
    ]:
        listed = section(board, heading)
        for job in (late, relaxed, costly):
            snapshot = (await staff.get(f"/jobs/{job['id']}", headers=auth.staff)).json()
            assert (job["reference"] in listed) is snapshot["estimate"][flag], (heading, job["title"])
    assert late["reference"] in section(board, "at-risk")
    assert costly["reference"] in section(board, "over-budget")


async def test_waiting_questions_failures_suppressions_and_scores_are_on_the_board(
    staff: httpx.AsyncClient, auth: Keys, shop: dict[str, Any]
) -> None:
    job = await create_job(staff, auth.staff, shop["account"]["id"])
    await Question.create(job_id=job["id"], body="Is the car ready?", asked_at=CURRENT_TIME)
    await Question.create(
        job_id=job["id"],
        body="Answered one",
        asked_at=CURRENT_TIME,
        answered_at=CURRENT_TIME,
        answered_by="x",
    )
    await record_delivery(
        job["id"],
        channel="webhook",
        kind="job.advanced",
        target="https://hooks.example/tracker",
        status="dead",
        attempts=8,
        last_error="HTTP 500",
    )
    await Suppression.create(address="gone@example.com", reason="hard bounce", created_at=CURRENT_TIME)
    for score, comment in [(5, "Quick and friendly"), (3, "")]:
        completed = await create_job(staff, auth.staff, shop["account"]["id"])
        await SurveyResponse.create(
            job_id=completed["id"], score=score, comment=comment, answered_at=CURRENT_TIME
        )
    board = (await staff.get("/dashboard")).text
    questions = section(board, "questions")
    assert "Is the car ready?" in questions and "Answered one" not in questions
    assert "https://hooks.example/tracker" in section(board, "failures") and "HTTP 500" in board
    assert "gone@example.com" in section(board, "bounced")
    assert "Average 4 out of 5 from 2 answers." in board
    assert "Quick and friendly" in board


async def test_forecast_accuracy_charts_draw_completed_jobs_first_and_last_estimates(
    staff: httpx.AsyncClient, auth: Keys, clock: FakeClock, shop: dict[str, Any]
) -> None:
    empty = (await staff.get("/dashboard")).text
    assert "No completed job with an estimate in the last twelve months." in empty
    job = await create_job(staff, auth.staff, shop["account"]["id"])
    for _ in range(3):
        clock.advance(hours=1)
        job = (await act(staff, auth.staff, job, "advance")).json()
    clock.advance(hours=1)
    done = await act(staff, auth.staff, job, "complete")
    assert done.status_code == 200, done.text
    response = await staff.get("/dashboard")
    assert response.status_code == 200, response.text
    board = response.text
    accuracy = board[board.index('id="accuracy"') :]
    assert accuracy.count("<svg") == 2
    assert f">{job['reference']}</text>" in accuracy
    assert '<circle class="first"' in accuracy and '<rect class="last"' in accuracy
    assert '<rect class="bar"' in accuracy
    assert "2026-03" in accuracy


async def test_a_crowded_stage_shows_its_count_and_the_jobs_longest_in_it(
    staff: httpx.AsyncClient, auth: Keys, clock: FakeClock, shop: dict[str, Any]
) -> None:
    account = shop["account"]["id"]
    jobs = []
    for n in range(SHOWN + 3):
        jobs.append(
            await create_job(staff, auth.staff, account, title=f"Queued {n}", promised_on="2026-03-02")
        )
        clock.advance(minutes=5)
    board = (await staff.get("/dashboard")).text
    assert wip(board, "Intake") == SHOWN + 3
    for listed in (section(board, "column-1"), section(board, "at-risk")):
        shown = [job["reference"] for job in jobs if f">{job['reference']}</a>" in listed]
        assert shown == [job["reference"] for job in jobs[:SHOWN]]  # the longest in the stage first
        assert "and 3 more" in listed
    assert f">{SHOWN + 3}</span>" in section(board, "at-risk")


def _listed_references(html: str) -> list[str]:
    return re.findall(r'<a href="/dashboard/jobs/\d+">([^<]+)</a>', html)


def _more_link(html: str) -> str:
    found = re.search(r'<a href="(/dashboard/jobs\?[^"]+)">and \d+ more</a>', html)
    assert found is not None, "no link to the whole list"
    return found.group(1).replace("&amp;", "&")


async def test_the_whole_column_and_flag_list_are_a_link_away_a_page_at_a_time(
    staff: httpx.AsyncClient,
    auth: Keys,
    clock: FakeClock,
    shop: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dashboard, "LISTED", 5)
    account = shop["account"]["id"]
    references = []
    for n in range(SHOWN + 2):
        job = await create_job(staff, auth.staff, account, title=f"Queued {n}", promised_on="2026-03-02")
        references.append(job["reference"])
        clock.advance(minutes=5)
    board = (await staff.get("/dashboard")).text
    for heading in ("column-1", "at-risk"):
        address = _more_link(section(board, heading))
        seen: list[str] = []
        for page in (1, 2, 3):
            listed = (await staff.get(address if page == 1 else f"{address}&page={page}")).text
            assert f'<span class="count">{SHOWN + 2}</span>' in listed
            assert f"Page {page} of 3" in listed
            seen += _listed_references(listed)
        assert seen == references  # every one, longest in the stage first
        beyond = await staff.get(f"{address}&page=4")
        assert beyond.status_code == 404


async def test_a_list_page_needs_one_known_stage_or_flag_and_a_page_number(
    client: httpx.AsyncClient, staff: httpx.AsyncClient, shop: dict[str, Any]
) -> None:
    workflow = shop["workflow"]["key"]
    assert (await staff.get(f"/dashboard/jobs?stage={workflow}:intake")).status_code == 200
    assert (await staff.get("/dashboard/jobs?flag=stuck")).status_code == 200
    for query in (
        "",
        "flag=late",
        f"flag=stuck&stage={workflow}:intake",
        "stage=no-such-workflow:intake",
        f"stage={workflow}:no-such-stage",
        "flag=stuck&page=0",
        "flag=stuck&page=two",
    ):
        response = await staff.get(f"/dashboard/jobs?{query}")
        assert response.status_code == 404, query
    client.cookies.clear()
    signed_out = await client.get("/dashboard/jobs?flag=stuck")
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/dashboard"


async def test_the_board_speaks_the_language_asked_for(staff: httpx.AsyncClient) -> None:
    french = await staff.get("/dashboard?lang=fr")
    assert '<html lang="fr">' in french.text
    assert "Tableau" in french.text
    dutch = await staff.get("/dashboard", headers={"Accept-Language": "de;q=0.5, nl-BE, en;q=0.8"})
    assert '<html lang="nl">' in dutch.text
    unknown = await staff.get("/dashboard?lang=xx", headers={"Accept-Language": "es, it"})
    assert '<html lang="en">' in unknown.text


async def test_the_board_is_light_and_links_the_shared_fingerprinted_assets(staff: httpx.AsyncClient) -> None:
    board = (await staff.get("/dashboard")).text
    sheets = re.findall(r'href="(/static/[a-z]+\.[0-9a-f]{16}\.css)"', board)
    assert len(sheets) == 2  # the pages' site.css and the dashboard's own
    sizes = [len(board.encode())]
    for sheet in sheets:
        css = await staff.get(sheet)
        assert css.status_code == 200 and "immutable" in css.headers["cache-control"]
        sizes.append(len(css.content))
    assert sum(sizes) < 100_000
