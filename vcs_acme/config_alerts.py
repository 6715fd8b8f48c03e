"""The ``[alerts]``, ``[alerts.email]``, ``[alerts.webhook]`` and ``[metrics]`` tables.

Every setting states its default here and in ``docs/operations.md``. TLS is verified unless
the mail server is reached with ``security = "none"``, which then refuses a password: a
password never travels in clear text.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from vcs_acme.config_reader import Table, relative_path, secret
from vcs_acme.secrets import Secret

MAIL_SECURITY = ("starttls", "tls", "none")
DEFAULT_MAIL_PORTS = {"starttls": 587, "tls": 465, "none": 25}
METRICS_HOST = "127.0.0.1"
METRICS_PORT = 9464

_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


@dataclass(frozen=True)
class EmailSettings:
    """One SMTP server and who gets the alerts."""

    host: str
    sender: str  # the "from" key
    recipients: tuple[str, ...]  # the "to" key
    port: int = 587
    security: str = "starttls"  # "starttls", "tls" (implicit TLS) or "none"
    ca_file: Path | None = None  # None: the system's trust store
    username: str | None = None
    password: Secret | None = None
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class WebhookSettings:
    """An HTTP(S) endpoint that receives each alert as a JSON POST."""

    url: Secret  # a chat service's webhook URL is its own credential
    origin: str  # scheme://host:port, the only part of the URL that is ever logged
    ca_file: Path | None = None
    authorization: Secret | None = None  # sent as the Authorization header
    tries: int = 3
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class AlertSettings:
    """When to tell people, and how."""

    expiry_warning_days: float = 7.0
    reminder_hours: float = 24.0
    email: EmailSettings | None = None
    webhook: WebhookSettings | None = None

    @property
    def expiry_warning(self) -> dt.timedelta:
        return dt.timedelta(days=self.expiry_warning_days)

    @property
    def reminder(self) -> dt.timedelta:
        return dt.timedelta(hours=self.reminder_hours)


@dataclass(frozen=True)
class MetricsSettings:
    """The Prometheus endpoint of ``vcs-acme run``."""

    enabled: bool = True
    host: str = METRICS_HOST
    port: int = METRICS_PORT


def parse_alerts(table: Table, config_file: Path) -> AlertSettings:
    """Read ``[alerts]`` and its channel tables."""
    defaults = AlertSettings()
    expiry = table.number("expiry_warning_days", minimum=0.01, maximum=365)
    reminder = table.number("reminder_hours", minimum=0.1, maximum=24 * 90)
    email_table = table.table("email")
    webhook_table = table.table("webhook")
    email = _email(email_table, config_file) if email_table else None
    webhook = _webhook(webhook_table, config_file) if webhook_table else None
    table.finish()
    return AlertSettings(
        expiry_warning_days=expiry or defaults.expiry_warning_days,
        reminder_hours=reminder or defaults.reminder_hours,
        email=email,
        webhook=webhook,
    )


def parse_metrics(table: Table) -> MetricsSettings:
    """Read ``[metrics]``."""
    enabled = table.boolean("enabled", True)
    listen = table.string("listen", what='"host:port", such as "127.0.0.1:9464"')
    table.finish()
    if listen is None:
        return MetricsSettings(enabled)
    table.convert("listen", listen, _check_listen)
    host, port = _split_listen(listen)
    return MetricsSettings(enabled, host, port)


def _email(table: Table, config_file: Path) -> EmailSettings:
    host = table.string("host", required=True, what="the mail server's host name")
    sender = table.string("from", required=True, what="the sender's e-mail address")
    recipients = table.strings("to", required=True) or []
    security = table.choice("security", MAIL_SECURITY, "starttls")
    port = _port(table, "port", DEFAULT_MAIL_PORTS[security])
    ca_file = _ca_file(table, config_file)
    username = table.string("username", what="the user name to log in with")
    password = secret(table, "password") if table.has("password") else None
    timeout = table.number("timeout_seconds", minimum=1, maximum=600) or 30.0
    table.finish()
    assert host is not None
    assert sender is not None
    _check_addresses(table, sender, recipients)
    if (username is None) != (password is None):
        missing = "password" if password is None else "username"
        raise table.error(missing, "missing; username and password go together")
    if security == "none" and (password is not None or ca_file is not None):
        key = "password" if password is not None else "ca_file"
        raise table.error(key, 'has no place with security = "none": use "starttls" or "tls"')
    return EmailSettings(
        host=host, sender=sender, recipients=tuple(recipients), port=port, security=security,
        ca_file=ca_file, username=username, password=password, timeout_seconds=timeout,
    )  # fmt: skip


def _webhook(table: Table, config_file: Path) -> WebhookSettings:
    url = _url(table)
    ca_file = _ca_file(table, config_file)
    authorization = secret(table, "authorization") if table.has("authorization") else None
    tries = table.number("tries", minimum=1, maximum=10)
    timeout = table.number("timeout_seconds", minimum=1, maximum=120) or 10.0
    table.finish()
    if tries is not None and tries != int(tries):
        raise table.error("tries", f"expected a whole number, got {tries}")
    parts = urlsplit(url.reveal())
    if authorization is not None and parts.scheme != "https":
        raise table.error("authorization", "is only sent over https; use an https:// url")
    origin = f"{parts.scheme}://{parts.hostname}:{parts.port or _default_port(parts.scheme)}"
    return WebhookSettings(url, origin, ca_file, authorization, int(tries or 3), timeout)


def _url(table: Table) -> Secret:
    what = "an http:// or https:// URL, or a secret table such as { env = ... }"
    if table.has("url") and isinstance(table.data["url"], dict):
        value = secret(table, "url")
    else:
        text = table.string("url", required=True, what=what)
        assert text is not None
        value = Secret(text, "inline value")
    parts = urlsplit(value.reveal())
    # The URL may be a credential, so the message names what is wrong but never the value.
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise table.error("url", f"expected {what}")
    return value


def _ca_file(table: Table, config_file: Path) -> Path | None:
    text = table.string("ca_file", what="the path of a PEM file with CA certificates")
    if text is None:
        return None
    path = relative_path(config_file, text)
    if not path.is_file():
        raise table.error("ca_file", f"expected a readable PEM file, {path} is not one")
    return path


def _port(table: Table, key: str, default: int) -> int:
    value = table.number(key, minimum=1, maximum=65535)
    if value is None:
        return default
    if value != int(value):
        raise table.error(key, f"expected a whole number, got {value}")
    return int(value)


def _check_addresses(table: Table, sender: str, recipients: list[str]) -> None:
    if not _ADDRESS.match(sender):
        raise table.error("from", f'expected an e-mail address, got "{sender}"')
    if not recipients:
        raise table.error("to", "expected at least one e-mail address")
    for index, address in enumerate(recipients):
        if not _ADDRESS.match(address):
            raise table.error(f"to[{index}]", f'expected an e-mail address, got "{address}"')


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _check_listen(text: str) -> None:
    host, separator, port = text.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'expected "host:port" with a port from 1 to 65535, got "{text}"')


def _split_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)
