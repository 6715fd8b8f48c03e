"""Requests and answers as the interfaces see them, credentials, and faults set by tests."""

from __future__ import annotations

import email.parser
import html
import json
import logging
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from email.message import Message
from http.cookies import SimpleCookie

logger = logging.getLogger(__name__)


class BadFormError(Exception):
    """A request body that is not the form it claims to be."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes

    def cookies(self) -> dict[str, str]:
        jar = SimpleCookie(self.headers.get("Cookie", ""))
        return {name: morsel.value for name, morsel in jar.items()}

    def form(self) -> dict[str, bytes]:
        content_type = self.headers.get("Content-Type", "")
        kind = content_type.split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            return _parse_multipart(content_type, self.body)
        if kind == "application/x-www-form-urlencoded":
            try:
                text = self.body.decode("utf-8")
            except UnicodeDecodeError as error:
                raise BadFormError("the form is not UTF-8") from error
            pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
            # Reversed, so that of repeated fields the first one wins, as in multipart below.
            return {name: value.encode() for name, value in reversed(pairs)}
        raise BadFormError("expected an urlencoded or multipart/form-data body")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def _parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_boundary()
    if not boundary:
        raise BadFormError("multipart body without a boundary")

    # Parsed by hand so the file contents stay byte-exact (a final newline matters).
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))
    if len(chunks) < 2 or chunks[0] or not chunks[-1].startswith(b"--"):
        raise BadFormError("malformed multipart body")
    fields: dict[str, bytes] = {}
    for chunk in chunks[1:-1]:
        head, separator, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        part = email.parser.BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
        name = part.get_param("name", header="content-disposition")
        if not separator or not isinstance(name, str):
            raise BadFormError("multipart part without a field name")
        fields.setdefault(name, content)
    return fields


def json_answer(status: int, document: object, *headers: tuple[str, str]) -> Response:
    return Response(status, json.dumps(document).encode(), "application/json", headers)


def html_page(title: str, body: str, status: int = 200, *headers: tuple[str, str]) -> Response:
    text = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
    return Response(status, text.encode(), "text/html; charset=utf-8", headers)


def outcome_html(text: str, ok: bool) -> str:
    return f'<p class="{"success" if ok else "error"}">{html.escape(text)}</p>\n'


def error_page(status: int, text: str) -> Response:
    return html_page("Error", outcome_html(text, False), status)


def redirect(location: str, *headers: tuple[str, str]) -> Response:
    return Response(302, b"", "text/plain", (("Location", location), *headers))


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def match(self, username: str, password: str) -> bool:
        user_ok = secrets.compare_digest(username.encode(), self.username.encode())
        return secrets.compare_digest(password.encode(), self.password.encode()) and user_ok


class Faults:
    """Trouble switched on from a test; consumed per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.errors = 0
        self.error_status = 500
        self.drops = 0
        self.delay = 0.0
        self.refuse_logins = False

    def fail_next(self, count: int, status: int) -> None:
        with self._lock:
            self.errors, self.error_status = count, status

    def drop_next(self, count: int) -> None:
        with self._lock:
            self.drops = count

    def take(self) -> tuple[float, str | int | None]:
        """The delay for this request, and ``drop``, an error status, or None."""
        with self._lock:
            if self.drops:
                self.drops -= 1
                return self.delay, "drop"
            if self.errors:
                self.errors -= 1
                return self.delay, self.error_status
            return self.delay, None


def injected_error(path: str, status: int) -> Response:
    if path.startswith("/api/"):
        return json_answer(status, {"Message": "Internal error"})
    return error_page(status, "Internal error")
