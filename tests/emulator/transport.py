"""HTTPS and verify listeners: TLS per connection with the active certificate, faults."""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .messages import Faults, Request, Response, error_page, injected_error
from .state import Device

logger = logging.getLogger(__name__)

_MAX_BODY_BYTES = 1 << 20
_LISTEN_QUEUE = 128  # bursts of parallel clients must queue, not meet a refused connection
IO_TIMEOUT_SECONDS = 10.0
SERVE_POLL_SECONDS = 0.02  # how quickly a stopped server notices; the cost of a stop


@dataclass(frozen=True)
class Wiring:
    """What the listeners need of the emulator: its address, state, faults and request router."""

    host: str
    device: Device
    faults: Faults
    stopping: threading.Event
    dispatch: Callable[[Request], Response]


def _accept_tls(listener: socket.socket, device: Device) -> tuple[socket.socket, Any]:
    connection, address = listener.accept()
    if device.is_down():
        return connection, address  # left without TLS: the worker hangs up on it
    # The context is fetched per connection, so a restart shows on the next handshake.
    wrapped = device.tls_context().wrap_socket(
        connection, server_side=True, do_handshake_on_connect=False
    )
    return wrapped, address


def _handshake(connection: socket.socket) -> bool:
    """Complete the TLS handshake, or hang up if the device was down at accept (False)."""
    # Done in the worker thread: a slow client must not stall the accepting loop.
    connection.settimeout(IO_TIMEOUT_SECONDS)
    if not isinstance(connection, ssl.SSLSocket):
        _read_hello(connection)
        return False
    connection.do_handshake()
    return True


def _read_hello(connection: socket.socket) -> None:
    # A restarting device hangs up. Reading the client's hello first makes the client see the
    # same thing every time, an end of stream in the middle of the handshake; closing with the
    # hello unread would race a connection reset against it.
    received = b""
    while not _whole_record(received):
        chunk = connection.recv(4096)
        if not chunk:
            return
        received += chunk


def _whole_record(data: bytes) -> bool:
    header = 5  # TLS record header: type, version (2 bytes), length (2 bytes)
    return len(data) >= header and len(data) >= header + int.from_bytes(data[3:5], "big")


class HttpsServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = _LISTEN_QUEUE

    def __init__(self, wiring: Wiring, port: int = 0) -> None:
        self.wiring = wiring
        super().__init__((wiring.host, port), _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer's reverse lookup of the address; the name is known.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.wiring.host, self.server_address[1]

    def get_request(self) -> tuple[socket.socket, Any]:
        return _accept_tls(self.socket, self.wiring.device)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if _handshake(request):
            super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s ended in an error", client_address, exc_info=True)


class VerifyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = _LISTEN_QUEUE

    def __init__(self, wiring: Wiring, port: int = 0) -> None:
        self.wiring = wiring
        super().__init__((wiring.host, port), socketserver.BaseRequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        return _accept_tls(self.socket, self.wiring.device)

    def finish_request(self, request: Any, client_address: Any) -> None:
        _handshake(request)  # the handshake is the whole conversation

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("verify connection from %s ended in an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: HttpsServer
    timeout = IO_TIMEOUT_SECONDS
    server_version = "DeviceEmulator"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s: " + format, self.client_address[0], *args)

    def _serve(self) -> None:
        wiring = self.server.wiring
        delay, fault = wiring.faults.take()
        if delay:
            wiring.stopping.wait(delay)
        if fault == "drop":
            self.close_connection = True  # no answer at all
            return

        body = self._body()
        if body is None:
            return
        if isinstance(fault, int):
            self._send(injected_error(self.path, fault))
            return
        self._send(self._answer(body))

    def _answer(self, body: bytes) -> Response:
        try:
            return self.server.wiring.dispatch(self._request(body))
        except Exception:
            # A fault of the emulator itself: loud in the log, a 500 on the wire.
            logger.exception("emulator failed on %s %s", self.command, self.path)
            return injected_error(self.path, 500)

    def _body(self) -> bytes | None:
        """The request body, or None after answering a request whose length is unusable."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(error_page(411, "Send the body with a Content-Length"))
            return None
        length = self.headers.get("Content-Length", "0" if self.command == "GET" else "")
        if not length.isdigit():
            self._send(error_page(411, "Send the body with a Content-Length"))
            return None
        if int(length) > _MAX_BODY_BYTES:
            self._send(error_page(413, "The body is too large"))
            return None
        return self.rfile.read(int(length))

    def _request(self, body: bytes) -> Request:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        return Request(self.command, url.path, query, self.headers, body)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)
