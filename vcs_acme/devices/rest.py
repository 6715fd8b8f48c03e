"""The REST API (Expressway X8.x/X12.x and later), with the key kept on the device.

HTTP Basic with an administrator account and JSON bodies; from X14.2 every POST must carry an
``X-CSRF-Header`` header (Admin guide X15.0), so every POST here carries one. No public source
shows a REST call that uploads a private key made elsewhere, so this way in has the device make
its own key and CSR; the agent has the CA sign the CSR and uploads only the certificate, which
is also the most secure mode: the key never leaves the device.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import requests

from vcs_acme import pki
from vcs_acme.config_devices import DeviceSettings
from vcs_acme.devices.access import Bundle, DeviceError
from vcs_acme.devices.tls import (
    DeviceSession,
    management_session,
    send,
)

logger = logging.getLogger(__name__)

STATUS_PATH = "/api/status/common/systeminformation"  # assumed: see docs/devices.md
CSR_PATH = "/api/provisioning/certs/generate_csr"
SERVER_PATH = "/api/provisioning/certs/server"
ROOT_PATH = "/api/provisioning/certs/root"
RESTART_PATH = "/api/provisioning/restart"
CSRF_HEADER = {"X-CSRF-Header": "vcs-acme"}


class RestAccess:
    """One device's REST API."""

    key_on_device = True

    def __init__(self, device: DeviceSettings, known_fingerprints: Collection[str] = ()) -> None:
        self.device = device
        self._known = known_fingerprints
        self._session: DeviceSession | None = None
        self._base = f"https://{device.host}:{device.port}"

    def _fail(self, message: str, *, transient: bool = False) -> DeviceError:
        return DeviceError(self.device.name, message, transient=transient)

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        if self._session is None:
            self._session = management_session(
                self.device, self._known, self.device.request_timeout_seconds
            )
            password = self.device.password.reveal() if self.device.password else ""
            self._session.auth = (self.device.username, password)
        if method == "POST":
            kwargs["headers"] = {**kwargs.get("headers", {}), **CSRF_HEADER}
        response = send(self._session, self.device.name, method, self._base + path, **kwargs)
        return self._checked(method, path, response)

    def _checked(self, method: str, path: str, response: requests.Response) -> requests.Response:
        if response.status_code == 401:
            raise self._fail(f"login refused for user {self.device.username!r}; check the password")
        if response.status_code >= 500:
            raise self._fail(f"{method} {path}: HTTP {response.status_code}", transient=True)
        if response.status_code >= 400:
            raise self._fail(f"{method} {path} refused: {_message(response)}")
        return response

    def software_release(self) -> str | None:
        document = self._call("GET", STATUS_PATH).json()
        value = document.get("SoftwareVersion") if isinstance(document, dict) else None
        return str(value) if value else None

    def certificate_signing_request(self, names: tuple[str, ...], rsa_bits: int) -> bytes:
        """Have the device make an RSA key and a CSR naming ``names`` besides its own name."""
        body = {"Additional_FQDNS": list(names), "KeyLength": rsa_bits, "DigestAlgorithm": "sha256"}
        self._call("POST", CSR_PATH, json=body)
        document = self._call("GET", CSR_PATH).json()
        csr = document.get("CSR") if isinstance(document, dict) else None
        if not csr:
            raise self._fail("the device answered without a CSR")
        logger.debug("device %s: made a key and a CSR", self.device.name)
        return str(csr).encode()

    def upload_server_certificate(self, bundle: Bundle) -> None:
        if bundle.key_pem is not None:
            raise self._fail("the REST way in never uploads a private key")
        files = {"file": ("server.pem", bundle.leaf_pem, "application/x-pem-file")}
        self._call("POST", SERVER_PATH, files=files)

    def trusted_cas(self) -> list[bytes]:
        return pki.split_pem_chain(self._call("GET", ROOT_PATH).content)

    def append_trusted_cas(self, ca_pems: list[bytes]) -> None:
        if ca_pems:
            files = {"file": ("ca.pem", b"".join(ca_pems), "application/x-pem-file")}
            self._call("POST", ROOT_PATH, files=files)

    def restart(self) -> None:
        try:
            self._call("POST", RESTART_PATH)
        except DeviceError as error:
            # A connection dropped as the device goes down is the restart working; an HTTP
            # error answer is not.
            if not error.transient or "HTTP" in str(error):
                raise
            logger.debug("device %s: connection dropped by the restart", self.device.name)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _message(response: requests.Response) -> str:
    try:
        document = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(document, dict) and document.get("Message"):
        return f"HTTP {response.status_code}: {document['Message']}"
    return f"HTTP {response.status_code}"
