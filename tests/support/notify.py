"""A stand-in for systemd's notification socket: what the daemon sends, received for real.

Like systemd, it reads continuously: a datagram socket's queue is short (ten messages by
default on Linux), and a reader that lags makes the sender drop notifications.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from types import TracebackType


class NotifySocket:
    """An AF_UNIX datagram socket like the one systemd passes in ``NOTIFY_SOCKET``."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "notify.sock"
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(self.path))
        self.messages: list[str] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self._socket.recv(4096)
            except OSError:
                return  # closed
            with self._arrived:
                self.messages.append(data.decode())
                self._arrived.notify_all()

    def count(self, line: str) -> int:
        with self._arrived:
            return sum(1 for m in self.messages if line in m.splitlines())

    def clear(self) -> None:
        with self._arrived:
            self.messages.clear()

    def wait_for(self, wanted: str, timeout: float, count: int = 1) -> list[str]:
        """Wait until ``count`` messages carry the line ``wanted``; every message so far."""
        with self._arrived:
            arrived = self._arrived.wait_for(
                lambda: sum(1 for m in self.messages if wanted in m.splitlines()) >= count, timeout
            )
            if not arrived:
                raise TimeoutError(f"no {wanted!r} within {timeout} s; got {self.messages}")
            return list(self.messages)

    def __enter__(self) -> NotifySocket:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._reader.join(5)
