"""Writing vcs-acme configuration files for tests."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.pebble import PebbleServer


def toml_value(value: Any) -> str:
    """A TOML literal for the small set of values tests use."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def table(name: str, values: Mapping[str, Any], *, array: bool = False) -> str:
    head = f"[[{name}]]" if array else f"[{name}]"
    return "\n".join([head, *(f"{k} = {toml_value(v)}" for k, v in values.items())]) + "\n"


@dataclass
class ConfigFile:
    """A configuration for one test: an ACME table and certificates, written on demand."""

    folder: Path
    acme: dict[str, Any]
    certificates: list[dict[str, Any]] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)  # [daemon], [metrics], …
    state_dir: str = "state"

    @property
    def path(self) -> Path:
        return self.folder / "config.toml"

    @property
    def state(self) -> Path:
        return self.folder / self.state_dir

    def certificate(self, name: str, domains: list[str], **extra: Any) -> dict[str, Any]:
        entry = {"name": name, "domains": domains, **extra}
        self.certificates.append(entry)
        return entry

    def write(self) -> Path:
        parts = [f"state_dir = {toml_value(self.state_dir)}\n", table("acme", self.acme)]
        parts += [table("certificate", c, array=True) for c in self.certificates]
        parts += [table("device", d, array=True) for d in self.devices]
        parts += [table(name, values) for name, values in self.tables.items()]
        self.path.write_text("\n".join(parts), encoding="utf-8")
        return self.path


def for_pebble(folder: Path, pebble: PebbleServer, **acme: Any) -> ConfigFile:
    settings = {
        "directory": pebble.directory_url,
        "ca_bundle": str(pebble.ca_file),
        "contact": ["ops@example.com"],
        **acme,
    }
    return ConfigFile(folder, settings)


def http01(pebble: PebbleServer) -> dict[str, str]:
    """The challenge setting that puts the responder where this Pebble validates."""
    return {"type": "http-01", "listen": f"127.0.0.1:{pebble.http_port}"}
