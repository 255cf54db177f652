"""Serve an app with uvicorn on a loopback port inside the test's own event loop.

The app shares the test's database connection (its lifespan is off: the test's `db` fixture has opened the
database), so a test can set up rows and read what the served app wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from litestar import Litestar


@asynccontextmanager
async def served(app: Litestar) -> AsyncIterator[str]:
    """Yield the base URL (`http://127.0.0.1:<port>`) while the app is served."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
