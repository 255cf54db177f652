"""A real HTTP/1.1 receiver on 127.0.0.1 for webhook tests, run in the test's own event loop.

Deliberately small: it reads each request (keep-alive included), records it, and answers with whatever the
test's `respond` function returns, or never answers when it returns None.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

REASONS = {200: "OK", 204: "No Content", 301: "Moved Permanently", 410: "Gone", 429: "Too Many Requests"}


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    arrived_at: float
    """The loop's clock (monotonic seconds) when the request had been read."""


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0
    """Seconds to wait before answering."""


Respond = Callable[[Received], Reply | None]


class Receiver:
    def __init__(self, tls: ssl.SSLContext | None = None, bind: str = "127.0.0.1") -> None:
        self.tls = tls
        self.bind = bind
        self.requests: list[Received] = []
        self.connections = 0
        self.in_flight: Counter[str] = Counter()
        self.most_in_flight: Counter[str] = Counter()
        self.most_at_once = 0
        self.respond: Respond = lambda request: Reply()
        self.arrived = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = asyncio.Event()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    async def start(self) -> None:
        self._closing.clear()
        self._server = await asyncio.start_server(self._serve, host=self.bind, port=self.port, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        self._closing.set()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while request := await self._read(reader):
                self.requests.append(request)
                self.arrived.set()
                reply = self.respond(request)
                if reply is None:
                    await self._closing.wait()  # never answer
                    return
                self.in_flight[request.path] += 1
                self.most_in_flight[request.path] = max(
                    self.most_in_flight[request.path], self.in_flight[request.path]
                )
                self.most_at_once = max(self.most_at_once, sum(self.in_flight.values()))
                try:
                    await asyncio.sleep(reply.delay)
                finally:
                    self.in_flight[request.path] -= 1
                head = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}"]
                headers = {"content-length": str(len(reply.body)), **reply.headers}
                head += [f"{name}: {value}" for name, value in headers.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Received | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Received(method, path, headers, body, asyncio.get_running_loop().time())
