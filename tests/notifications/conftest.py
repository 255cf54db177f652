"""Real servers on loopback, in the test's own event loop: an HTTP receiver and an SMTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.notifications.receiver import Receiver
from tests.notifications.smtp_server import SmtpServer


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServer]:
    server = SmtpServer()
    await server.start()
    yield server
    await server.stop()
