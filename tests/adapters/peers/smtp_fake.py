"""A real SMTP server (aiosmtpd) on 127.0.0.1 requiring STARTTLS then AUTH, keeping what it receives."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, List

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SMTP_USER = "sender@example.org"
SMTP_PASSWORD = "fake-smtp-password-Zq19xT"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: List[str]
    message: EmailMessage
    authenticated_as: str
    tls: bool


def free_port() -> int:
    """A port nobody listens on now (aiosmtpd's Controller cannot take port 0: it connects back to it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        if self.server.refusing:
            with self.server.lock:
                self.server.refused += 1
            return "554 5.3.0 Mailbox unavailable (the test server refuses mail)"
        message = email.message_from_bytes(
            envelope.original_content or envelope.content, policy=email.policy.default
        )
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else ""
        with self.server.lock:
            self.server.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), message, login, session.ssl is not None)
            )
        return "250 OK"


class SmtpServer:
    """aiosmtpd with STARTTLS required before AUTH, and AUTH required before MAIL."""

    def __init__(
        self, tls_context: ssl.SSLContext, user: str = SMTP_USER, password: str = SMTP_PASSWORD
    ) -> None:
        self.user, self.password = user, password
        self.received: List[Received] = []
        self.auth_failures = 0
        #: While True, every message is refused after DATA with a permanent 554 (a mail server that is down).
        self.refusing = False
        self.refused = 0
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=tls_context,
            require_starttls=True,
            authenticator=self._authenticate,
            auth_required=True,
            auth_require_tls=True,
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.user
            and auth_data.password.decode() == self.password
        )
        if not ok:
            self.auth_failures += 1
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
