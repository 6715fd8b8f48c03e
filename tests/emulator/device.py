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
login, upload, CA change, CSR and restart is recorded as an ``Event``.
"""

from __future__ import annotations

import base64
import datetime
import email.parser
import functools
import html
import json
import logging
import secrets
import socket
import socketserver
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vcs_acme.devices import Release, Role

from . import pki

logger = logging.getLogger(__name__)

KeyFormat = Literal["pkcs1", "pkcs8", "sec1"]
ALL_KEY_FORMATS: frozenset[KeyFormat] = frozenset(("pkcs1", "pkcs8", "sec1"))

KEY_LABEL = "Select the server private key file"
CERTIFICATE_LABEL = "Select the server certificate file"
CA_LABEL = "Select the file containing trusted CA certificates"
UPLOAD_BUTTON = "Upload server certificate data"
APPEND_BUTTON = "Append CA certificate"
RESET_BUTTON = "Reset to default CA certificate"
RESTART_BUTTON = "Restart"
LOGIN_BUTTON = "Login"

_FIRST_CSRF_RELEASE = Release.parse("X14.2")
_FIRST_ECDSA_RELEASE = Release.parse("X14.3")
_FIRST_SERVER_EKU_UPLOAD_RELEASE = Release.parse("X15.4")
_FIRST_SPLIT_STORES_RELEASE = Release.parse("X15.5")

# Fixed but deliberately unlike any obvious name, so a client cannot get by on guesses.
_FIXED_FIELDS = {
    KEY_LABEL: ("upload-1", "fvk93q_pk"),
    CERTIFICATE_LABEL: ("upload-2", "fvk93q_sc"),
    CA_LABEL: ("upload-3", "fvk93q_tc"),
}
_KEY_HEADERS: dict[bytes, KeyFormat] = {
    b"-----BEGIN RSA PRIVATE KEY-----": "pkcs1",
    b"-----BEGIN PRIVATE KEY-----": "pkcs8",
    b"-----BEGIN EC PRIVATE KEY-----": "sec1",
}
_ECDSA_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
_CSR_FIELDS = frozenset(
    {
        "Additional_FQDNS",
        "Country",
        "KeyLength",
        "DigestAlgorithm",
        "Province",
        "Locality",
        "Organization",
        "OrganizationalUnit",
        "Email",
    }
)
_CSR_KEY_LENGTHS = (2048, 4096)  # X15.4 guide, "Generating a CSR" (RSA on the device)
_CSR_DIGESTS: dict[str, Callable[[], hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_MAX_BODY_BYTES = 1 << 20
_LISTEN_QUEUE = 128  # bursts of parallel clients must queue, not meet a refused connection
_IO_TIMEOUT_SECONDS = 10.0
_SERVE_POLL_SECONDS = 0.02  # how quickly a stopped server notices; the cost of a stop


@dataclass(frozen=True)
class Event:
    """Something the device saw: a login, an upload, a trusted-list change, a CSR, a restart.

    ``kind`` is one of ``login``, ``server-certificate``, ``trusted-ca-append``,
    ``trusted-ca-reset``, ``csr`` and ``restart``; ``channel`` is ``web`` or ``rest``.
    ``detail`` holds the refusal message, or the SHA-256 fingerprint of an accepted server
    certificate. ``notes`` lists oddities the device tolerated (``key-file-without-final-newline``).
    For ``restart``, ``accepted`` tells whether the restart took.
    """

    kind: str
    accepted: bool
    channel: str
    detail: str = ""
    notes: tuple[str, ...] = ()


class _RefusalError(Exception):
    """The device turns a request down; the message is what it shows the user."""


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER form, lowercase hex without separators."""
    return certificate.fingerprint(hashes.SHA256()).hex()


# --- what the device accepts -----------------------------------------------------------------


@dataclass(frozen=True)
class _Acceptance:
    """The upload rules of one role and release, enforced independently of the agent's rules."""

    role: Role
    release: Release
    server_eku_upload: bool
    key_formats: frozenset[KeyFormat]

    def client_auth_required(self) -> bool:
        # MRA guide X15.0 "Requirements", Cisco docs 225482 / 225693, FN74362.
        if self.role is Role.VCS or self.release < _FIRST_SERVER_EKU_UPLOAD_RELEASE:
            return True
        if self.release >= _FIRST_SPLIT_STORES_RELEASE:
            return False
        return self.role is Role.EXPRESSWAY_C or not self.server_eku_upload

    def read_certificate(self, data: bytes) -> x509.Certificate:
        if not data.strip():
            raise _RefusalError("Select a server certificate file to upload")
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError as error:
            raise _RefusalError("The server certificate file is not a PEM certificate") from error
        if len(certificates) != 1:
            # The device presents only its own leaf; the chain belongs in the trusted list.
            raise _RefusalError(
                "The server certificate file must hold exactly one certificate; put"
                " intermediate and root certificates in the trusted CA list"
            )
        return certificates[0]

    def read_key(self, data: bytes) -> tuple[PrivateKeyTypes, tuple[str, ...]]:
        if b"ENCRYPTED" in data:
            raise _RefusalError(
                "The private key is password protected; upload it without a password"
            )
        lines = data.strip().splitlines()
        key_format = _KEY_HEADERS.get(lines[0].strip()) if lines else None
        if key_format is None:
            raise _RefusalError("The private key file is not a PEM private key")
        if key_format not in self.key_formats:
            raise _RefusalError(f"This system does not accept private keys in {key_format} format")
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            raise _RefusalError("The private key file could not be read") from error

        # X14.3 troubleshooting: a key file without a final newline breaks MRA later on.
        notes = () if data.endswith(b"\n") else ("key-file-without-final-newline",)
        return key, notes

    def judge(
        self, certificate: x509.Certificate, key: PrivateKeyTypes, now: datetime.datetime
    ) -> None:
        if _public_der(key.public_key()) != _public_der(certificate.public_key()):
            raise _RefusalError("The private key does not match the server certificate")
        self._judge_usages(certificate)
        self._judge_key_type(certificate)
        if any("*" in name for name in _certificate_names(certificate)):
            raise _RefusalError("Wildcard certificates are not supported")
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise _RefusalError("The server certificate is expired or not yet valid")

    def _judge_usages(self, certificate: x509.Certificate) -> None:
        try:
            usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            return
        if ExtendedKeyUsageOID.SERVER_AUTH not in usages:
            raise _RefusalError("The certificate lacks the TLS Web Server Authentication usage")
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages and self.client_auth_required():
            raise _RefusalError(
                "The certificate lacks the TLS Web Client Authentication usage, which this"
                " system needs for its server certificate"
            )

    def _judge_key_type(self, certificate: x509.Certificate) -> None:
        public_key = certificate.public_key()
        if isinstance(public_key, rsa.RSAPublicKey):
            if public_key.key_size < 2048:
                raise _RefusalError("RSA keys shorter than 2048 bits are not supported")
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            if self.release < _FIRST_ECDSA_RELEASE:
                raise _RefusalError("ECDSA keys are supported from X14.3")
            if public_key.curve.name not in _ECDSA_CURVES:
                raise _RefusalError(f"The elliptic curve {public_key.curve.name} is not supported")
        else:
            raise _RefusalError("The certificate's key type is not supported")

    def read_authorities(
        self, data: bytes, trusted: list[x509.Certificate]
    ) -> list[x509.Certificate]:
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError as error:
            raise _RefusalError("The file does not hold PEM certificates") from error

        seen = {(known.subject, known.issuer) for known in trusted}
        for certificate in certificates:
            subject = certificate.subject.rfc4514_string()
            try:
                certificate.extensions.get_extension_for_class(x509.BasicConstraints)
            except x509.ExtensionNotFound as error:
                raise _RefusalError(
                    f"The CA certificate '{subject}' has no BasicConstraints"
                ) from error
            if (certificate.subject, certificate.issuer) in seen:
                raise _RefusalError(
                    f"A certificate with the subject and issuer of '{subject}' is already"
                    " trusted; it must be deleted before it can be replaced"
                )
            seen.add((certificate.subject, certificate.issuer))
        return certificates


def _public_der(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _certificate_names(certificate: x509.Certificate) -> list[str]:
    names = [
        str(attribute.value)
        for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ]
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return names
    return names + alternative.value.get_values_for_type(x509.DNSName)


# --- the device's state ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    certificate: x509.Certificate
    key: PrivateKeyTypes


def _tls_context(slot: _Slot) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    key_pem = slot.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # The ssl module loads certificates only from files: they exist for the blink of the
    # load, in a private (0700) folder that is removed right after.
    with tempfile.TemporaryDirectory(prefix="vcs-emulator-") as folder:
        certificate_file = Path(folder) / "server.pem"
        key_file = Path(folder) / "server.key"
        certificate_file.write_bytes(pki.certificate_pem(slot.certificate))
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)
        context.load_cert_chain(certificate_file, key_file)
    return context


class _Device:
    """Certificates, trusted list, device-made key and event log; safe across threads."""

    def __init__(self, acceptance: _Acceptance, fqdn: str, identity: pki.Issued) -> None:
        self.acceptance = acceptance
        self.fqdn = fqdn
        self.boot = 0
        self.restarts_fail = False
        self.restart_downtime = 0.0
        self._down_until = 0.0
        self._lock = threading.RLock()
        self._active = _Slot(identity.certificate, identity.key)
        self._pending: _Slot | None = None
        self._context = _tls_context(self._active)
        self._factory = [pki.make_root(f"Factory Trusted CA {n}").certificate for n in (1, 2)]
        self._trusted = list(self._factory)
        self._csr: tuple[x509.CertificateSigningRequest, PrivateKeyTypes] | None = None
        self._events: list[Event] = []

    def record(self, event: Event) -> None:
        logger.info("device saw %s via %s: accepted=%s", event.kind, event.channel, event.accepted)
        with self._lock:
            self._events.append(event)

    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def tls_context(self) -> ssl.SSLContext:
        with self._lock:
            return self._context

    def is_down(self) -> bool:
        return time.monotonic() < self._down_until

    def active(self) -> x509.Certificate:
        with self._lock:
            return self._active.certificate

    def pending(self) -> x509.Certificate | None:
        with self._lock:
            return None if self._pending is None else self._pending.certificate

    def upload_server_certificate(
        self, certificate_pem: bytes, key_pem: bytes | None, channel: str
    ) -> None:
        try:
            certificate = self.acceptance.read_certificate(certificate_pem)
            key, notes = self._upload_key(key_pem)
            self.acceptance.judge(certificate, key, datetime.datetime.now(datetime.UTC))
        except _RefusalError as refusal:
            self.record(Event("server-certificate", False, channel, str(refusal)))
            raise

        with self._lock:
            self._pending = _Slot(certificate, key)
            if key_pem is None:
                self._csr = None
        self.record(Event("server-certificate", True, channel, fingerprint(certificate), notes))

    def _upload_key(self, key_pem: bytes | None) -> tuple[PrivateKeyTypes, tuple[str, ...]]:
        if key_pem:
            return self.acceptance.read_key(key_pem)
        with self._lock:
            if self._csr is None:
                raise _RefusalError(
                    "No private key was uploaded and no certificate signing request is in"
                    " progress on this system"
                )
            return self._csr[1], ()

    def append_trusted(self, data: bytes, channel: str) -> int:
        with self._lock:
            try:
                certificates = self.acceptance.read_authorities(data, self._trusted)
            except _RefusalError as refusal:
                self.record(Event("trusted-ca-append", False, channel, str(refusal)))
                raise
            self._trusted.extend(certificates)
        self.record(Event("trusted-ca-append", True, channel, f"{len(certificates)} appended"))
        return len(certificates)

    def reset_trusted(self, channel: str) -> None:
        with self._lock:
            self._trusted = list(self._factory)
        self.record(Event("trusted-ca-reset", True, channel))

    def trusted_pem(self) -> bytes:
        with self._lock:
            return pki.bundle_pem(self._trusted)

    def restart(self, channel: str) -> bool:
        with self._lock:
            self.boot += 1
            self._down_until = time.monotonic() + self.restart_downtime
            took = not self.restarts_fail
            if took and self._pending is not None:
                self._active, self._pending = self._pending, None
                self._context = _tls_context(self._active)
        self.record(Event("restart", took, channel))
        return took

    def generate_csr(self, fields: object) -> None:
        request = _CsrRequest.read(fields)
        key = rsa.generate_private_key(public_exponent=65537, key_size=request.key_length)
        csr = request.build(self.fqdn, key)
        with self._lock:
            self._csr = (csr, key)
        self.record(Event("csr", True, "rest", ", ".join(request.names(self.fqdn))))

    def csr_pem(self) -> bytes | None:
        with self._lock:
            if self._csr is None:
                return None
            return self._csr[0].public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class _CsrRequest:
    """The JSON body of ``POST /api/provisioning/certs/generate_csr``, checked."""

    key_length: int
    digest: str
    additional: tuple[str, ...]
    subject: tuple[tuple[x509.ObjectIdentifier, str], ...]

    @classmethod
    def read(cls, fields: object) -> _CsrRequest:
        if not isinstance(fields, dict):
            raise _RefusalError("The request body must be a JSON object")
        unknown = sorted(set(fields) - _CSR_FIELDS)
        if unknown:
            raise _RefusalError(f"Unknown fields: {', '.join(unknown)}")

        key_length = fields.get("KeyLength", 2048)
        if key_length not in _CSR_KEY_LENGTHS:
            raise _RefusalError(f"KeyLength must be one of {_CSR_KEY_LENGTHS}")
        digest = str(fields.get("DigestAlgorithm", "sha256")).lower().replace("-", "")
        if digest not in _CSR_DIGESTS:
            raise _RefusalError(f"DigestAlgorithm must be one of {sorted(_CSR_DIGESTS)}")
        return cls(key_length, digest, _additional_names(fields), _csr_subject(fields))

    def names(self, fqdn: str) -> list[str]:
        return [fqdn, *(name for name in self.additional if name != fqdn)]

    def build(self, fqdn: str, key: rsa.RSAPrivateKey) -> x509.CertificateSigningRequest:
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, fqdn)]
        attributes += [x509.NameAttribute(oid, value) for oid, value in self.subject]
        names = [x509.DNSName(name) for name in self.names(fqdn)]
        builder = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name(attributes))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
        )
        return builder.sign(key, _CSR_DIGESTS[self.digest]())


def _additional_names(fields: dict[Any, Any]) -> tuple[str, ...]:
    value = fields.get("Additional_FQDNS", [])
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise _RefusalError("Additional_FQDNS must be a list of names")
    cleaned = tuple(name.strip() for name in names if name.strip())
    if any("*" in name for name in cleaned):
        raise _RefusalError("Wildcard names are not supported")
    return cleaned


def _csr_subject(fields: dict[Any, Any]) -> tuple[tuple[x509.ObjectIdentifier, str], ...]:
    country = str(fields.get("Country", ""))
    if country and (len(country) != 2 or not country.isalpha()):
        raise _RefusalError("Country must be a two-letter code")
    oids = {
        "Country": NameOID.COUNTRY_NAME,
        "Province": NameOID.STATE_OR_PROVINCE_NAME,
        "Locality": NameOID.LOCALITY_NAME,
        "Organization": NameOID.ORGANIZATION_NAME,
        "OrganizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "Email": NameOID.EMAIL_ADDRESS,
    }
    values = ((oid, str(fields.get(key, "")).strip()) for key, oid in oids.items())
    return tuple((oid, value) for oid, value in values if value)


# --- requests and answers --------------------------------------------------------------------


class _BadFormError(Exception):
    """A request body that is not the form it claims to be."""


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes

    def cookies(self) -> dict[str, str]:
        jar = SimpleCookie(self.headers.get("Cookie", ""))
        return {name: morsel.value for name, morsel in jar.items()}

    def form(self) -> dict[str, bytes]:
        content_type = self.headers.get("Content-Type", "")
        kind = content_type.split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            return _parse_multipart(content_type, self.body)
        if kind == "application/x-www-form-urlencoded":
            try:
                text = self.body.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _BadFormError("the form is not UTF-8") from error
            pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
            # Reversed, so that of repeated fields the first one wins, as in multipart below.
            return {name: value.encode() for name, value in reversed(pairs)}
        raise _BadFormError("expected an urlencoded or multipart/form-data body")


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def _parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_boundary()
    if not boundary:
        raise _BadFormError("multipart body without a boundary")

    # Parsed by hand so the file contents stay byte-exact (a final newline matters).
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))
    if len(chunks) < 2 or chunks[0] or not chunks[-1].startswith(b"--"):
        raise _BadFormError("malformed multipart body")
    fields: dict[str, bytes] = {}
    for chunk in chunks[1:-1]:
        head, separator, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        part = email.parser.BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
        name = part.get_param("name", header="content-disposition")
        if not separator or not isinstance(name, str):
            raise _BadFormError("multipart part without a field name")
        fields.setdefault(name, content)
    return fields


def _json(status: int, document: object, *headers: tuple[str, str]) -> _Response:
    return _Response(status, json.dumps(document).encode(), "application/json", headers)


def _html(title: str, body: str, status: int = 200, *headers: tuple[str, str]) -> _Response:
    text = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
    return _Response(status, text.encode(), "text/html; charset=utf-8", headers)


def _message(text: str, ok: bool) -> str:
    return f'<p class="{"success" if ok else "error"}">{html.escape(text)}</p>\n'


def _error_page(status: int, text: str) -> _Response:
    return _html("Error", _message(text, False), status)


def _redirect(location: str, *headers: tuple[str, str]) -> _Response:
    return _Response(302, b"", "text/plain", (("Location", location), *headers))


@dataclass(frozen=True)
class _Credentials:
    username: str
    password: str = field(repr=False)

    def match(self, username: str, password: str) -> bool:
        user_ok = secrets.compare_digest(username.encode(), self.username.encode())
        return secrets.compare_digest(password.encode(), self.password.encode()) and user_ok


class _Faults:
    """Trouble switched on from a test; consumed per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.errors = 0
        self.error_status = 500
        self.drops = 0
        self.delay = 0.0
        self.refuse_logins = False

    def take(self) -> tuple[float, str | int | None]:
        """The delay for this request, and ``drop``, an error status, or None."""
        with self._lock:
            if self.drops:
                self.drops -= 1
                return self.delay, "drop"
            if self.errors:
                self.errors -= 1
                return self.delay, self.error_status
            return self.delay, None


# --- the web interface -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Page:
    path: str
    title: str
    section: str = ""
    file_labels: tuple[str, ...] = ()
    buttons: tuple[str, ...] = ()


_PAGES = {
    page.path: page
    for page in (
        _Page("/overview", "Overview"),
        _Page(
            "/servercertificate",
            "Server certificate",
            "Upload new certificate",
            (KEY_LABEL, CERTIFICATE_LABEL),
            (UPLOAD_BUTTON,),
        ),
        _Page(
            "/trustedcacertificate",
            "Trusted CA certificate",
            "Upload",
            (CA_LABEL,),
            (APPEND_BUTTON, RESET_BUTTON),
        ),
        _Page("/restart", "Restart options", "Restart", (), (RESTART_BUTTON,)),
    )
}
_CONTROL_FIELDS = frozenset({"sessionid", "submitbutton", "formbutton"})


@dataclass(frozen=True)
class _Render:
    """One rendering of a form page: its sessionid and, per label, the input's id and name."""

    sessionid: str
    inputs: dict[str, tuple[str, str]]


@dataclass
class _Session:
    login_token: str
    boot: int
    renders: dict[str, _Render] = field(default_factory=dict)


class _WebInterface:
    def __init__(
        self, device: _Device, credentials: _Credentials, faults: _Faults, randomize: bool
    ) -> None:
        self._device = device
        self._credentials = credentials
        self._faults = faults
        self._randomize = randomize
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}

    def handle(self, request: _Request) -> _Response:
        if request.path == "/login":
            return self._login(request)
        page = _PAGES.get(request.path)
        if page is None:
            return _error_page(404, "No such page")
        session = self._session_of(request)
        if session is None:
            return _redirect("/login")
        if request.method == "GET":
            return self._show(page, session, request)
        return self._submit(page, session, request)

    def _login(self, request: _Request) -> _Response:
        if request.method == "GET":
            return _html("Login", _login_form())
        try:
            form = {name: value.decode() for name, value in request.form().items()}
        except (_BadFormError, UnicodeDecodeError):
            return _html("Login", _message("Login failed", False) + _login_form())

        buttons_ok = form.get("submitbutton") == form.get("formbutton") == LOGIN_BUTTON
        credentials_ok = self._credentials.match(form.get("username", ""), form.get("password", ""))
        accepted = buttons_ok and credentials_ok and not self._faults.refuse_logins
        self._device.record(Event("login", accepted, "web"))
        if not accepted:
            return _html("Login", _message("Login failed", False) + _login_form())
        return self._open_session()

    def _open_session(self) -> _Response:
        sharpid, token = secrets.token_urlsafe(24), secrets.token_urlsafe(16)
        with self._lock:
            self._sessions[sharpid] = _Session(token, self._device.boot)
        return _redirect(
            "/overview",
            ("Set-Cookie", f"SHARPID={sharpid}; Path=/; Secure; HttpOnly"),
            ("Set-Cookie", f"tandberg_login={token}; Path=/; Secure"),
        )

    def _session_of(self, request: _Request) -> _Session | None:
        cookies = request.cookies()
        with self._lock:
            session = self._sessions.get(cookies.get("SHARPID", ""))
        if session is None or session.boot != self._device.boot:
            return None  # a restart ends every session
        token = cookies.get("tandberg_login", "")
        return session if secrets.compare_digest(token, session.login_token) else None

    def _show(self, page: _Page, session: _Session, request: _Request) -> _Response:
        if page.path == "/trustedcacertificate" and request.query.get("show") == ["pem"]:
            return _Response(200, self._device.trusted_pem(), "application/x-pem-file")
        return self._render(page, session, "")

    def _render(self, page: _Page, session: _Session, message: str) -> _Response:
        render = _Render(secrets.token_hex(16), self._inputs(page))
        with self._lock:
            session.renders[page.path] = render
        return _html(page.title, message + self._content(page) + _form(page, render))

    def _inputs(self, page: _Page) -> dict[str, tuple[str, str]]:
        if not self._randomize:
            return {label: _FIXED_FIELDS[label] for label in page.file_labels}
        return {
            label: (f"i{secrets.token_hex(4)}", f"f{secrets.token_hex(6)}")
            for label in page.file_labels
        }

    def _content(self, page: _Page) -> str:
        if page.path == "/overview":
            acceptance = self._device.acceptance
            return _system_information(acceptance.role, acceptance.release, self._device.fqdn)
        if page.path == "/trustedcacertificate":
            return '<p><a href="/trustedcacertificate?show=pem">Show all (PEM file)</a></p>\n'
        return ""

    def _submit(self, page: _Page, session: _Session, request: _Request) -> _Response:
        try:
            form = request.form()
        except _BadFormError as error:
            return _error_page(400, str(error))
        with self._lock:
            render = session.renders.pop(page.path, None)  # every sessionid serves one POST
        problem = _form_problem(page, render, form)
        if problem or render is None:
            return _error_page(403, problem)

        button = form["submitbutton"].decode()
        if button == RESTART_BUTTON:
            self._device.restart("web")
            return _html("Restarting", _message("The system is restarting", True))
        files = {label: form.get(render.inputs[label][1], b"") for label in page.file_labels}
        try:
            outcome = self._act(button, files)
        except _RefusalError as refusal:
            return self._render(page, session, _message(str(refusal), False))
        return self._render(page, session, _message(outcome, True))

    def _act(self, button: str, files: dict[str, bytes]) -> str:
        if button == UPLOAD_BUTTON:
            key = files[KEY_LABEL] or None
            self._device.upload_server_certificate(files[CERTIFICATE_LABEL], key, "web")
            return "Server certificate data uploaded; restart the system to use it"
        if button == APPEND_BUTTON:
            count = self._device.append_trusted(files[CA_LABEL], "web")
            return f"{count} CA certificate(s) appended to the trusted list"
        self._device.reset_trusted("web")
        return "The trusted CA list is back to its default"


def _form_problem(page: _Page, render: _Render | None, form: dict[str, bytes]) -> str:
    sent = form.get("sessionid", b"").decode("latin-1")
    if render is None or not sent or not secrets.compare_digest(sent, render.sessionid):
        return "The session ID of this form is missing or out of date; reload the page"
    button = form.get("submitbutton", b"").decode("latin-1")
    if button not in page.buttons:
        return "The form names no button of this page"
    if form.get("formbutton", b"").decode("latin-1") != button:
        return "The formbutton field must repeat the button pressed"
    unexpected = set(form) - _CONTROL_FIELDS - {name for _, name in render.inputs.values()}
    if unexpected:
        return f"Unexpected form fields: {', '.join(sorted(unexpected))}"
    return ""


def _login_form() -> str:
    return (
        '<form method="post" action="/login">\n'
        '<p><label for="username">Username</label>'
        ' <input type="text" id="username" name="username"></p>\n'
        '<p><label for="password">Password</label>'
        ' <input type="password" id="password" name="password"></p>\n'
        '<input type="hidden" name="formbutton" value="Login">\n'
        '<input type="submit" name="submitbutton" value="Login">\n</form>\n'
    )


def _form(page: _Page, render: _Render) -> str:
    lines = [
        f'<form method="post" action="{page.path}" enctype="multipart/form-data">',
        f'<input type="hidden" name="sessionid" value="{render.sessionid}">',
    ]
    if page.section:
        lines.append(f"<h2>{html.escape(page.section)}</h2>")
    for label, (input_id, name) in render.inputs.items():
        lines.append(
            f'<p><label for="{input_id}">{html.escape(label)}</label>'
            f' <input type="file" id="{input_id}" name="{name}"></p>'
        )
    for button in page.buttons:
        lines.append(f'<input type="submit" name="submitbutton" value="{html.escape(button)}">')
    return "\n".join([*lines, "</form>"])


def _system_information(role: Role, release: Release, fqdn: str) -> str:
    rows = (("System host name", fqdn), ("Product", role.label), ("Software version", release))
    cells = "".join(
        f"<tr><th>{name}</th><td>{html.escape(str(value))}</td></tr>\n" for name, value in rows
    )
    return f'<h2>System information</h2>\n<table id="systeminformation">\n{cells}</table>\n'


# --- the REST API ----------------------------------------------------------------------------

_RAML = """#%RAML 1.0
title: Emulated appliance REST API (certificate subset)
baseUri: https://{host}/api
/provisioning/certs/server: {post: {description: upload the certificate for the CSR key}}
/provisioning/certs/root: {get: {}, post: {description: append trusted CA certificates}}
/provisioning/certs/generate_csr: {get: {}, post: {}}
/provisioning/restart: {post: {}}
/status/common/systeminformation: {get: {}}
"""


class _RestInterface:
    def __init__(self, device: _Device, credentials: _Credentials) -> None:
        self._device = device
        self._credentials = credentials
        self._routes: dict[tuple[str, str], Callable[[_Request], _Response]] = {
            ("GET", "/api/raml"): lambda _: _Response(200, _RAML.encode(), "application/raml+yaml"),
            # Assumed: the reference knows only that the version is under /api/status/common/.
            ("GET", "/api/status/common/systeminformation"): self._system_information,
            ("POST", "/api/provisioning/certs/server"): self._upload_server,
            ("GET", "/api/provisioning/certs/root"): self._trusted,
            ("POST", "/api/provisioning/certs/root"): self._append_trusted,
            ("GET", "/api/provisioning/certs/generate_csr"): self._csr,
            ("POST", "/api/provisioning/certs/generate_csr"): self._generate_csr,
            ("POST", "/api/provisioning/restart"): self._restart,
        }

    def handle(self, request: _Request) -> _Response:
        if not self._authorized(request):
            return _json(401, {"Message": "Authentication required"}, _BASIC_CHALLENGE)
        csrf_needed = self._device.acceptance.release >= _FIRST_CSRF_RELEASE
        if request.method == "POST" and csrf_needed and "X-CSRF-Header" not in request.headers:
            return _json(403, {"Message": "Missing X-CSRF-Header"})
        route = self._routes.get((request.method, request.path))
        if route is None:
            return _json(404, {"Message": "No such resource"})
        try:
            return route(request)
        except _RefusalError as refusal:
            return _json(400, {"Message": str(refusal)})

    def _authorized(self, request: _Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return self._credentials.match(username, password)

    def _system_information(self, _: _Request) -> _Response:
        acceptance = self._device.acceptance
        return _json(
            200,
            {
                "SoftwareVersion": str(acceptance.release),
                "ProductType": acceptance.role.label,
                "SystemHostName": self._device.fqdn,
            },
        )

    def _upload_server(self, request: _Request) -> _Response:
        self._device.upload_server_certificate(_multipart_file(request), None, "rest")
        return _json(200, {"Message": "Server certificate uploaded; restart to use it"})

    def _trusted(self, _: _Request) -> _Response:
        return _Response(200, self._device.trusted_pem(), "application/x-pem-file")

    def _append_trusted(self, request: _Request) -> _Response:
        count = self._device.append_trusted(_multipart_file(request), "rest")
        return _json(200, {"Message": f"{count} CA certificate(s) appended"})

    def _csr(self, _: _Request) -> _Response:
        csr = self._device.csr_pem()
        if csr is None:
            return _json(404, {"Message": "No certificate signing request in progress"})
        return _json(200, {"CSR": csr.decode()})

    def _generate_csr(self, request: _Request) -> _Response:
        try:
            fields = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as error:
            raise _RefusalError("The request body is not JSON") from error
        self._device.generate_csr(fields)
        return _json(200, {"Message": "Certificate signing request generated"})

    def _restart(self, _: _Request) -> _Response:
        self._device.restart("rest")
        return _json(200, {"Message": "Restarting"})


_BASIC_CHALLENGE = ("WWW-Authenticate", 'Basic realm="Administrator"')


def _multipart_file(request: _Request) -> bytes:
    try:
        form = request.form()
    except _BadFormError as error:
        raise _RefusalError(f"Send the certificate as multipart field 'file' ({error})") from error
    if "file" not in form:
        raise _RefusalError("Send the certificate as multipart field 'file'")
    return form["file"]


def _injected_error(path: str, status: int) -> _Response:
    if path.startswith("/api/"):
        return _json(status, {"Message": "Internal error"})
    return _error_page(status, "Internal error")


# --- transport -------------------------------------------------------------------------------


def _accept_tls(listener: socket.socket, device: _Device) -> tuple[socket.socket, Any]:
    connection, address = listener.accept()
    if device.is_down():
        connection.close()
        raise OSError("the device is restarting")  # socketserver drops the connection
    # The context is fetched per connection, so a restart shows on the next handshake.
    wrapped = device.tls_context().wrap_socket(
        connection, server_side=True, do_handshake_on_connect=False
    )
    return wrapped, address


def _handshake(connection: socket.socket) -> None:
    # Done in the worker thread: a slow client must not stall the accepting loop.
    if not isinstance(connection, ssl.SSLSocket):
        raise TypeError("expected a TLS connection")
    connection.settimeout(_IO_TIMEOUT_SECONDS)
    connection.do_handshake()


class _HttpsServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = _LISTEN_QUEUE

    def __init__(self, emulator: DeviceEmulator) -> None:
        self.emulator = emulator
        super().__init__((emulator.host, 0), _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer's reverse lookup of the address; the name is known.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.emulator.host, self.server_address[1]

    def get_request(self) -> tuple[socket.socket, Any]:
        return _accept_tls(self.socket, self.emulator._device)

    def finish_request(self, request: Any, client_address: Any) -> None:
        _handshake(request)
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s ended in an error", client_address, exc_info=True)


class _VerifyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = _LISTEN_QUEUE

    def __init__(self, emulator: DeviceEmulator) -> None:
        self.emulator = emulator
        super().__init__((emulator.host, 0), socketserver.BaseRequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        return _accept_tls(self.socket, self.emulator._device)

    def finish_request(self, request: Any, client_address: Any) -> None:
        _handshake(request)  # the handshake is the whole conversation

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("verify connection from %s ended in an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _HttpsServer
    timeout = _IO_TIMEOUT_SECONDS
    server_version = "DeviceEmulator"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s: " + format, self.client_address[0], *args)

    def _serve(self) -> None:
        emulator = self.server.emulator
        delay, fault = emulator._faults.take()
        if delay:
            emulator._stopping.wait(delay)
        if fault == "drop":
            self.close_connection = True  # no answer at all
            return

        body = self._body()
        if body is None:
            return
        if isinstance(fault, int):
            self._send(_injected_error(self.path, fault))
            return
        self._send(self._answer(body))

    def _answer(self, body: bytes) -> _Response:
        try:
            return self.server.emulator._dispatch(self._request(body))
        except Exception:
            # A fault of the emulator itself: loud in the log, a 500 on the wire.
            logger.exception("emulator failed on %s %s", self.command, self.path)
            return _injected_error(self.path, 500)

    def _body(self) -> bytes | None:
        """The request body, or None after answering a request whose length is unusable."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(_error_page(411, "Send the body with a Content-Length"))
            return None
        length = self.headers.get("Content-Length", "0" if self.command == "GET" else "")
        if not length.isdigit():
            self._send(_error_page(411, "Send the body with a Content-Length"))
            return None
        if int(length) > _MAX_BODY_BYTES:
            self._send(_error_page(413, "The body is too large"))
            return None
        return self.rfile.read(int(length))

    def _request(self, body: bytes) -> _Request:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        return _Request(self.command, url.path, query, self.headers, body)

    def _send(self, response: _Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)


# --- the public face -------------------------------------------------------------------------


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
    ) -> None:
        self.role = role if isinstance(role, Role) else Role(role)
        self.release = release if isinstance(release, Release) else Release.parse(release)
        self.host = "127.0.0.1"
        self.https_port = 0
        self.verify_ports: list[int] = []
        self._verify_port_count = verify_ports

        authority = pki.make_root("Device Emulator Interface CA")
        identity = pki.make_leaf(
            authority, ["localhost", fqdn], ip_addresses=[self.host], key=_interface_key()
        )
        self.ca_pem = authority.certificate_pem
        acceptance = _Acceptance(self.role, self.release, server_eku_upload, frozenset(key_formats))
        self._device = _Device(acceptance, fqdn, identity)
        self._faults = _Faults()
        credentials = _Credentials(username, password)
        self._web = _WebInterface(self._device, credentials, self._faults, randomize_field_names)
        self._rest = _RestInterface(self._device, credentials)
        self._stopping = threading.Event()
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
            https = _HttpsServer(self)
            self.https_port = https.server_address[1]
            self._serve(https)
            for _ in range(self._verify_port_count):
                verify = _VerifyServer(self)
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
            kwargs={"poll_interval": _SERVE_POLL_SECONDS},
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
            thread.join(timeout=_IO_TIMEOUT_SECONDS)
        self._servers.clear()
        self._threads.clear()

    def _dispatch(self, request: _Request) -> _Response:
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

    def events_of(self, kind: str) -> list[Event]:
        return [event for event in self._device.events() if event.kind == kind]

    @property
    def ca_reset_pressed(self) -> bool:
        return bool(self.events_of("trusted-ca-reset"))

    # faults

    def fail_next_requests(self, count: int, status: int = 500) -> None:
        """Answer the next ``count`` HTTPS requests with ``status`` and an error page."""
        with self._faults._lock:
            self._faults.errors, self._faults.error_status = count, status

    def drop_next_connections(self, count: int) -> None:
        """Read the next ``count`` HTTPS requests and hang up without an answer."""
        with self._faults._lock:
            self._faults.drops = count

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
        """After each restart, refuse every connection for this long (default 0)."""
        self._device.restart_downtime = seconds
