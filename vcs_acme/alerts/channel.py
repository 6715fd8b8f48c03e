"""What every alert channel offers, and the one error it raises."""

from __future__ import annotations

from typing import Protocol

from vcs_acme.alerts.policy import Alert


class ChannelError(Exception):
    """An alert could not be delivered; the message says why, never a secret."""


class Channel(Protocol):
    """A way to tell people: ``send`` delivers one alert or raises :class:`ChannelError`."""

    @property
    def name(self) -> str: ...

    @property
    def target(self) -> str:
        """Where alerts go, as it may be logged (no credentials)."""
        ...

    def send(self, alert: Alert) -> None: ...
