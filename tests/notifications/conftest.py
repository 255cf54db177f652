"""Real servers on loopback, in the test's own event loop: an HTTP receiver and an SMTP server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.notifications.receiver import Receiver
from tests.notifications.smtp_server import SmtpServer


@pytest.fixture(autouse=True)
async def fail_on_loop_errors() -> AsyncIterator[None]:
    """An exception in a callback or an unawaited task reaches only the loop's handler: fail on it."""
    errors: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    yield
    loop.set_exception_handler(None)
    assert errors == []


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
