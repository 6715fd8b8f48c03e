"""The ``[[device]]`` tables: one appliance (one cluster peer) each.

Facts about the appliances that no public source confirms (web page paths, the private key's
file name over SSH, the restart command) are settings here with the working model as their
default, so a user can correct them without touching code. ``config/example.toml`` and
``docs/devices.md`` say which ones are unconfirmed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from vcs_acme.config_reader import Table, relative_path, secret
from vcs_acme.devices.release import Release
from vcs_acme.devices.rules import Role
from vcs_acme.secrets import Secret

ACCESS_KINDS = ("web", "rest", "ssh", "folder")
KEY_FORMATS = ("pkcs8", "traditional")
ROLES = tuple(role.value for role in Role)
_FINGERPRINT = re.compile(r"^(?:[0-9a-f]{2}:?){31}[0-9a-f]{2}$")


@dataclass(frozen=True)
class TlsTrust:
    """How the device's own HTTPS certificate is checked.

    A CA file, or a pinned SHA-256 fingerprint of the device's certificate, or nothing (the
    system's trust store). ``verify = false`` turns checking off for this device only.
    """

    ca_file: Path | None = None
    fingerprint: str | None = None
    verify: bool = True


@dataclass(frozen=True)
class RestartPolicy:
    """When the device may be restarted to make a new certificate take effect."""

    mode: str = "never"  # "never", "immediately" or "window"
    window: str | None = None  # crontab expression of the window's start, in local time
    window_minutes: int = 60


@dataclass(frozen=True)
class WebPaths:
    """Paths of the web interface. ``/login`` and ``/trustedcacertificate`` are seen in public
    code; the others are assumed (unconfirmed)."""

    login: str = "/login"
    server_certificate: str = "/servercertificate"
    trusted_ca: str = "/trustedcacertificate"
    restart: str = "/restart"
    overview: str = "/overview"


@dataclass(frozen=True)
class SshSettings:
    """SFTP as root. The key file name and the restart command are unconfirmed."""

    port: int = 22
    known_hosts: Path | None = None
    key_file: Path | None = None
    certificate_path: str = "/tandberg/persistent/certs/server.pem"
    key_path: str = "/tandberg/persistent/certs/privkey.pem"
    ca_path: str = "/tandberg/persistent/certs/ca.pem"
    owner: str = "_nobody:nobody"
    restart_command: str = "/sbin/shutdown -r now"


@dataclass(frozen=True)
class FolderSettings:
    """Write the bundle to a folder for a manual upload; optionally run a command after."""

    path: Path
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeviceSettings:
    name: str
    host: str
    role: Role
    access: str
    port: int = 443
    verify_ports: tuple[int, ...] = (443, 5061)
    release: Release | None = None
    username: str = "admin"
    password: Secret | None = None
    tls: TlsTrust = field(default_factory=TlsTrust)
    key_format: str = "pkcs8"
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    server_eku_upload: bool = False
    required_names: tuple[str, ...] = ()
    verify_timeout_seconds: float = 120.0
    request_timeout_seconds: float = 30.0
    web: WebPaths = field(default_factory=WebPaths)
    ssh: SshSettings = field(default_factory=SshSettings)
    folder: FolderSettings | None = None


def parse_device(table: Table, config_file: Path) -> DeviceSettings:
    """Read one ``[[device]]`` table."""
    name = _required(table, "name", "a short name")
    host = _required(table, "host", "a host name or address")
    role = Role(table.choice("role", ROLES, "expressway-e"))
    access = table.choice("access", ACCESS_KINDS, "web")
    port = _port(table, "port", 443)
    verify_ports = tuple(table.integers("verify_ports", minimum=1, maximum=65535) or (443, 5061))
    release = _release(table)
    username = table.string("username") or ("root" if access == "ssh" else "admin")
    password = secret(table, "password") if table.has("password") else None
    tls = _tls(table, config_file)
    key_format = table.choice("key_format", KEY_FORMATS, "pkcs8")
    restart = _restart(table)
    eku_upload = table.boolean("server_eku_upload", False)
    required = tuple(table.strings("required_names") or ())
    timeout = table.number("verify_timeout_seconds", minimum=1, maximum=3600) or 120.0
    request_timeout = table.number("request_timeout_seconds", minimum=1, maximum=600) or 30.0
    web = _web(table)
    ssh = _ssh(table, config_file)
    folder = _folder(table, config_file, access)
    table.finish()
    if (password is None and access in ("web", "rest")) or (
        access == "ssh" and password is None and ssh.key_file is None
    ):
        raise table.error("password", f"missing; the {access} way in needs a password")
    return DeviceSettings(
        name=name, host=host, role=role, access=access, port=port, verify_ports=verify_ports,
        release=release, username=username, password=password, tls=tls, key_format=key_format,
        restart=restart, server_eku_upload=eku_upload, required_names=required,
        verify_timeout_seconds=timeout, request_timeout_seconds=request_timeout,
        web=web, ssh=ssh, folder=folder,
    )  # fmt: skip


def _required(table: Table, key: str, what: str) -> str:
    value = table.string(key, required=True, what=what)
    assert value is not None
    return value


def _port(table: Table, key: str, default: int) -> int:
    value = table.number(key, minimum=1, maximum=65535)
    if value is None:
        return default
    if value != int(value):
        raise table.error(key, f"expected a port number, got {value}")
    return int(value)


def _release(table: Table) -> Release | None:
    text = table.string("release", what='a software release such as "X14.3.2"')
    if text is None:
        return None
    try:
        return Release.parse(text)
    except ValueError as problem:
        raise table.error("release", str(problem)) from None


def _tls(table: Table, config_file: Path) -> TlsTrust:
    ca_text = table.string("tls_ca_file", what="the path of a PEM file")
    pin = table.string("tls_fingerprint", what="a SHA-256 fingerprint in hex")
    verify = table.boolean("tls_verify", True)
    ca_file = relative_path(config_file, ca_text) if ca_text else None
    if ca_file is not None and not ca_file.is_file():
        raise table.error("tls_ca_file", f"expected a readable PEM file, {ca_file} is not one")
    if pin is not None:
        pin = pin.lower().replace(" ", "")
        if not _FINGERPRINT.match(pin):
            raise table.error("tls_fingerprint", "expected 64 hex digits (colons allowed)")
        pin = pin.replace(":", "")
    if not verify and (ca_file or pin):
        raise table.error("tls_verify", "false contradicts tls_ca_file / tls_fingerprint")
    return TlsTrust(ca_file, pin, verify)


def _restart(table: Table) -> RestartPolicy:
    text = table.string("restart", what='"never", "immediately" or a crontab expression')
    minutes = table.number("restart_window_minutes", minimum=1, maximum=1440)
    if text is None or text in ("never", "immediately"):
        return RestartPolicy(text or "never")
    try:
        from apscheduler.triggers.cron import CronTrigger

        CronTrigger.from_crontab(text)
    except ValueError as problem:
        raise table.error(
            "restart",
            f'expected "never", "immediately" or a crontab expression such as "0 2 * * sat" '
            f"({problem})",
        ) from None
    return RestartPolicy("window", text, int(minutes or 60))


def _web(table: Table) -> WebPaths:
    paths = table.table("web_paths")
    if paths is None:
        return WebPaths()
    defaults = WebPaths()
    values = {
        key: paths.string(key, what="a path starting with /") or getattr(defaults, key)
        for key in ("login", "server_certificate", "trusted_ca", "restart", "overview")
    }
    paths.finish()
    for key, value in values.items():
        if not value.startswith("/"):
            raise paths.error(key, f'expected a path starting with "/", got "{value}"')
    return WebPaths(**values)


def _ssh(table: Table, config_file: Path) -> SshSettings:
    ssh = table.table("ssh")
    if ssh is None:
        return SshSettings()
    defaults = SshSettings()
    known_hosts = ssh.string("known_hosts", what="the path of a known_hosts file")
    key_file = ssh.string("key_file", what="the path of a private key file")
    settings = SshSettings(
        port=_port(ssh, "port", 22),
        known_hosts=relative_path(config_file, known_hosts) if known_hosts else None,
        key_file=relative_path(config_file, key_file) if key_file else None,
        certificate_path=ssh.string("certificate_path") or defaults.certificate_path,
        key_path=ssh.string("key_path") or defaults.key_path,
        ca_path=ssh.string("ca_path") or defaults.ca_path,
        owner=ssh.string("owner", what='"user:group"') or defaults.owner,
        restart_command=ssh.string("restart_command") or defaults.restart_command,
    )
    ssh.finish()
    return settings


def _folder(table: Table, config_file: Path, access: str) -> FolderSettings | None:
    folder = table.table("folder", required=access == "folder")
    if folder is None:
        return None
    path = folder.string("path", required=True, what="a folder path")
    assert path is not None
    command = folder.strings("command") or []
    folder.finish()
    return FolderSettings(relative_path(config_file, path), tuple(command))
