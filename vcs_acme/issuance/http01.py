"""An in-process HTTP-01 responder (RFC 8555 section 8.3).

It serves ``/.well-known/acme-challenge/<token>`` from memory for as long as challenges are
open. The listen queue is deep because a CA validating a fleet of orders at once opens many
connections together, and the default queue of five makes the rest wait for a TCP retry.
One responder per listen address is shared by every order (:class:`Responders`); each
order's :class:`Http01Solver` adds and removes only its own tokens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from acme import challenges
from josepy import jwk

from vcs_acme.errors import AcmeError
from vcs_acme.issuance.order import OpenChallenge

logger = logging.getLogger(__name__)

PREFIX = "/.well-known/acme-challenge/"
# How often the serving thread looks for a stop request; stopping waits up to this long.
POLL_SECONDS = 0.05


class _Server(ThreadingHTTPServer):
    request_queue_size = 512
    daemon_threads = True
    responses: dict[str, bytes]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "vcs-acme"
    sys_version = ""

    def do_GET(self) -> None:
        token = self.path[len(PREFIX) :] if self.path.startswith(PREFIX) else None
        body = self.server.responses.get(token) if token else None
        if body is None:
            logger.debug(
                "HTTP-01: no challenge for %s (from %s)", self.path, self.client_address[0]
            )
            self.send_error(404)
            return
        logger.debug("HTTP-01: answered %s for %s", self.path, self.client_address[0])
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("HTTP-01 %s: " + format, self.client_address[0], *args)


class Http01Responder:
    """Serves key authorizations on one address while it is open."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._responses: dict[str, bytes] = {}

    def add(self, token: str, key_authorization: str) -> None:
        self._responses[token] = key_authorization.encode("ascii")

    def remove(self, token: str) -> None:
        self._responses.pop(token, None)

    def start(self) -> None:
        if self._server is not None:
            return
        try:
            server = _Server((self.host, self.port), _Handler)
        except OSError as error:
            raise AcmeError(
                f"cannot listen on {self.host or '*'}:{self.port} for HTTP-01: "
                f"{error.strerror}; change challenge.listen or free the port",
                transient=True,
            ) from None
        server.responses = self._responses
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(POLL_SECONDS,), name="http-01", daemon=True
        )
        self._thread.start()
        logger.debug("HTTP-01 responder listening on %s:%d", self.host or "*", self.port)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None

    def __enter__(self) -> Http01Responder:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class Responders:
    """One responder per listen address, shared by every order of one pass."""

    def __init__(self) -> None:
        self._by_address: dict[tuple[str, int], Http01Responder] = {}
        self._lock = threading.Lock()

    def get(self, host: str, port: int) -> Http01Responder:
        with self._lock:
            responder = self._by_address.get((host, port))
            if responder is None:
                responder = Http01Responder(host, port)
                responder.start()
                self._by_address[(host, port)] = responder
            return responder

    def close(self) -> None:
        with self._lock:
            for responder in self._by_address.values():
                responder.stop()
            self._by_address.clear()


class Http01Solver:
    """Meets HTTP-01 challenges through a shared responder, started only when needed."""

    challenge_type = challenges.HTTP01

    def __init__(self, responder: Callable[[], Http01Responder]) -> None:
        self._responder = responder
        self._serving: Http01Responder | None = None
        self._tokens: list[str] = []

    def publish(self, open_challenges: Sequence[OpenChallenge], account_key: jwk.JWK) -> None:
        self._serving = self._serving or self._responder()
        for challenge in open_challenges:
            chall = challenge.body.chall
            assert isinstance(chall, challenges.HTTP01)
            token = chall.encode("token")
            self._serving.add(token, chall.key_authorization(account_key))
            self._tokens.append(token)
        logger.debug("HTTP-01: serving %d token(s)", len(open_challenges))

    def await_visible(self, deadline: float) -> None:
        del deadline  # served from memory: visible the moment it is added

    def withdraw(self) -> None:
        if self._serving is not None:
            for token in self._tokens:
                self._serving.remove(token)
        self._tokens.clear()
