"""What every way into a device offers: the interface the deploy step drives.

A way in (``web``, ``rest``, ``ssh``, ``folder``) is a class that implements
:class:`DeviceAccess`. It moves bytes and presses buttons; it decides nothing. Whether a
bundle may be uploaded at all is decided before, by :mod:`vcs_acme.devices.rules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vcs_acme.errors import VcsAcmeError


class DeviceError(VcsAcmeError):
    """A device could not be reached, refused a login, or refused what was sent.

    ``transient`` is true for what may pass by itself (network, HTTP 5xx, a device that is
    busy or restarting), false for what needs a person (bad credentials, a refused file).
    """

    def __init__(self, device: str, message: str, *, transient: bool = False) -> None:
        super().__init__(f"device {device}: {message}")
        self.device = device
        self.transient = transient


@dataclass(frozen=True)
class Bundle:
    """What one device receives. PEM throughout, each part ending with a newline.

    ``key_pem`` is None when the device made the key itself (its CSR was signed).
    ``ca_pems`` are the intermediates and the root, one certificate each, leaf side first.
    """

    leaf_pem: bytes
    key_pem: bytes | None
    ca_pems: tuple[bytes, ...]
    fingerprint: str

    def __repr__(self) -> str:
        key = "None" if self.key_pem is None else "[secure]"
        return f"Bundle(fingerprint={self.fingerprint!r}, key_pem={key}, cas={len(self.ca_pems)})"


class DeviceAccess(Protocol):
    """One way into one device."""

    #: True when the device makes its own key and CSR (the key never leaves it).
    key_on_device: bool

    def software_release(self) -> str | None:
        """The release the device reports (``X14.3.2``), or None when it cannot be read."""
        ...

    def certificate_signing_request(self, names: tuple[str, ...], rsa_bits: int) -> bytes:
        """Have the device make an RSA key and a CSR for ``names``; return the CSR in PEM."""
        ...

    def upload_server_certificate(self, bundle: Bundle) -> None:
        """Send the leaf (and the key, unless the device holds it) as the server certificate."""
        ...

    def trusted_cas(self) -> list[bytes]:
        """The device's current trusted CA list, one PEM certificate each."""
        ...

    def append_trusted_cas(self, ca_pems: list[bytes]) -> None:
        """Append these CA certificates to the trusted list. Never removes or resets."""
        ...

    def restart(self) -> None:
        """Restart the device so that the new server certificate takes effect."""
        ...

    def close(self) -> None:
        """Release connections and sessions."""
        ...
