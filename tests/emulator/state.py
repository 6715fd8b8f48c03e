"""The device's state: active and pending certificates, trusted list, CSR key, event log."""

from __future__ import annotations

import datetime
import logging
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from . import pki
from .acceptance import Acceptance, RefusalError
from .csr import CsrRequest

logger = logging.getLogger(__name__)


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


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER form, lowercase hex without separators."""
    return certificate.fingerprint(hashes.SHA256()).hex()


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


class Device:
    """Certificates, trusted list, device-made key and event log; safe across threads."""

    def __init__(self, acceptance: Acceptance, fqdn: str, identity: pki.Issued) -> None:
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
        except RefusalError as refusal:
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
                raise RefusalError(
                    "No private key was uploaded and no certificate signing request is in"
                    " progress on this system"
                )
            return self._csr[1], ()

    def append_trusted(self, data: bytes, channel: str) -> int:
        with self._lock:
            try:
                certificates = self.acceptance.read_authorities(data, self._trusted)
            except RefusalError as refusal:
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
        request = CsrRequest.read(fields)
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
