"""The agent's view of an emulated device: ``DeviceSettings`` and bundles, as tests need them.

Settings are built directly (no configuration file) so each test states the one trust or
timeout choice it is about, and everything else stays at the agent's defaults.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from cryptography import x509

from vcs_acme.config_devices import DeviceSettings, TlsTrust
from vcs_acme.devices.access import Bundle
from vcs_acme.pki import fingerprint as colon_fingerprint
from vcs_acme.secrets import Secret

from . import pki
from .device import DeviceEmulator

logger = logging.getLogger(__name__)


def write_ca_file(folder: Path, pem: bytes, name: str = "device-ca.pem") -> Path:
    """Write a CA bundle where ``TlsTrust(ca_file=...)`` or an environment variable can name it."""
    path = folder / name
    path.write_bytes(pem)
    return path


def device_settings(
    emulator: DeviceEmulator,
    password: str,
    tls: TlsTrust,
    *,
    access: str = "web",
    **overrides: Any,
) -> DeviceSettings:
    """Settings that point the agent at ``emulator`` on 127.0.0.1 with the given trust."""
    settings = DeviceSettings(
        name="emulated",
        host=emulator.host,
        role=emulator.role,
        access=access,
        port=emulator.https_port,
        verify_ports=(emulator.https_port, *emulator.verify_ports),
        username="admin",
        password=Secret(password, "test"),
        tls=tls,
        verify_timeout_seconds=10.0,
    )
    return dataclasses.replace(settings, **overrides)


def bundle_of(leaf: x509.Certificate, key_pem: bytes | None, cas: list[pki.Issued]) -> Bundle:
    """What the deploy step hands a way in: leaf, key (None if on the device), CA chain."""
    return Bundle(
        leaf_pem=pki.certificate_pem(leaf),
        key_pem=key_pem,
        ca_pems=tuple(ca.certificate_pem for ca in cas),
        fingerprint=colon_fingerprint(leaf),
    )
