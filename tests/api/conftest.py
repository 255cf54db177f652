from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Keys
from tests.factories import create_account, create_workflow


@pytest.fixture
async def shop(client: httpx.AsyncClient, auth: Keys) -> dict[str, Any]:
    """A workflow (intake, repair, check, ready) and one individual account."""
    workflow = await create_workflow(client, auth.admin)
    account = await create_account(client, auth.staff)
    return {"workflow": workflow, "account": account}
