"""A real HTTPS server on loopback that collects the JSON bodies POSTed to it.

Its certificate, for 127.0.0.1, is made by ``emulator.pki``; ``ca_file`` is what a client
must trust. ``fail_next(n)`` makes it answer the next ``n`` requests with HTTP 500 (their
bodies are still recorded, as tries), to test retries.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from emulator import pki

from support.ports import LOOPBACK


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: Any
    status: int  # what the server answered


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        status = self.server.owner.answer()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.owner.add(Request(self.path, headers, body, status))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests look at what arrived, not at an access log


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: WebhookServer) -> None:
        self.owner = owner
        super().__init__((LOOPBACK, 0), _Handler)


class WebhookServer:
    """The receiver; use as a context manager."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[Request] = []
        self._failures = 0
        self._status = 500
        self._arrived = threading.Condition()
        self.ca_file = folder / "webhook-ca.pem"
        self._server = _Server(self)
        self._server.socket = self._tls_context(folder).wrap_socket(
            self._server.socket, server_side=True
        )
        self.port = self._server.server_address[1]
        self.url = f"https://{LOOPBACK}:{self.port}/hooks/vcs-acme/Secret-Path-Token"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def _tls_context(self, folder: Path) -> ssl.SSLContext:
        root = pki.make_root("Webhook Test Root")
        leaf = pki.make_leaf(root, ["localhost"], ip_addresses=[LOOPBACK], key_kind="p256")
        self.ca_file.write_bytes(root.certificate_pem)
        chain = folder / "webhook-server.pem"
        key = folder / "webhook-server-key.pem"
        chain.write_bytes(leaf.certificate_pem)
        key.write_bytes(leaf.key_pem())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain, key)
        return context

    def fail_next(self, count: int, status: int = 500) -> None:
        with self._arrived:
            self._failures = count
            self._status = status

    def answer(self) -> int:
        with self._arrived:
            if self._failures > 0:
                self._failures -= 1
                return self._status
            return 200

    def add(self, request: Request) -> None:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()

    def delivered(self) -> list[Any]:
        """The bodies of the requests answered with success."""
        with self._arrived:
            return [r.body for r in self.requests if r.status < 300]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Request]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} of {count} requests in {timeout} s")
            return list(self.requests)

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
