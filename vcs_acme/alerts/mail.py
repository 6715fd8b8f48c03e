"""Alerts by e-mail over SMTP (RFC 5321), always inside TLS unless told otherwise.

STARTTLS (RFC 3207) upgrades the connection before anything else is said, and a server that
does not offer it is an error, never a reason to go on in clear text; ``security = "tls"``
speaks TLS from the first byte (RFC 8314). The server's certificate and host name are
checked against ``ca_file``, or the system's trust store.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import logging
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from vcs_acme.alerts import text
from vcs_acme.alerts.channel import ChannelError
from vcs_acme.alerts.policy import Alert
from vcs_acme.config_alerts import EmailSettings

logger = logging.getLogger(__name__)

# Headers are folded at 998, the hard limit (RFC 5322 section 2.1.1), not at 78: the email
# package folds some subjects of 79 or so characters right after "Subject:", which readers
# then show with a leading space.
MAIL_POLICY = email.policy.SMTP.clone(max_line_length=998)


class EmailChannel:
    name = "email"

    def __init__(self, settings: EmailSettings, reminder: dt.timedelta) -> None:
        self.settings = settings
        self.reminder = reminder

    @property
    def target(self) -> str:
        return f"smtp {self.settings.host}:{self.settings.port} ({self.settings.security})"

    def send(self, alert: Alert) -> None:
        message = self.message(alert)
        try:
            with self._connect() as client:
                self._log_in(client)
                client.send_message(message)
        except smtplib.SMTPAuthenticationError as error:
            raise ChannelError(
                f"{self.target}: login refused for {self.settings.username!r} "
                f"({error.smtp_code} {_reply(error.smtp_error)}); check username and password"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise ChannelError(
                f"{self.target}: the server offers no STARTTLS; nothing was sent in clear text"
            ) from None
        except ssl.SSLCertVerificationError as error:
            raise ChannelError(
                f"{self.target}: TLS not trusted ({error.verify_message}); check ca_file"
            ) from None
        except (smtplib.SMTPException, OSError) as error:
            raise ChannelError(f"{self.target}: {_describe(error)}") from None
        logger.debug("%s: delivered to %s", self.target, ", ".join(self.settings.recipients))

    def message(self, alert: Alert) -> EmailMessage:
        settings = self.settings
        message = EmailMessage(policy=MAIL_POLICY)
        message["From"] = settings.sender
        message["To"] = ", ".join(settings.recipients)
        message["Subject"] = text.subject(alert)
        message["Date"] = format_datetime(alert.time)
        message["Message-ID"] = make_msgid("vcs-acme", settings.sender.rpartition("@")[2])
        # RFC 3834: a machine wrote this; vacation responders must not answer it.
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(text.body(alert, self.reminder))
        return message

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        # Our own name for EHLO: the default asks DNS for the fully qualified name, which can
        # stall for the whole timeout on a host without working reverse lookups.
        local = socket.gethostname()
        timeout = settings.timeout_seconds
        if settings.security == "tls":
            return smtplib.SMTP_SSL(
                settings.host, settings.port, local, timeout=timeout, context=self._context()
            )
        client = smtplib.SMTP(settings.host, settings.port, local, timeout=timeout)
        if settings.security == "starttls":
            try:
                client.starttls(context=self._context())
            except BaseException:
                client.close()
                raise
        return client

    def _context(self) -> ssl.SSLContext:
        ca_file = self.settings.ca_file
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def _log_in(self, client: smtplib.SMTP) -> None:
        """One AUTH with one mechanism: ``login()`` would try a wrong password once per
        mechanism offered, and servers that lock accounts count each try."""
        settings = self.settings
        if settings.username is None or settings.password is None:
            return
        client.ehlo_or_helo_if_needed()
        offered = client.esmtp_features.get("auth", "").upper().split()
        mechanism = next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
        if mechanism is None:
            raise ChannelError(f"{self.target}: the server offers no AUTH PLAIN or LOGIN")
        # The auth_* methods read these two attributes (documented with SMTP.auth).
        client.user, client.password = settings.username, settings.password.reveal()
        authenticate = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        client.auth(mechanism, authenticate)


def _reply(raw: bytes | str) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


def _describe(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return f"recipients refused: {', '.join(sorted(error.recipients))}"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{type(error).__name__} {error.smtp_code} {_reply(error.smtp_error)}"
    return f"{type(error).__name__}: {error}"
