"""A strict stand-in for one Cisco VCS / Expressway appliance, served over real HTTPS.

It follows the device reference: what is documented there it enforces, and where the
reference marks a fact as assumed the emulator says so beside the code. It never accepts
what a real device would refuse; a client that passes here has done things the device's way.

What it serves (all on 127.0.0.1, HTTP/1.0, one TLS listener per port):

Web interface
    ``GET/POST /login`` (fields ``username``, ``password``, ``submitbutton=Login``,
    ``formbutton=Login``; success sets the cookies ``SHARPID`` and ``tandberg_login`` and
    redirects to ``/overview``). The form pages ``/overview``, ``/servercertificate``,
    ``/trustedcacertificate`` and ``/restart`` need both cookies (else a redirect to
    ``/login``) and carry ``<input type="hidden" name="sessionid">``, fresh per render. A POST
    must return the sessionid of the latest render of that page (single use), name its button
    in ``submitbutton`` and repeat it in ``formbutton``, and send no field the page did not
    offer; otherwise the answer is 403 with an error page. File inputs are found through
    ``<label for=...>``: their names are fixed odd strings, or random per render with
    ``randomize_field_names=True``. Outcomes of a submitted form are shown on the re-rendered
    page as ``<p class="success">…</p>`` or ``<p class="error">…</p>`` (status 200).
    ``/trustedcacertificate?show=pem`` ("Show all (PEM file)") returns the trusted list.
    The overview has a table whose rows read ``<tr><th>Software version</th><td>X14.3.2</td>``.
    Paths other than ``/login`` and ``/trustedcacertificate`` are assumed, as are the
    outcome markers and the overview table layout.

REST API (``/api/…``, HTTP Basic, JSON answers ``{"Message": …}``)
    From X14.2 every POST needs an ``X-CSRF-Header`` header (else 403).
    ``POST /api/provisioning/certs/server`` (multipart ``file``: a certificate for the key the
    device made), ``GET``/``POST /api/provisioning/certs/root`` (the trusted list as PEM; append
    from multipart ``file``), ``GET``/``POST /api/provisioning/certs/generate_csr`` (GET answers
    ``{"CSR": pem}`` or 404), ``POST /api/provisioning/restart``, ``GET /api/raml`` and
    ``GET /api/status/common/systeminformation`` (``{"SoftwareVersion": …}``; the resource name
    and its keys are assumed).

Verify ports
    Plain TLS listeners (stand-ins for SIP TLS on 5061) that complete a handshake with the
    active certificate and hang up.

An uploaded server certificate goes to a pending slot; only a restart makes it the one the
HTTPS port and the verify ports present. Faults can be switched on at run time, and every
login, upload, CA change, CSR and restart is recorded as an ``Event``; every request that
reaches the interfaces is kept, with its header names, in ``requests_seen``.

The parts live beside this module: ``acceptance`` (upload rules), ``csr``, ``state``,
``messages``, ``web``, ``rest`` and ``transport``. This module wires them together and
re-exports the names tests use.
"""

from __future__ import annotations

import functools
import logging
import socketserver
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

from vcs_acme.devices import Release, Role

from . import pki
from .acceptance import ALL_KEY_FORMATS, Acceptance, KeyFormat
from .messages import Credentials, Faults, Request, Response
from .rest import RestInterface
from .state import Device, Event, fingerprint
from .transport import IO_TIMEOUT_SECONDS, SERVE_POLL_SECONDS, HttpsServer, VerifyServer, Wiring
from .web import (
    APPEND_BUTTON,
    CA_LABEL,
    CERTIFICATE_LABEL,
    KEY_LABEL,
    LOGIN_BUTTON,
    RESET_BUTTON,
    RESTART_BUTTON,
    UPLOAD_BUTTON,
    WebInterface,
)

__all__ = [
    "ALL_KEY_FORMATS",
    "APPEND_BUTTON",
    "CA_LABEL",
    "CERTIFICATE_LABEL",
    "KEY_LABEL",
    "LOGIN_BUTTON",
    "RESET_BUTTON",
    "RESTART_BUTTON",
    "UPLOAD_BUTTON",
    "DeviceEmulator",
    "Event",
    "KeyFormat",
    "Seen",
    "fingerprint",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seen:
    """One request as it reached the device: method, path and header names (lowercase)."""

    method: str
    path: str
    header_names: frozenset[str]


@functools.cache
def _interface_key() -> pki.PrivateKey:
    # RSA, like the factory certificate of a real device; made once per test session
    # because RSA key generation dominates an emulator's start-up time.
    return pki.make_key("rsa2048")


class DeviceEmulator:
    """One emulated appliance. Use as a context manager, or call ``start()`` and ``stop()``.

    ``role`` and ``release`` take the same values as the agent's device profile
    (``"expressway-c"``, ``"X14.3.2"``). ``key_formats`` lists the private key PEM formats
    the web upload accepts (default: PKCS#1, PKCS#8 and SEC1, since the real answer is not
    documented). ``verify_ports`` is how many extra TLS listeners to open (default 1).
    ``fqdn`` is the device's own name, used in CSRs it makes (default device.example.test).
    The HTTPS interface starts with a certificate from the emulator's own CA, ``ca_pem``.
    """

    def __init__(
        self,
        role: Role | str,
        release: Release | str,
        username: str,
        password: str,
        *,
        server_eku_upload: bool = False,
        randomize_field_names: bool = False,
        key_formats: Iterable[KeyFormat] = ALL_KEY_FORMATS,
        verify_ports: int = 1,
        fqdn: str = "device.example.test",
        ports: tuple[int, ...] = (),
    ) -> None:
        self.role = role if isinstance(role, Role) else Role(role)
        self.release = release if isinstance(release, Release) else Release.parse(release)
        self.host = "127.0.0.1"
        self.https_port = 0
        self.verify_ports: list[int] = []
        self._verify_port_count = verify_ports
        # Fixed ports (the HTTPS port, then the verify ports) for the demo; tests use free ones.
        self._fixed_ports = ports

        authority = pki.make_root("Device Emulator Interface CA")
        identity = pki.make_leaf(
            authority, ["localhost", fqdn], ip_addresses=[self.host], key=_interface_key()
        )
        self.ca_pem = authority.certificate_pem
        acceptance = Acceptance(self.role, self.release, server_eku_upload, frozenset(key_formats))
        self._device = Device(acceptance, fqdn, identity)
        self._faults = Faults()
        self._stopping = threading.Event()
        credentials = Credentials(username, password)
        self._web = WebInterface(self._device, credentials, self._faults, randomize_field_names)
        self._rest = RestInterface(self._device, credentials)
        self._wiring = Wiring(self.host, self._device, self._faults, self._stopping, self._dispatch)
        self._journal: list[Seen] = []
        self._journal_lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> DeviceEmulator:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> DeviceEmulator:
        """Open the HTTPS port and the verify ports; they accept connections on return."""
        if self._servers or self._stopping.is_set():
            raise RuntimeError("an emulator starts once")
        try:
            fixed = [*self._fixed_ports, *([0] * (self._verify_port_count + 1))]
            https = HttpsServer(self._wiring, fixed[0])
            self.https_port = https.server_address[1]
            self._serve(https)
            for index in range(self._verify_port_count):
                verify = VerifyServer(self._wiring, fixed[index + 1])
                self.verify_ports.append(verify.server_address[1])
                self._serve(verify)
        except OSError:
            self.stop()
            raise
        logger.info("emulated %s %s on port %d", self.role.label, self.release, self.https_port)
        return self

    def _serve(self, server: socketserver.BaseServer) -> None:
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": SERVE_POLL_SECONDS},
            name=f"device-emulator-{len(self._threads)}",
            daemon=True,
        )
        thread.start()
        self._servers.append(server)
        self._threads.append(thread)

    def stop(self) -> None:
        """Close every port; requests under way may be cut off."""
        self._stopping.set()
        # Each shutdown waits for its loop's next poll; waiting for all at once costs one.
        closers = [threading.Thread(target=server.shutdown) for server in self._servers]
        for closer in closers:
            closer.start()
        for closer, server, thread in zip(closers, self._servers, self._threads, strict=True):
            closer.join()
            server.server_close()
            thread.join(timeout=IO_TIMEOUT_SECONDS)
        self._servers.clear()
        self._threads.clear()

    def _dispatch(self, request: Request) -> Response:
        seen = Seen(
            request.method, request.path, frozenset(name.lower() for name in request.headers)
        )
        with self._journal_lock:
            self._journal.append(seen)
        if request.path.startswith("/api/"):
            return self._rest.handle(request)
        return self._web.handle(request)

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.https_port}"

    # what a test can look at

    def presented_fingerprint(self) -> str:
        """SHA-256 (hex) of the certificate that new TLS handshakes present."""
        return fingerprint(self._device.active())

    def pending_fingerprint(self) -> str | None:
        """SHA-256 (hex) of the uploaded certificate waiting for a restart, if any."""
        pending = self._device.pending()
        return None if pending is None else fingerprint(pending)

    def trusted_ca_pem(self) -> bytes:
        return self._device.trusted_pem()

    def csr_pem(self) -> bytes | None:
        """The CSR the device made (REST ``generate_csr``), if one is in progress."""
        return self._device.csr_pem()

    @property
    def events(self) -> list[Event]:
        return self._device.events()

    @property
    def requests_seen(self) -> list[Seen]:
        """Every request that reached the interfaces (not those cut off by a fault), in order."""
        with self._journal_lock:
            return list(self._journal)

    def events_of(self, kind: str) -> list[Event]:
        return [event for event in self._device.events() if event.kind == kind]

    @property
    def ca_reset_pressed(self) -> bool:
        return bool(self.events_of("trusted-ca-reset"))

    # faults

    def fail_next_requests(self, count: int, status: int = 500) -> None:
        """Answer the next ``count`` HTTPS requests with ``status`` and an error page."""
        self._faults.fail_next(count, status)

    def drop_next_connections(self, count: int) -> None:
        """Read the next ``count`` HTTPS requests and hang up without an answer."""
        self._faults.drop_next(count)

    def set_delay(self, seconds: float) -> None:
        """Wait this long before answering every HTTPS request (0 to stop)."""
        self._faults.delay = seconds

    def refuse_logins(self, refuse: bool = True) -> None:
        """Turn every web login down, even with the right password."""
        self._faults.refuse_logins = refuse

    def break_restarts(self, broken: bool = True) -> None:
        """Restarts happen (sessions end) but the pending certificate is never activated."""
        self._device.restarts_fail = broken

    def set_restart_downtime(self, seconds: float) -> None:
        """After each restart, hang up mid-handshake on every connection this long (default 0)."""
        self._device.restart_downtime = seconds
