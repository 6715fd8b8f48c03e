"""Telling systemd how the agent is doing, as sd_notify(3) does, without libsystemd.

systemd passes the address of a datagram socket in ``NOTIFY_SOCKET``: a file system path, or
an abstract socket name written with a leading ``@``. Each message is one datagram of
``KEY=value`` lines. Without the variable (the agent run by hand, or by a ``Type=simple``
unit) every method does nothing.

A lost notification must never stop the agent, so sending errors are logged at DEBUG and
swallowed. Should one matter, systemd itself reports it: a missing ``READY=1`` fails the
start, a missing ``WATCHDOG=1`` restarts the service.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

logger = logging.getLogger(__name__)

# systemd reads a notification without waiting; a full queue means it is stuck, and a
# bounded send keeps the agent going (the watchdog then tells).
SEND_TIMEOUT_SECONDS = 1.0


class Notifier:
    """The agent's side of systemd's notification socket; every method is safe to call."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._address = _socket_address(self._environ.get("NOTIFY_SOCKET", ""))

    @property
    def enabled(self) -> bool:
        """Whether a notification socket was given and is of a kind this client speaks."""
        return self._address is not None

    def ready(self) -> None:
        """Start-up (or a reload) is complete: ``Type=notify`` units become active."""
        self._send("READY=1")

    def status(self, text: str) -> None:
        """A one-line status, shown by ``systemctl status``."""
        self._send("STATUS=" + " ".join(text.splitlines()))

    def watchdog(self) -> None:
        """Alive: resets the ``WatchdogSec=`` timer."""
        self._send("WATCHDOG=1")

    def stopping(self) -> None:
        """A graceful stop has begun."""
        self._send("STOPPING=1")

    def reloading(self) -> None:
        """A reload has begun; ``ready()`` ends it.

        ``MONOTONIC_USEC`` is required by ``Type=notify-reload`` (systemd 253+) to tell this
        reload from an older one; earlier versions ignore it.
        """
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={now}")

    def watchdog_interval(self) -> float | None:
        """Seconds within which ``watchdog()`` must be called, or None without a watchdog.

        ``WATCHDOG_PID``, when set, names the process the watchdog is meant for; a child that
        inherited the environment is not that process.
        """
        if self._address is None:
            return None  # nobody to report to
        pid = self._environ.get("WATCHDOG_PID")
        if pid is not None and pid != str(os.getpid()):
            return None
        text = self._environ.get("WATCHDOG_USEC", "")
        if not text.isdigit() or int(text) == 0:
            return None
        return int(text) / 1_000_000

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as channel:
                channel.settimeout(SEND_TIMEOUT_SECONDS)
                channel.sendto(message.encode("utf-8"), self._address)
        except OSError as error:
            logger.debug("notification %r not sent to systemd: %s", message, error)


def _socket_address(text: str) -> str | None:
    """The socket address for ``NOTIFY_SOCKET``: abstract names start with a NUL byte."""
    if text.startswith("@") and len(text) > 1:
        return "\0" + text[1:]
    if text.startswith("/"):
        return text
    if text:
        # systemd 253+ may also pass "vsock:CID:PORT" to a virtual machine; not spoken here.
        logger.debug("NOTIFY_SOCKET %r is not a path or an abstract name; not notifying", text)
    return None
