"""A real SMTP server on loopback (aiosmtpd) that keeps every message it accepts.

It speaks STARTTLS (required before anything else) or TLS from the first byte, with a test
certificate for 127.0.0.1 made by ``emulator.pki``; it requires AUTH (LOGIN or PLAIN) with
one user and password, and records every login attempt with its mechanism. The ``plain``
mode offers neither TLS nor AUTH: a relay that a client must refuse to use for a password.
"""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
import warnings
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from emulator import pki

from support.ports import LOOPBACK, free_port

Mode = Literal["starttls", "tls", "plain"]
USERNAME = "alerts"
PASSWORD = "Smtp-s3cret!"


@dataclass(frozen=True)
class Received:
    """One accepted message with how it came."""

    sender: str
    recipients: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    login: str | None
    tls: bool

    @property
    def body(self) -> str:
        # As a reader shows it: the wire's CRLF line ends become newlines.
        return str(self.message.get_content()).replace("\r\n", "\n")


@dataclass(frozen=True)
class Login:
    mechanism: str
    username: str
    accepted: bool


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(  # noqa: N802 (the name aiosmtpd calls)
        self, smtp: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        transport = smtp.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        sender = envelope.mail_from or ""
        received = Received(sender, tuple(envelope.rcpt_tos), content, message, login, tls)
        self.server.add(received)
        return "250 Message accepted"


class _ImplicitTlsController(Controller):
    def factory(self) -> SMTP:
        # aiosmtpd counts only STARTTLS as TLS for AUTH; here the whole connection is TLS
        # from the first byte, so AUTH is allowed without it, and its warning is moot.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            return SMTP(self.handler, **self.SMTP_kwargs)


class SmtpServer:
    """The server; use as a context manager. ``ca_file`` is what a client must trust."""

    def __init__(self, folder: Path, mode: Mode = "starttls") -> None:
        self.folder = folder
        self.mode = mode
        self.port = free_port()
        self.host = LOOPBACK
        self.messages: list[Received] = []
        self.logins: list[Login] = []
        self._arrived = threading.Condition()
        self.ca_file = folder / "smtp-ca.pem"
        self._context = self._tls_context()
        self._controller = self._make_controller()

    def _tls_context(self) -> ssl.SSLContext:
        root = pki.make_root("SMTP Test Root")
        leaf = pki.make_leaf(root, ["localhost"], ip_addresses=[LOOPBACK], key_kind="p256")
        self.ca_file.write_bytes(root.certificate_pem)
        chain = self.folder / "smtp-server.pem"
        key = self.folder / "smtp-server-key.pem"
        chain.write_bytes(leaf.certificate_pem)
        key.write_bytes(leaf.key_pem())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain, key)
        return context

    def _make_controller(self) -> Controller:
        common: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": "smtp.test",  # else aiosmtpd asks DNS for our own name
        }
        if self.mode == "plain":
            return Controller(_Handler(self), **common)
        common.update(auth_required=True, authenticator=self._authenticate)
        if self.mode == "tls":
            return _ImplicitTlsController(
                _Handler(self), ssl_context=self._context, auth_require_tls=False, **common
            )
        return Controller(
            _Handler(self), tls_context=self._context, require_starttls=True, **common
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        del server, session, envelope
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        username = data.login.decode(errors="replace")
        accepted = username == USERNAME and data.password == PASSWORD.encode()
        with self._arrived:
            self.logins.append(Login(mechanism, username, accepted))
        return AuthResult(success=accepted, handled=False, auth_data=data)

    def add(self, received: Received) -> None:
        with self._arrived:
            self.messages.append(received)
            self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``count`` messages have arrived; return all of them."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(f"{len(self.messages)} of {count} messages in {timeout} s")
            return list(self.messages)

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._controller.stop()
