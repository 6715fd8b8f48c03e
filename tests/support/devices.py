"""Configuration entries for emulated devices."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emulator.device import DeviceEmulator

StartDevice = Callable[..., DeviceEmulator]


@contextmanager
def device_starter(
    username: str, password: str, role: str, release: str, **defaults: Any
) -> Iterator[StartDevice]:
    """Start emulators on demand (role and release first); all are stopped at the end.

    ``defaults`` are options each emulator gets unless the call names them itself.
    """
    started: list[DeviceEmulator] = []

    def start(role: str = role, release: str = release, **options: Any) -> DeviceEmulator:
        emulator = DeviceEmulator(role, release, username, password, **{**defaults, **options})
        started.append(emulator.start())
        return emulator

    try:
        yield start
    finally:
        for emulator in started:
            emulator.stop()


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
