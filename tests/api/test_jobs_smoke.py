from __future__ import annotations

from tests.factories import act, create_job


async def test_a_job_advances_through_its_stages(client, auth, shop):
    job = await create_job(client, auth.staff, shop["account"]["id"])
    assert job["stage"]["key"] == "intake"
    response = await act(client, auth.staff, job, "advance")
    assert response.status_code == 200, response.text
    assert response.json()["stage"]["key"] == "repair"
    assert response.headers["etag"] == '"2"'
