"""Configuration entries for emulated devices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emulator.device import DeviceEmulator


def device_entry(
    name: str, emulator: DeviceEmulator, folder: Path, password_file: Path, **extra: Any
) -> dict[str, Any]:
    """A ``[[device]]`` table that reaches ``emulator`` and trusts its interface CA."""
    ca_file = folder / f"{name}-interface-ca.pem"
    ca_file.write_bytes(emulator.ca_pem)
    return {
        "name": name,
        "host": emulator.host,
        "port": emulator.https_port,
        "verify_ports": [emulator.https_port, *emulator.verify_ports],
        "role": emulator.role.value,
        "access": "web",
        "username": "admin",
        "password": {"file": str(password_file)},
        "tls_ca_file": str(ca_file),
        "restart": "immediately",
        "verify_timeout_seconds": 5,
        **extra,
    }


def bare(fingerprint: str | None) -> str | None:
    """A fingerprint without colons, as the emulator writes it."""
    return fingerprint.replace(":", "") if fingerprint else None
