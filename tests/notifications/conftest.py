"""Real servers on loopback, in the test's own event loop: an HTTP receiver (and an SMTP server)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.notifications.receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()
