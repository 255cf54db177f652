"""A workflow's business calendar, as staff set it through the API."""

from __future__ import annotations

from tests.factories import workflow_body


async def test_a_country_calendar_gets_its_time_zone_and_default_hours(client, auth):
    response = await client.post(
        "/workflows", json=workflow_body(calendar={"country": "FR"}), headers=auth.admin
    )
    assert response.status_code == 201, response.text
    assert response.json()["calendar"] == {
        "time_zone": "Europe/Paris",
        "country": "FR",
        "subdivision": None,
        "opening_hours": None,
        "closures": [],
    }


async def test_opening_hours_and_closures_are_kept(client, auth):
    calendar = {
        "time_zone": "Europe/Brussels",
        "country": "BE",
        "opening_hours": {"mon": [["08:00", "12:00"], ["13:00", "17:30"]], "sat": [["09:00", "12:00"]]},
        "closures": ["2026-08-14", "2026-08-13"],
    }
    response = await client.post("/workflows", json=workflow_body(calendar=calendar), headers=auth.admin)
    assert response.status_code == 201, response.text
    stored = response.json()["calendar"]
    assert stored["opening_hours"] == calendar["opening_hours"]
    assert stored["closures"] == ["2026-08-13", "2026-08-14"]


async def test_a_workflow_without_calendar_works_around_the_clock(client, auth):
    response = await client.post("/workflows", json=workflow_body(), headers=auth.admin)
    assert response.json()["calendar"] is None


async def test_a_new_version_can_change_the_calendar(client, auth):
    await client.post("/workflows", json=workflow_body(calendar={"country": "NL"}), headers=auth.admin)
    body = workflow_body(calendar={"country": "NL", "opening_hours": {"tue": [["07:00", "15:00"]]}})
    del body["key"]
    response = await client.put("/workflows/car-repair", json=body, headers=auth.admin)
    assert response.json()["version"] == 2
    assert response.json()["calendar"]["opening_hours"] == {"tue": [["07:00", "15:00"]]}
    first = await client.get("/workflows/car-repair/versions/1", headers=auth.staff)
    assert first.json()["calendar"]["opening_hours"] is None


async def test_bad_calendars_are_refused_naming_the_field(client, auth):
    cases = [
        ({"country": "XX"}, "calendar.country"),
        ({"country": "FR", "subdivision": "ZZ"}, "calendar.subdivision"),
        ({"subdivision": "BY"}, "calendar.subdivision"),
        ({"time_zone": "Mars/Olympus"}, "calendar.time_zone"),
        ({"opening_hours": {"mon": [["18:00", "08:00"]]}}, "calendar.opening_hours.mon[0]"),
        (
            {"opening_hours": {"mon": [["08:00", "12:00"], ["11:00", "13:00"]]}},
            "calendar.opening_hours.mon[1]",
        ),
        ({"opening_hours": {"mon": [["8h", "12:00"]]}}, "calendar.opening_hours"),
        ({"opening_hours": {"someday": [["08:00", "12:00"]]}}, "calendar.opening_hours"),
        ({"opening_hours": {"mon": []}}, "calendar.opening_hours"),
        ({"closures": ["not a date"]}, "calendar.closures[0]"),
    ]
    for calendar, field in cases:
        response = await client.post("/workflows", json=workflow_body(calendar=calendar), headers=auth.admin)
        assert response.status_code == 422, (calendar, response.text)
        assert response.json()["errors"][0]["field"].startswith(field), (calendar, response.json())
    assert (await client.get("/workflows", headers=auth.admin)).json() == []
