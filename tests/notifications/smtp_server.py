"""A real SMTP server (aiosmtpd) for email tests, run in the test's own event loop on port 0."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP


class Inbox:
    """aiosmtpd handler keeping what arrived; `refuse_rcpt` and `data_reply` make it answer otherwise."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.over_tls: list[bool] = []
        self.ehlo_names: list[str] = []
        self.quits = 0
        self.hang_up_at_mail = 0
        """How many of the next MAIL commands get "421" and a closed connection, as on an idle timeout."""
        self.refuse_rcpt: dict[str, str] = {}
        self.data_reply: str | None = None
        self.arrived = asyncio.Event()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.hang_up_at_mail:
            self.hang_up_at_mail -= 1
            server.transport.close()
            return "421 4.4.2 Idle too long, closing"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quits += 1
        return "221 Bye"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply is not None:
            return self.data_reply
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.over_tls.append(session.ssl is not None)
        self.ehlo_names.append(session.host_name)
        self.arrived.set()
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(
        self,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        implicit_tls: ssl.SSLContext | None = None,
        idle_timeout: float = 300,
    ) -> None:
        self.inbox = Inbox()
        self.connections = 0
        self._idle_timeout = idle_timeout
        self._implicit_tls = implicit_tls
        self.port = 0
        self._tls_context = tls_context
        self._require_starttls = require_starttls
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        def protocol() -> SMTP:
            self.connections += 1
            return SMTP(
                self.inbox,
                hostname="smtp.test",
                tls_context=self._tls_context,
                require_starttls=self._require_starttls,
                timeout=self._idle_timeout,
            )

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol, host="127.0.0.1", port=self.port, family=socket.AF_INET, ssl=self._implicit_tls
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
