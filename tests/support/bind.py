"""Run real BIND 9 servers for DNS-01 tests: a primary, a secondary and a resolver.

`BindServers` starts three ``named -g`` processes from Debian's ``bind9`` package:

- the primary on 127.0.0.1 and the secondary on ::1, on one free port. BIND listens only on
  addresses that an interface carries, and the loopback interface carries these two. Every
  zone has two name servers, ``ns1`` (A 127.0.0.1) and ``ns2`` (AAAA ::1), so a propagation
  check must ask both; the secondary learns changes through NOTIFY and incremental
  transfers, as in a real deployment.
- a recursive resolver on 127.0.0.1 and another port, forwarding every question to the
  primary and keeping nothing in its cache. It is what the CA asks, as a real CA asks its
  own resolvers: an authoritative server answers a CNAME into another zone with the CNAME
  alone, and only a resolver follows it to the record.

Zones listed in `Zone` take dynamic updates (RFC 2136) signed with any of `KEYS`, or none
(``updatable=False``); a zone with ``notify=False`` never tells the secondary about a
change, so that a record added there stays invisible on ns2 for the length of a test.
Everything lives in a private folder under /tmp (configurations, zone files, journals,
logs), removed on exit; nothing is read from /etc/bind, and the control channel is off.
Readiness is awaited by asking each server for the SOA of every zone, over TCP and UDP, with
a bound. Failures to start raise `BindError` with the tail of the logs.

`add`, `txt` and `settled_txt` let tests prepare records and look at them without going
through the code under test.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.update

logger = logging.getLogger(__name__)

NAMED = Path("/usr/sbin/named")
INSTALL_SCRIPT = "tests/tools/install-system.sh"
PRIMARY = "127.0.0.1"
SECONDARY = "::1"
ROLES = ("primary", "secondary", "resolver")

STARTUP_TIMEOUT = 15.0
POLL_INTERVAL = 0.02
QUERY_TIMEOUT = 1.0
STOP_TIMEOUT = 5.0
LOG_TAIL_LINES = 30


class BindError(RuntimeError):
    """BIND could not be started, or refused a request made by a test."""


@dataclass(frozen=True)
class TsigKey:
    """A TSIG key the servers know (RFC 8945)."""

    name: str
    algorithm: str
    secret: str = field(repr=False)
    """Base64, as in a BIND key statement. Secret."""

    def statement(self) -> str:
        return f'key "{self.name}" {{ algorithm {self.algorithm}; secret "{self.secret}"; }};'

    def write(self, path: Path) -> Path:
        """The key as a BIND key statement, the form ``nsupdate -k`` reads (mode 0600)."""
        _write_private(path, self.statement() + "\n")
        return path


def _new_key(name: str, algorithm: str, size: int) -> TsigKey:
    return TsigKey(name, algorithm, base64.b64encode(os.urandom(size)).decode("ascii"))


@dataclass(frozen=True)
class Zone:
    """One zone served by the primary and the secondary."""

    name: str
    updatable: bool = True
    notify: bool = True
    records: tuple[str, ...] = ()
    """Extra zone file lines, relative to the zone's origin."""


KEYS = (
    _new_key("vcs-acme-256", "hmac-sha256", 32),
    _new_key("vcs-acme-384", "hmac-sha384", 48),
    _new_key("vcs-acme-512", "hmac-sha512", 64),
)

DEFAULT_ZONES = (
    # Names in example.test have no address: they can be proven by DNS-01 only.
    Zone("example.test"),
    # The acme-dns pattern: a zone only for validation records, reached through CNAMEs.
    Zone("validation.test"),
    # Changes here never reach the secondary.
    Zone("lagging.test", notify=False),
    # Every name here has the address 127.0.0.1 and no update is allowed: HTTP-01 only.
    Zone("static.test", updatable=False, records=("* A 127.0.0.1",)),
)


class BindServers:
    """The three servers, started on enter and stopped on exit."""

    def __init__(
        self, zones: tuple[Zone, ...] = DEFAULT_ZONES, *, startup_timeout: float = STARTUP_TIMEOUT
    ) -> None:
        self.zones = zones
        self.keys = KEYS
        self.port = _free_port((PRIMARY, SECONDARY))
        self.resolver_port = _free_port((PRIMARY,))
        self.startup_timeout = startup_timeout
        self.workdir: Path | None = None
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def key(self) -> TsigKey:
        """The key tests use by default (hmac-sha256)."""
        return self.keys[0]

    @property
    def server(self) -> str:
        """The primary as ``host:port``: where updates and the agent's lookups go."""
        return f"{PRIMARY}:{self.port}"

    @property
    def resolver(self) -> str:
        """The recursive resolver as ``host:port``: where the CA's lookups go."""
        return f"{PRIMARY}:{self.resolver_port}"

    @property
    def folder(self) -> Path:
        if self.workdir is None:
            raise BindError("BIND is not running")
        return self.workdir

    def __enter__(self) -> BindServers:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Write the configurations, start the servers, return once every zone answers."""
        if self._processes:
            raise BindError("BIND is already running")
        if not os.access(NAMED, os.X_OK):
            raise BindError(f"{NAMED} is missing; run {INSTALL_SCRIPT} as root first")
        self.workdir = Path(tempfile.mkdtemp(prefix="bind-", dir="/tmp"))

        try:
            for role in ROLES:
                (self.workdir / role).mkdir(mode=0o700)
            self._write_zone_files()
            # The secondary's first transfers need the primary; the resolver forwards to it.
            self._launch("primary", self._write_config("primary", self._primary_zones()))
            self._await_ready("primary", PRIMARY, self.port)
            self._launch("secondary", self._write_config("secondary", self._secondary_zones()))
            self._launch("resolver", self._write_config("resolver", []))
            self._await_ready("secondary", SECONDARY, self.port)
            self._await_ready("resolver", PRIMARY, self.resolver_port)
        except BaseException:
            self.stop()
            raise

        logger.info("BIND ready: primary %s, resolver %s", self.server, self.resolver)

    def stop(self) -> None:
        for name, process in self._processes.items():
            _stop_process(name, process)
        self._processes.clear()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def add(self, zone: str, name: str, kind: str, value: str) -> None:
        """Add one record on the primary, signed with `key`; ``value`` in zone file form."""
        message = dns.update.UpdateMessage(zone)
        message.use_tsig(dns.tsig.Key(self.key.name, self.key.secret, self.key.algorithm))
        message.add(dns.name.from_text(name), 60, kind, value)
        response = dns.query.tcp(message, PRIMARY, timeout=QUERY_TIMEOUT, port=self.port)
        if response.rcode() != dns.rcode.NOERROR:
            raise BindError(f"update of {zone} refused: {dns.rcode.to_text(response.rcode())}")

    def txt(self, name: str, address: str = PRIMARY) -> set[str]:
        """The TXT values at ``name`` as one server has them (empty when there are none)."""
        query = dns.message.make_query(name, dns.rdatatype.TXT)
        query.flags &= ~dns.flags.RD
        response = dns.query.tcp(query, address, timeout=QUERY_TIMEOUT, port=self.port)
        values: set[str] = set()
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                values.update(b"".join(r.strings).decode() for r in rrset)
        return values

    def settled_txt(self, name: str, timeout: float = 5.0) -> set[str]:
        """The TXT values at ``name`` once the secondary has caught up with the primary.

        A change reaches the secondary a moment after the primary answers the update; this
        waits for that (with a bound) instead of guessing how long it takes.
        """
        deadline = time.monotonic() + timeout
        while True:
            primary = self.txt(name, PRIMARY)
            if self.txt(name, SECONDARY) == primary:
                return primary
            if time.monotonic() > deadline:
                raise BindError(f"the secondary did not catch up on {name} in {timeout:g} s")
            time.sleep(POLL_INTERVAL)

    def log_text(self, role: str) -> str:
        return (self.folder / f"{role}.log").read_text(encoding="utf-8", errors="replace")

    def _write_zone_files(self) -> None:
        for zone in self.zones:
            lines = [
                "$TTL 60",
                f"@ SOA ns1.{zone.name}. hostmaster.{zone.name}. 1 3600 600 86400 60",
                "@ NS ns1",
                "@ NS ns2",
                f"ns1 A {PRIMARY}",
                f"ns2 AAAA {SECONDARY}",
                *zone.records,
            ]
            text = "\n".join(lines) + "\n"
            (self.folder / "primary" / f"{zone.name}.zone").write_text(text, encoding="utf-8")

    def _primary_zones(self) -> list[str]:
        allowed = " ".join(f'key "{key.name}";' for key in self.keys)
        blocks = []
        for zone in self.zones:
            notify = (
                f"notify explicit; also-notify {{ {SECONDARY} port {self.port}; }};"
                if zone.notify
                else "notify no;"
            )
            update = f"allow-update {{ {allowed} }};" if zone.updatable else ""
            blocks.append(
                f'zone "{zone.name}" {{ type primary; file "{zone.name}.zone"; '
                f'journal "{zone.name}.jnl"; {update} {notify} }};'
            )
        return blocks

    def _secondary_zones(self) -> list[str]:
        # The primary's NOTIFY comes from ::1, not from the address listed in primaries.
        return [
            f'zone "{zone.name}" {{ type secondary; file "{zone.name}.copy"; '
            f"primaries {{ {PRIMARY} port {self.port}; }}; allow-notify {{ {SECONDARY}; }}; "
            "notify no; };"
            for zone in self.zones
        ]

    def _role_options(self, role: str) -> list[str]:
        if role == "primary":
            return [
                f"listen-on port {self.port} {{ {PRIMARY}; }};",
                "listen-on-v6 { none; };",
                # The secondary is told at once; BIND waits five seconds by default.
                "notify-delay 0;",
                "recursion no;",
            ]
        if role == "secondary":
            return [
                "listen-on { none; };",
                f"listen-on-v6 port {self.port} {{ {SECONDARY}; }};",
                "recursion no;",
            ]
        return [
            f"listen-on port {self.resolver_port} {{ {PRIMARY}; }};",
            "listen-on-v6 { none; };",
            "recursion yes;",
            "allow-recursion { 127.0.0.1; };",
            f"forwarders {{ {PRIMARY} port {self.port}; }};",
            "forward only;",
            # Every question reaches the primary: nothing is answered from an old look.
            "max-cache-ttl 0;",
            "max-ncache-ttl 0;",
        ]

    def _write_config(self, role: str, zones: list[str]) -> Path:
        folder = self.folder / role
        options = [
            f'directory "{folder}";',
            f'pid-file "{folder}/named.pid";',
            f'session-keyfile "{folder}/session.key";',
            f'managed-keys-directory "{folder}";',
            "dnssec-validation no;",
            f"allow-transfer {{ {PRIMARY}; {SECONDARY}; }};",
            *self._role_options(role),
        ]
        lines = [
            "options {",
            *(f"  {option}" for option in options),
            "};",
            "controls { };",
            *(key.statement() for key in self.keys),
            *zones,
        ]
        path = folder / "named.conf"
        _write_private(path, "\n".join(lines) + "\n")
        return path

    def _launch(self, role: str, config: Path) -> None:
        command = [str(NAMED), "-g", "-c", str(config)]
        if os.getuid() != 0:
            command += ["-u", str(os.getuid())]
        logger.debug("starting %s BIND: %s", role, command)
        with (self.folder / f"{role}.log").open("wb") as log:
            self._processes[role] = subprocess.Popen(
                command,
                cwd=self.folder / role,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _await_ready(self, role: str, address: str, port: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        waiting = [z.name for z in self.zones]
        while waiting:
            process = self._processes[role]
            if process.poll() is not None:
                raise self._startup_error(f"{role} exited with status {process.returncode}")
            if time.monotonic() > deadline:
                raise self._startup_error(f"{role} did not serve {', '.join(waiting)} in time")
            waiting = [name for name in waiting if not _answers_soa(address, port, name)]
            if waiting:
                time.sleep(POLL_INTERVAL)

    def _startup_error(self, reason: str) -> BindError:
        tails = [f"BIND did not start: {reason}"]
        for role in self._processes:
            lines = self.log_text(role).splitlines()[-LOG_TAIL_LINES:]
            tails.append(f"--- last lines of {role}.log ---\n" + "\n".join(lines))
        return BindError("\n".join(tails))


def _answers_soa(address: str, port: int, zone: str) -> bool:
    query = dns.message.make_query(zone, dns.rdatatype.SOA)
    # TCP first: a closed port refuses at once, where UDP would wait for the timeout.
    try:
        answers = [
            dns.query.tcp(query, address, timeout=QUERY_TIMEOUT, port=port),
            dns.query.udp(query, address, timeout=QUERY_TIMEOUT, port=port),
        ]
    except (OSError, dns.exception.DNSException):
        return False
    return all(a.rcode() == dns.rcode.NOERROR and a.answer for a in answers)


def _free_port(addresses: tuple[str, ...]) -> int:
    """A port free for UDP and TCP on each of ``addresses``."""
    for _attempt in range(50):
        sockets: list[socket.socket] = []
        try:
            port = 0
            for address in addresses:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    probe = socket.socket(family, kind)
                    sockets.append(probe)
                    probe.bind((address, port))
                    port = probe.getsockname()[1]
            return port
        except OSError:
            continue
        finally:
            for probe in sockets:
                probe.close()
    raise BindError(f"no port free on {' and '.join(addresses)} (is IPv6 loopback on?)")


def _stop_process(name: str, process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        logger.warning("%s BIND ignored SIGTERM for %g s; killing it", name, STOP_TIMEOUT)
        process.kill()
        process.wait()


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as output:
        output.write(text)
