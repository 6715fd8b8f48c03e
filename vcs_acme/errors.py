"""The one exception tree of vcs-acme.

Every failure a user can meet is one of these, and its ``str()`` is a single line that says
what went wrong and what to do. Tracebacks belong in the debug log, never on the terminal::

    VcsAcmeError
     ├── ConfigError          invalid configuration or unreadable secret (exit status 78)
     ├── StoreError           the state folder cannot be read or written
     │    └── LockedError     another process works on the same certificate
     ├── AcmeError            the CA refused, failed or could not be reached
     │    ├── ProblemError    the CA answered with an RFC 8555 problem document
     │    └── DnsError        a DNS-01 update, lookup or propagation failed (issuance.dns01)
     └── DeviceError          a device could not be reached or refused (devices.access)

Each carries ``transient``: whether trying again later can help (the retry policy's input).
"""

from __future__ import annotations

import datetime as dt


class VcsAcmeError(Exception):
    """Root of every error vcs-acme raises on purpose."""

    #: Whether trying again later can help (network, 5xx, rate limits).
    transient: bool = False


class ConfigError(VcsAcmeError):
    """The configuration is invalid: names the file, the key path and what was expected."""

    def __init__(self, source: str, key_path: str, message: str) -> None:
        self.source = source
        self.key_path = key_path
        self.message = message
        where = f"{source}: {key_path}: " if key_path else f"{source}: "
        super().__init__(where + message)


class StoreError(VcsAcmeError):
    """The state folder cannot be read or written."""


class LockedError(StoreError):
    """Another process holds the lock of a certificate."""

    transient = True


class AcmeError(VcsAcmeError):
    """The CA could not be reached, or the exchange with it failed."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool = False,
        retry_after: dt.datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


class ProblemError(AcmeError):
    """The CA answered with a problem document (RFC 8555 section 6.7)."""

    def __init__(
        self,
        code: str,
        detail: str,
        message: str,
        *,
        transient: bool = False,
        retry_after: dt.datetime | None = None,
    ) -> None:
        super().__init__(message, transient=transient, retry_after=retry_after)
        self.code = code
        self.detail = detail
