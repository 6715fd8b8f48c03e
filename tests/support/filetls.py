"""A TLS port that presents the certificate files of an SSH-managed device.

It stands for the device's SIP TLS port: it serves ``server.pem`` with ``privkey.pem`` from
the device's certificate folder, as loaded at its last restart. A restart is asked for by
creating the file ``restart-requested`` there (the test's restart command does), so a new
upload takes effect only after a restart, as on the appliance.
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from types import TracebackType

from support.ports import LOOPBACK


class FileTlsPort:
    def __init__(self, certs: Path) -> None:
        self.certs = certs
        self.marker = certs / "restart-requested"
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port = self._listener.getsockname()[1]
        self._context: ssl.SSLContext | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def restart_command(self) -> str:
        return f"touch {self.marker}"

    def _load(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certs / "server.pem", self.certs / "privkey.pem")
        self._context = context

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self.marker.exists() or self._context is None:
                self.marker.unlink(missing_ok=True)
                self._load()
            assert self._context is not None
            try:
                with self._context.wrap_socket(connection, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                connection.close()

    def __enter__(self) -> FileTlsPort:
        self._load()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._listener.close()
        self._thread.join(5)
