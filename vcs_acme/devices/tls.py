"""TLS towards devices: what a port presents, and sessions that trust only what was configured.

Two different questions are asked over TLS:

* *Which certificate does this port present?* After a deploy, the presented leaf's SHA-256
  is compared with the version just uploaded. That comparison is the check: the handshake
  is completed without chain validation on purpose, because a device still presenting an
  old or foreign certificate must be reported with that certificate's fingerprint, not as a
  TLS error.
* *Is this the device we mean to log in to?* Management sessions (web, REST) trust the CA
  file or the pinned fingerprint configured for the device, or the system store; once the
  device presents a version of this lineage, that exact certificate is pinned instead, since
  the agent put it there. ``tls_verify = false`` is honoured only as the user's explicit,
  per-device choice and is logged as a warning on every use.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import ssl
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from vcs_acme.config_devices import DeviceSettings
from vcs_acme.devices.access import DeviceError

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10.0


def is_trust_failure(error: BaseException) -> bool:
    """Whether a TLS error means "this is not the certificate we trust".

    Only that is permanent. A device that hangs up mid-handshake (as it does while it
    restarts) also surfaces as an SSL error, and may well answer a minute later.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if "Fingerprints did not match" in str(current):
            return True
        nested = current.args[0] if current.args else None
        current = current.__cause__ or current.__context__
        if current is None and isinstance(nested, BaseException):
            current = nested
        if current is None and hasattr(nested, "reason"):
            reason = getattr(nested, "reason", None)
            current = reason if isinstance(reason, BaseException) else None
    return False


def colon_hex(digest: bytes) -> str:
    return digest.hex(":")


def presented_certificate(host: str, port: int, timeout: float = CONNECT_TIMEOUT_SECONDS) -> bytes:
    """The DER leaf a TLS port presents (see the module docstring for why unvalidated)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the fingerprint comparison is the check
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as wrapped,
    ):
        der = wrapped.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError(f"{host}:{port} presented no certificate")
    return der


def presented_fingerprint(host: str, port: int, timeout: float = CONNECT_TIMEOUT_SECONDS) -> str:
    return colon_hex(hashlib.sha256(presented_certificate(host, port, timeout)).digest())


class _PinnedAdapter(HTTPAdapter):
    """Accept exactly one certificate, by its SHA-256 (urllib3 checks it on every connect)."""

    def __init__(self, sha256_hex: str) -> None:
        self._pin = sha256_hex.replace(":", "")
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["assert_fingerprint"] = self._pin
        super().init_poolmanager(*args, **kwargs)


class DeviceSession(requests.Session):
    """A session for one device's management interface with its trust fixed at creation.

    The environment is not consulted (``trust_env``), so neither ``REQUESTS_CA_BUNDLE`` nor a
    proxy variable meant for the internet can change how a device inside the network is
    reached or trusted.
    """

    def __init__(self, verify: bool | str, timeout: float) -> None:
        super().__init__()
        self.trust_env = False
        self._verify = verify
        self._timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs["verify"] = self._verify
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, *args, **kwargs)


def management_session(
    device: DeviceSettings, known: Collection[str], timeout: float = 30.0
) -> DeviceSession:
    """A session that trusts what is configured for ``device``, or a version it presents.

    ``known`` holds the fingerprints (colon hex) of this lineage's versions.
    """
    base = f"https://{device.host}:{device.port}"
    pin = _pin_for(device, known)
    if pin is not None:
        session = DeviceSession(False, timeout)  # urllib3 checks the pin instead of a chain
        session.mount(base, _PinnedAdapter(pin))
        return session
    if not device.tls.verify:
        logger.warning(
            "device %s: TLS certificate not verified (tls_verify = false in the configuration)",
            device.name,
        )
        return DeviceSession(False, timeout)
    return DeviceSession(str(device.tls.ca_file) if device.tls.ca_file else True, timeout)


def _pin_for(device: DeviceSettings, known: Collection[str]) -> str | None:
    if not known and device.tls.fingerprint is None:
        return None
    try:
        seen = presented_fingerprint(device.host, device.port)
    except OSError:
        return device.tls.fingerprint  # the real connection will report the failure
    if seen in known:
        logger.debug("device %s presents a version of this lineage: pinning it", device.name)
        return seen
    if device.tls.fingerprint is not None:
        return device.tls.fingerprint
    return None


def send(
    session: requests.Session, device: str, method: str, url: str, **kwargs: Any
) -> requests.Response:
    """One request to a device's management interface, its failures as ``DeviceError``.

    Distrust is permanent (the configuration must change); a cut handshake, a refused or
    timed-out connection are transient. HTTP status codes are the caller's to judge.
    """
    path = urlsplit(url).path or "/"
    try:
        return session.request(method, url, **kwargs)
    except requests.exceptions.SSLError as error:
        if not is_trust_failure(error):
            raise DeviceError(
                device, f"{method} {path}: TLS handshake cut off", transient=True
            ) from None
        raise DeviceError(
            device, f"TLS to {url} not trusted ({error}); check tls_ca_file or tls_fingerprint"
        ) from None
    except requests.RequestException as error:
        raise DeviceError(
            device, f"{method} {path} failed: {type(error).__name__}", transient=True
        ) from None
