"""The ``folder`` way in: the bundle written to a folder for a person (or a script) to upload.

Files: ``<folder>/<device>/server.pem``, ``server.key`` (0600, in the device's key format),
``trusted-ca.pem``. A configured command then runs with the paths in its environment:
``VCS_ACME_DEVICE``, ``VCS_ACME_CERTIFICATE``, ``VCS_ACME_KEY``, ``VCS_ACME_TRUSTED_CA``,
``VCS_ACME_FINGERPRINT``. Nothing can be read back from such a device, and it cannot be
restarted from here: it stays *pending restart* until its ports present the new certificate.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Collection

from vcs_acme.config_devices import DeviceSettings
from vcs_acme.devices.access import Bundle, DeviceError
from vcs_acme.store import PRIVATE_MODE, PUBLIC_MODE, atomic_write, private_folder

logger = logging.getLogger(__name__)

COMMAND_TIMEOUT_SECONDS = 300


class FolderAccess:
    key_on_device = False

    def __init__(self, device: DeviceSettings, known_fingerprints: Collection[str] = ()) -> None:
        del known_fingerprints
        if device.folder is None:
            raise DeviceError(device.name, "the folder way in needs a [device.folder] table")
        self.device = device
        self.settings = device.folder
        self.path = device.folder.path / device.name

    def software_release(self) -> str | None:
        return None

    def certificate_signing_request(self, names: tuple[str, ...], rsa_bits: int) -> bytes:
        raise DeviceError(self.device.name, "the folder way in cannot make a CSR")

    def upload_server_certificate(self, bundle: Bundle) -> None:
        private_folder(self.path)
        atomic_write(self.path / "server.pem", bundle.leaf_pem, PUBLIC_MODE)
        if bundle.key_pem is not None:
            atomic_write(self.path / "server.key", bundle.key_pem, PRIVATE_MODE)
        atomic_write(self.path / "trusted-ca.pem", b"".join(bundle.ca_pems), PUBLIC_MODE)
        self._run_command(bundle)

    def trusted_cas(self) -> list[bytes]:
        return []  # nothing to read back; the whole list is in trusted-ca.pem

    def append_trusted_cas(self, ca_pems: list[bytes]) -> None:
        del ca_pems  # written with the bundle

    def restart(self) -> None:
        logger.info("device %s: restart it by hand to use the new certificate", self.device.name)

    def close(self) -> None:
        pass

    def _run_command(self, bundle: Bundle) -> None:
        if not self.settings.command:
            return
        env = {
            **os.environ,
            "VCS_ACME_DEVICE": self.device.name,
            "VCS_ACME_CERTIFICATE": str(self.path / "server.pem"),
            "VCS_ACME_KEY": str(self.path / "server.key"),
            "VCS_ACME_TRUSTED_CA": str(self.path / "trusted-ca.pem"),
            "VCS_ACME_FINGERPRINT": bundle.fingerprint,
        }
        try:
            result = subprocess.run(
                list(self.settings.command), env=env, capture_output=True, text=True,
                timeout=COMMAND_TIMEOUT_SECONDS, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as error:
            raise DeviceError(self.device.name, f"command failed: {error}") from None
        logger.debug("device %s: command output: %s", self.device.name, result.stdout.strip())
        if result.returncode != 0:
            tail = (result.stderr.strip() or result.stdout.strip())[-300:]
            raise DeviceError(self.device.name, f"command exited with {result.returncode}: {tail}")
