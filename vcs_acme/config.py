"""The configuration: TOML in, typed and validated settings out.

The file is read once, completely checked, and turned into frozen dataclasses; code further
down never sees raw TOML. ``config/example.toml`` documents every key.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from vcs_acme.config_alerts import AlertSettings, MetricsSettings, parse_alerts, parse_metrics
from vcs_acme.config_devices import DeviceSettings, parse_device
from vcs_acme.config_reader import Table, relative_path, secret
from vcs_acme.errors import ConfigError
from vcs_acme.secrets import Secret

DEFAULT_CONFIG = Path("/etc/vcs-acme/config.toml")
CONFIG_ENV = "VCS_ACME_CONFIG"

DIRECTORY_SHORTCUTS = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "zerossl": "https://acme.zerossl.com/v2/DV90",
}
KEY_TYPES = ("rsa2048", "rsa3072", "rsa4096", "ec256", "ec384")
# The keys a device makes itself (on-device CSR over REST): RSA of these sizes only.
DEVICE_KEY_BITS = {"rsa2048": 2048, "rsa4096": 4096}
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
CHALLENGE_TYPES = ("http-01", "dns-01")
DNS_PROVIDERS = ("rfc2136", "hook")
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class EabSettings:
    """External Account Binding (RFC 8555 section 7.3.4)."""

    key_id: str
    hmac_key: Secret
    algorithm: str


@dataclass(frozen=True)
class AcmeSettings:
    """The CA and the account held there."""

    directory_url: str
    ca_bundle: Path | None
    contact: tuple[str, ...]
    account_key_type: str
    eab: EabSettings | None
    agree_to_terms: bool
    timeout_seconds: float
    root_ca_file: Path | None = None


@dataclass(frozen=True)
class TsigSettings:
    """The TSIG key (RFC 8945) that signs dynamic updates."""

    name: str
    algorithm: str
    secret: Secret  # base64, as in the server's key statement


@dataclass(frozen=True)
class DnsSettings:
    """How DNS-01 records are published, found and waited for (see docs/dns-01.md)."""

    provider: str  # "rfc2136" or "hook"
    resolver: tuple[str, int] | None  # lookups; None: the system's resolver
    server: tuple[str, int] | None  # where updates go; None: the zone's primary (SOA MNAME)
    zone: str | None  # None: found by SOA lookup
    tsig: TsigSettings | None
    command: tuple[str, ...]  # the hook provider's command
    command_timeout_seconds: float = 60.0
    nameserver_port: int = 53  # where the zone's name servers are asked for propagation
    propagation_timeout_seconds: float = 120.0
    query_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class ChallengeSettings:
    """How the names of a certificate are proven: ``type`` for every name but those listed."""

    type: str
    listen_host: str
    listen_port: int
    http_names: tuple[str, ...] = ()  # proven by HTTP-01 whatever type says
    dns_names: tuple[str, ...] = ()  # proven by DNS-01 whatever type says
    dns: DnsSettings | None = None  # set when any name is proven by DNS-01

    def type_for(self, name: str) -> str:
        """The challenge type that proves one of the certificate's names."""
        if name in self.http_names:
            return "http-01"
        if name in self.dns_names:
            return "dns-01"
        return self.type


@dataclass(frozen=True)
class CertificateSettings:
    """One lineage: a certificate that is kept renewed."""

    name: str
    domains: tuple[str, ...]
    key_type: str
    reuse_key: bool
    profile: str | None
    preferred_chain: str | None
    challenge: ChallengeSettings
    renew_before_days: float | None
    devices: tuple[str, ...] = ()

    @property
    def identity(self) -> dict[str, object]:
        """What, when it changes, makes a new certificate due now."""
        return {
            "domains": sorted(self.domains),
            "key_type": self.key_type,
            "profile": self.profile,
        }


@dataclass(frozen=True)
class DaemonSettings:
    """How ``vcs-acme run`` works its schedule."""

    workers: int = 4
    drift_check_minutes: float = 60.0
    stop_timeout_seconds: float = 30.0


@dataclass(frozen=True)
class Settings:
    """Everything the agent was told."""

    source: Path
    state_dir: Path
    acme: AcmeSettings
    certificates: tuple[CertificateSettings, ...]
    devices: tuple[DeviceSettings, ...] = ()
    daemon: DaemonSettings = DaemonSettings()
    alerts: AlertSettings = field(default_factory=AlertSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    def device(self, name: str) -> DeviceSettings:
        for device in self.devices:
            if device.name == name:
                return device
        raise KeyError(name)

    def certificate(self, name: str) -> CertificateSettings:
        for certificate in self.certificates:
            if certificate.name == name:
                return certificate
        raise KeyError(name)


def config_path(explicit: str | None) -> Path:
    """The configuration file: ``--config``, else ``$VCS_ACME_CONFIG``, else the default."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(CONFIG_ENV)
    return Path(from_env) if from_env else DEFAULT_CONFIG


def load(path: Path) -> Settings:
    """Read and check a configuration file; raise :class:`ConfigError` on any problem."""
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, "", "no such file (give --config PATH)") from None
    except OSError as error:
        raise ConfigError(source, "", f"cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(source, "", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(source, "", f"not valid TOML: {error}") from None
    return parse(raw, path)


def parse(raw: dict[str, object], path: Path) -> Settings:
    root = Table(dict(raw), str(path))
    state_text = root.string("state_dir", what="a folder path") or "/var/lib/vcs-acme"
    state_dir = relative_path(path, state_text)
    acme_table = root.table("acme", required=True)
    assert acme_table is not None
    acme = _acme(acme_table, path)
    certificates = tuple(_certificate(table) for table in root.tables("certificate"))
    devices = tuple(parse_device(table, path) for table in root.tables("device"))
    daemon_table = root.table("daemon")
    daemon = _daemon(daemon_table) if daemon_table else DaemonSettings()
    alerts_table = root.table("alerts")
    alerts = parse_alerts(alerts_table, path) if alerts_table else AlertSettings()
    metrics_table = root.table("metrics")
    metrics = parse_metrics(metrics_table) if metrics_table else MetricsSettings()
    root.finish()
    _check_unique(root, "certificate", [c.name for c in certificates])
    _check_unique(root, "device", [d.name for d in devices])
    _check_device_names(root, certificates, {d.name for d in devices})
    _check_key_on_device(root, certificates, {d.name for d in devices if d.access == "rest"})
    return Settings(path, state_dir, acme, certificates, devices, daemon, alerts, metrics)


def _daemon(table: Table) -> DaemonSettings:
    workers = table.number("workers", minimum=1, maximum=64)
    drift = table.number("drift_check_minutes", minimum=1, maximum=10080)
    stop = table.number("stop_timeout_seconds", minimum=1, maximum=600)
    table.finish()
    if workers is not None and workers != int(workers):
        raise table.error("workers", f"expected a whole number, got {workers}")
    defaults = DaemonSettings()
    return DaemonSettings(
        int(workers or defaults.workers),
        drift or defaults.drift_check_minutes,
        stop or defaults.stop_timeout_seconds,
    )


def _acme(table: Table, config_file: Path) -> AcmeSettings:
    directory = _directory_url(table)
    ca_bundle = _ca_bundle(table, config_file)
    contact = tuple(_contact(table))
    key_type = table.choice("account_key_type", KEY_TYPES, "ec256")
    eab_table = table.table("eab")
    eab = _eab(eab_table) if eab_table else None
    agree = table.boolean("agree_to_terms", True)
    timeout = table.number("timeout_seconds", minimum=1, maximum=600) or 30.0
    root_text = table.string("root_ca_file", what="the path of the CA's root certificate (PEM)")
    root = relative_path(config_file, root_text) if root_text else None
    if root is not None and not root.is_file():
        raise table.error("root_ca_file", f"expected a readable PEM file, {root} is not one")
    table.finish()
    return AcmeSettings(directory, ca_bundle, contact, key_type, eab, agree, timeout, root)


def _directory_url(table: Table) -> str:
    shortcuts = ", ".join(DIRECTORY_SHORTCUTS)
    value = table.string("directory", required=True, what=f"an https URL or one of {shortcuts}")
    assert value is not None
    url = DIRECTORY_SHORTCUTS.get(value, value)
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise table.error(
            "directory", f'expected an https:// URL or one of {shortcuts}, got "{value}"'
        )
    return url


def _ca_bundle(table: Table, config_file: Path) -> Path | None:
    text = table.string("ca_bundle", what="the path of a PEM file")
    if text is None:
        return None
    path = relative_path(config_file, text)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise table.error("ca_bundle", f"expected a readable PEM file, {path} is not one")
    return path


def _contact(table: Table) -> list[str]:
    values = table.strings("contact") or []
    for index, value in enumerate(values):
        if not _EMAIL.match(value):
            raise table.error(f"contact[{index}]", f'expected an e-mail address, got "{value}"')
    return [f"mailto:{value}" for value in values]


def _eab(table: Table) -> EabSettings:
    key_id = table.string("key_id", required=True, what="the key id the CA gave you")
    assert key_id is not None
    hmac_key = secret(table, "hmac_key")
    algorithm = table.choice("algorithm", HMAC_ALGORITHMS, "HS256")
    table.finish()
    return EabSettings(key_id, hmac_key, algorithm)


def _certificate(table: Table) -> CertificateSettings:
    name = table.string("name", required=True, what="a short name (letters, digits, . _ -)")
    assert name is not None
    table.convert("name", name, _check_name)
    domains = table.strings("domains", required=True) or []
    if not domains:
        raise table.error("domains", "expected at least one DNS name")
    for index, domain in enumerate(domains):
        table.convert(f"domains[{index}]", domain, _check_domain)
    key_type = table.choice("key_type", KEY_TYPES, "rsa2048")
    reuse_key = table.boolean("reuse_key", False)
    profile = table.string("profile", what="the name of a profile the CA offers")
    preferred_chain = table.string("preferred_chain", what="an issuer common name")
    challenge = _challenge(table)
    renew_before = table.number("renew_before_days", minimum=0.01, maximum=3650)
    devices = table.strings("devices") or []
    table.finish()
    return CertificateSettings(
        name=name,
        domains=tuple(domains),
        key_type=key_type,
        reuse_key=reuse_key,
        profile=profile,
        preferred_chain=preferred_chain,
        challenge=challenge,
        renew_before_days=renew_before,
        devices=tuple(devices),
    )


def _challenge(table: Table) -> ChallengeSettings:
    challenge = table.table("challenge")
    if challenge is None:
        return ChallengeSettings("http-01", "", 80)
    kind = challenge.choice("type", CHALLENGE_TYPES, "http-01")
    listen = challenge.string("listen", what='"host:port" (host may be empty: ":80")') or ":80"
    challenge.convert("listen", listen, _check_listen)
    host, port = _split_listen(listen)
    # The certificate's domains are checked before its challenge table is read.
    domains: list[str] = table.data["domains"]
    http_names = _challenge_names(challenge, "http_names", domains, ())
    dns_names = _challenge_names(challenge, "dns_names", domains, http_names)
    plan = ChallengeSettings(kind, host, port, http_names, dns_names)
    _check_wildcards(table, plan, domains)
    dns = None
    if any(plan.type_for(name) == "dns-01" for name in domains):
        dns = _dns(challenge)
    else:
        _refuse(challenge, _DNS_KEYS, _NO_DNS_NAMES)
    challenge.finish()
    return ChallengeSettings(kind, host, port, http_names, dns_names, dns)


def _challenge_names(
    challenge: Table, key: str, domains: list[str], taken: tuple[str, ...]
) -> tuple[str, ...]:
    names = challenge.strings(key) or []
    for index, name in enumerate(names):
        if name not in domains:
            raise challenge.error(f"{key}[{index}]", f'"{name}" is not one of the domains')
        if name in taken:
            raise challenge.error(f"{key}[{index}]", f'"{name}" is in http_names too')
    return tuple(names)


def _check_wildcards(table: Table, plan: ChallengeSettings, domains: list[str]) -> None:
    for index, name in enumerate(domains):
        if name.startswith("*.") and plan.type_for(name) == "http-01":
            raise table.error(
                f"domains[{index}]",
                f'"{name}" is a wildcard, which only DNS-01 can prove; set challenge.type = '
                '"dns-01" or list it in challenge.dns_names',
            )


_DNS_KEYS = (
    "provider",
    "resolver",
    "server",
    "zone",
    "tsig",
    "command",
    "command_timeout_seconds",
    "nameserver_port",
    "propagation_timeout_seconds",
    "query_timeout_seconds",
)
_NO_DNS_NAMES = 'no name is proven by DNS-01; set type = "dns-01" or list names in dns_names'
_DEFAULT_DNS = DnsSettings("rfc2136", None, None, None, None, ())


def _refuse(table: Table, keys: tuple[str, ...], reason: str) -> None:
    for key in keys:
        if table.has(key):
            raise table.error(key, reason)


def _dns(challenge: Table) -> DnsSettings:
    provider = challenge.choice("provider", DNS_PROVIDERS, _DEFAULT_DNS.provider)
    resolver = _dns_address(challenge, "resolver", name_allowed=False)
    zone = challenge.string("zone", what="a DNS zone name")
    if zone is not None:
        zone = challenge.convert("zone", zone.rstrip("."), _check_zone)
    server: tuple[str, int] | None = None
    tsig: TsigSettings | None = None
    command: tuple[str, ...] = ()
    if provider == "hook":
        _refuse(challenge, ("server", "tsig"), 'only for provider = "rfc2136"')
        command = _hook_command(challenge)
    else:
        _refuse(challenge, ("command", "command_timeout_seconds"), 'only for provider = "hook"')
        server = _dns_address(challenge, "server", name_allowed=True)
        tsig_table = challenge.table("tsig")
        tsig = _tsig(tsig_table) if tsig_table else None
    seconds = _seconds(challenge)
    port = challenge.number("nameserver_port", minimum=1, maximum=65535)
    if port is not None and port != int(port):
        raise challenge.error("nameserver_port", f"expected a whole number, got {port}")
    return DnsSettings(
        provider, resolver, server, zone, tsig, command,
        command_timeout_seconds=seconds["command_timeout_seconds"],
        nameserver_port=int(port or _DEFAULT_DNS.nameserver_port),
        propagation_timeout_seconds=seconds["propagation_timeout_seconds"],
        query_timeout_seconds=seconds["query_timeout_seconds"],
    )  # fmt: skip


def _seconds(challenge: Table) -> dict[str, float]:
    bounds = {
        "command_timeout_seconds": (1, 3600),
        "propagation_timeout_seconds": (1, 3600),
        "query_timeout_seconds": (0.1, 120),
    }
    values = {}
    for key, (low, high) in bounds.items():
        value = challenge.number(key, minimum=low, maximum=high)
        values[key] = value if value is not None else float(getattr(_DEFAULT_DNS, key))
    return values


def _hook_command(challenge: Table) -> tuple[str, ...]:
    command = challenge.strings("command", required=True) or []
    if not command:
        raise challenge.error("command", "expected the program and its arguments")
    return tuple(command)


def _tsig(table: Table) -> TsigSettings:
    name = table.string("name", required=True, what="the key's name, as on the DNS server")
    assert name is not None
    algorithm = table.choice("algorithm", TSIG_ALGORITHMS, "hmac-sha256")
    key = secret(table, "secret")
    try:
        base64.b64decode(key.reveal(), validate=True)
    except binascii.Error:
        message = f"{key.origin} holds no base64 text, as a key statement's secret does"
        raise table.error("secret", message) from None
    table.finish()
    return TsigSettings(name.rstrip("."), algorithm, key)


def _dns_address(challenge: Table, key: str, *, name_allowed: bool) -> tuple[str, int] | None:
    text = challenge.string(key, what='"host:port"')
    if text is None:
        return None
    try:
        return _parse_dns_address(text, name_allowed=name_allowed)
    except ValueError as problem:
        raise challenge.error(key, str(problem)) from None


def _parse_dns_address(text: str, *, name_allowed: bool) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address; port 53 by default."""
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'expected a port from 1 to 65535, got "{text}"')
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not name_allowed or not all(_LABEL.match(x) for x in host.lower().split(".")):
            kind = "an IP address or a host name" if name_allowed else "an IP address"
            raise ValueError(f'expected {kind}, optionally with ":port", got "{text}"') from None
    return host, int(port)


def _check_zone(zone: str) -> None:
    if zone != zone.lower() or not all(_LABEL.match(x) for x in zone.split(".")):
        raise ValueError(f'expected a lower-case DNS zone name, got "{zone}"')


def _split_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _check_listen(text: str) -> None:
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'expected "host:port" with a port from 1 to 65535, got "{text}"')
    del host


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(
            f'expected letters, digits, ".", "_" or "-" (at most 64, not starting with a '
            f'symbol), got "{name}"'
        )


def _check_domain(domain: str) -> None:
    if domain != domain.lower():
        raise ValueError(f'expected a lower-case DNS name, got "{domain}"')
    labels = domain.split(".")
    if labels[0] == "*":
        labels = labels[1:]
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        raise ValueError(f'expected a fully qualified DNS name, got "{domain}"')


def _check_unique(root: Table, kind: str, names: list[str]) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise ConfigError(
                root.source,
                f"{kind}[{index}].name",
                f'"{name}" is used by another {kind}; names must be unique',
            )
        seen.add(name)


def _check_device_names(
    root: Table, certificates: tuple[CertificateSettings, ...], known: set[str]
) -> None:
    for index, certificate in enumerate(certificates):
        for position, name in enumerate(certificate.devices):
            if name not in known:
                listed = ", ".join(sorted(known)) or "none"
                raise ConfigError(
                    root.source,
                    f"certificate[{index}].devices[{position}]",
                    f'no [[device]] named "{name}" (configured: {listed})',
                )


def _check_key_on_device(
    root: Table, certificates: tuple[CertificateSettings, ...], key_on_device: set[str]
) -> None:
    # A device that makes its own key gets a certificate of its own: one key per lineage.
    for index, certificate in enumerate(certificates):
        makers = [name for name in certificate.devices if name in key_on_device]
        if makers and certificate.key_type not in DEVICE_KEY_BITS:
            raise ConfigError(
                root.source,
                f"certificate[{index}].key_type",
                f'"{makers[0]}" makes its own key (access = "rest"), and devices make RSA keys '
                f'of 2048 or 4096 bits only; expected "rsa2048" or "rsa4096", '
                f'got "{certificate.key_type}"',
            )
        if makers and len(certificate.devices) > 1:
            raise ConfigError(
                root.source,
                f"certificate[{index}].devices",
                f'"{makers[0]}" makes its own key (access = "rest"), so its certificate can go '
                "to that device alone; give each such device a [[certificate]] of its own",
            )
