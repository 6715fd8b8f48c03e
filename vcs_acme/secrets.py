"""Secrets: where they come from, and how they are kept out of logs.

A secret (an EAB HMAC key, later a device password) is named in the configuration by where to
read it, never required inline::

    hmac_key = { file = "/etc/vcs-acme/eab.key" }     # a file, first line used
    hmac_key = { env = "VCS_ACME_EAB_HMAC" }          # an environment variable
    hmac_key = { credential = "eab-hmac" }            # systemd LoadCredential= name
    hmac_key = { value = "..." }                      # inline, allowed but discouraged

The value is wrapped in :class:`Secret`, whose ``repr`` and ``str`` never show it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SOURCES = ("file", "env", "credential", "value")


class SecretSourceError(Exception):
    """A secret could not be read; the message says from where, never the value."""


@dataclass(frozen=True, eq=False)
class Secret:
    """A secret value that stays out of reprs, logs and exception messages."""

    _value: str
    origin: str

    def reveal(self) -> str:
        """The secret itself: call this only where it is sent or used."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(origin={self.origin!r}, value=[secure])"

    def __str__(self) -> str:
        return "[secure]"


def read_secret(source: str, reference: str) -> Secret:
    """Read a secret from one of :data:`SOURCES`; raise :class:`SecretSourceError`."""
    if source == "file":
        return Secret(_read_file(Path(reference)), f"file {reference}")
    if source == "env":
        value = os.environ.get(reference)
        if not value:
            raise SecretSourceError(f"environment variable {reference} is not set or empty")
        return Secret(value.strip(), f"environment variable {reference}")
    if source == "credential":
        return Secret(_read_credential(reference), f"systemd credential {reference}")
    if source == "value":
        return Secret(reference, "inline value")
    raise SecretSourceError(f"unknown secret source {source!r}; use one of {', '.join(SOURCES)}")


def _read_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SecretSourceError(f"cannot read secret file {path}: {error.strerror}") from None
    value = text.strip()
    if not value:
        raise SecretSourceError(f"secret file {path} is empty")
    return value


def _read_credential(name: str) -> str:
    # systemd hands credentials over in $CREDENTIALS_DIRECTORY (LoadCredential=, systemd 247+).
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        raise SecretSourceError(
            f"systemd credential {name!r} asked for, but CREDENTIALS_DIRECTORY is not set "
            "(is the service started with LoadCredential=?)"
        )
    if "/" in name or name in (".", ".."):
        raise SecretSourceError(f"systemd credential name {name!r} must be a plain file name")
    return _read_file(Path(folder) / name)
