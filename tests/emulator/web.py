"""The web interface: login, cookie sessions and the form pages with single-use sessionids."""

from __future__ import annotations

import html
import logging
import secrets
import threading
from dataclasses import dataclass, field

from vcs_acme.devices import Release, Role

from .acceptance import RefusalError
from .messages import (
    BadFormError,
    Credentials,
    Faults,
    Request,
    Response,
    error_page,
    html_page,
    outcome_html,
    redirect,
)
from .state import Device, Event

logger = logging.getLogger(__name__)

KEY_LABEL = "Select the server private key file"
CERTIFICATE_LABEL = "Select the server certificate file"
CA_LABEL = "Select the file containing trusted CA certificates"
UPLOAD_BUTTON = "Upload server certificate data"
APPEND_BUTTON = "Append CA certificate"
RESET_BUTTON = "Reset to default CA certificate"
RESTART_BUTTON = "Restart"
LOGIN_BUTTON = "Login"

# Fixed but deliberately unlike any obvious name, so a client cannot get by on guesses.
_FIXED_FIELDS = {
    KEY_LABEL: ("upload-1", "fvk93q_pk"),
    CERTIFICATE_LABEL: ("upload-2", "fvk93q_sc"),
    CA_LABEL: ("upload-3", "fvk93q_tc"),
}


@dataclass(frozen=True)
class _Page:
    path: str
    title: str
    section: str = ""
    file_labels: tuple[str, ...] = ()
    buttons: tuple[str, ...] = ()


_PAGES = {
    page.path: page
    for page in (
        _Page("/overview", "Overview"),
        _Page(
            "/servercertificate",
            "Server certificate",
            "Upload new certificate",
            (KEY_LABEL, CERTIFICATE_LABEL),
            (UPLOAD_BUTTON,),
        ),
        _Page(
            "/trustedcacertificate",
            "Trusted CA certificate",
            "Upload",
            (CA_LABEL,),
            (APPEND_BUTTON, RESET_BUTTON),
        ),
        _Page("/restart", "Restart options", "Restart", (), (RESTART_BUTTON,)),
    )
}
_CONTROL_FIELDS = frozenset({"sessionid", "submitbutton", "formbutton"})


@dataclass(frozen=True)
class _Render:
    """One rendering of a form page: its sessionid and, per label, the input's id and name."""

    sessionid: str
    inputs: dict[str, tuple[str, str]]


@dataclass
class _Session:
    login_token: str
    boot: int
    renders: dict[str, _Render] = field(default_factory=dict)


class WebInterface:
    def __init__(
        self, device: Device, credentials: Credentials, faults: Faults, randomize: bool
    ) -> None:
        self._device = device
        self._credentials = credentials
        self._faults = faults
        self._randomize = randomize
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}

    def handle(self, request: Request) -> Response:
        if request.path == "/login":
            return self._login(request)
        page = _PAGES.get(request.path)
        if page is None:
            return error_page(404, "No such page")
        session = self._session_of(request)
        if session is None:
            return redirect("/login")
        if request.method == "GET":
            return self._show(page, session, request)
        return self._submit(page, session, request)

    def _login(self, request: Request) -> Response:
        if request.method == "GET":
            return html_page("Login", _login_form())
        try:
            form = {name: value.decode() for name, value in request.form().items()}
        except (BadFormError, UnicodeDecodeError):
            return html_page("Login", outcome_html("Login failed", False) + _login_form())

        buttons_ok = form.get("submitbutton") == form.get("formbutton") == LOGIN_BUTTON
        credentials_ok = self._credentials.match(form.get("username", ""), form.get("password", ""))
        accepted = buttons_ok and credentials_ok and not self._faults.refuse_logins
        self._device.record(Event("login", accepted, "web"))
        if not accepted:
            return html_page("Login", outcome_html("Login failed", False) + _login_form())
        return self._open_session()

    def _open_session(self) -> Response:
        sharpid, token = secrets.token_urlsafe(24), secrets.token_urlsafe(16)
        with self._lock:
            self._sessions[sharpid] = _Session(token, self._device.boot)
        return redirect(
            "/overview",
            ("Set-Cookie", f"SHARPID={sharpid}; Path=/; Secure; HttpOnly"),
            ("Set-Cookie", f"tandberg_login={token}; Path=/; Secure"),
        )

    def _session_of(self, request: Request) -> _Session | None:
        cookies = request.cookies()
        with self._lock:
            session = self._sessions.get(cookies.get("SHARPID", ""))
        if session is None or session.boot != self._device.boot:
            return None  # a restart ends every session
        token = cookies.get("tandberg_login", "")
        return session if secrets.compare_digest(token, session.login_token) else None

    def _show(self, page: _Page, session: _Session, request: Request) -> Response:
        if page.path == "/trustedcacertificate" and request.query.get("show") == ["pem"]:
            return Response(200, self._device.trusted_pem(), "application/x-pem-file")
        return self._render(page, session, "")

    def _render(self, page: _Page, session: _Session, message: str) -> Response:
        render = _Render(secrets.token_hex(16), self._inputs(page))
        with self._lock:
            session.renders[page.path] = render
        return html_page(page.title, message + self._content(page) + _form(page, render))

    def _inputs(self, page: _Page) -> dict[str, tuple[str, str]]:
        if not self._randomize:
            return {label: _FIXED_FIELDS[label] for label in page.file_labels}
        return {
            label: (f"i{secrets.token_hex(4)}", f"f{secrets.token_hex(6)}")
            for label in page.file_labels
        }

    def _content(self, page: _Page) -> str:
        if page.path == "/overview":
            acceptance = self._device.acceptance
            return _system_information(acceptance.role, acceptance.release, self._device.fqdn)
        if page.path == "/trustedcacertificate":
            return '<p><a href="/trustedcacertificate?show=pem">Show all (PEM file)</a></p>\n'
        return ""

    def _submit(self, page: _Page, session: _Session, request: Request) -> Response:
        try:
            form = request.form()
        except BadFormError as error:
            return error_page(400, str(error))
        with self._lock:
            render = session.renders.pop(page.path, None)  # every sessionid serves one POST
        problem = _form_problem(page, render, form)
        if problem or render is None:
            return error_page(403, problem)

        button = form["submitbutton"].decode()
        if button == RESTART_BUTTON:
            self._device.restart("web")
            return html_page("Restarting", outcome_html("The system is restarting", True))
        files = {label: form.get(render.inputs[label][1], b"") for label in page.file_labels}
        try:
            outcome = self._act(button, files)
        except RefusalError as refusal:
            return self._render(page, session, outcome_html(str(refusal), False))
        return self._render(page, session, outcome_html(outcome, True))

    def _act(self, button: str, files: dict[str, bytes]) -> str:
        if button == UPLOAD_BUTTON:
            key = files[KEY_LABEL] or None
            self._device.upload_server_certificate(files[CERTIFICATE_LABEL], key, "web")
            return "Server certificate data uploaded; restart the system to use it"
        if button == APPEND_BUTTON:
            count = self._device.append_trusted(files[CA_LABEL], "web")
            return f"{count} CA certificate(s) appended to the trusted list"
        self._device.reset_trusted("web")
        return "The trusted CA list is back to its default"


def _form_problem(page: _Page, render: _Render | None, form: dict[str, bytes]) -> str:
    sent = form.get("sessionid", b"").decode("latin-1")
    if render is None or not sent or not secrets.compare_digest(sent, render.sessionid):
        return "The session ID of this form is missing or out of date; reload the page"
    button = form.get("submitbutton", b"").decode("latin-1")
    if button not in page.buttons:
        return "The form names no button of this page"
    if form.get("formbutton", b"").decode("latin-1") != button:
        return "The formbutton field must repeat the button pressed"
    unexpected = set(form) - _CONTROL_FIELDS - {name for _, name in render.inputs.values()}
    if unexpected:
        return f"Unexpected form fields: {', '.join(sorted(unexpected))}"
    return ""


def _login_form() -> str:
    return (
        '<form method="post" action="/login">\n'
        '<p><label for="username">Username</label>'
        ' <input type="text" id="username" name="username"></p>\n'
        '<p><label for="password">Password</label>'
        ' <input type="password" id="password" name="password"></p>\n'
        '<input type="hidden" name="formbutton" value="Login">\n'
        '<input type="submit" name="submitbutton" value="Login">\n</form>\n'
    )


def _form(page: _Page, render: _Render) -> str:
    lines = [
        f'<form method="post" action="{page.path}" enctype="multipart/form-data">',
        f'<input type="hidden" name="sessionid" value="{render.sessionid}">',
    ]
    if page.section:
        lines.append(f"<h2>{html.escape(page.section)}</h2>")
    for label, (input_id, name) in render.inputs.items():
        lines.append(
            f'<p><label for="{input_id}">{html.escape(label)}</label>'
            f' <input type="file" id="{input_id}" name="{name}"></p>'
        )
    for button in page.buttons:
        lines.append(f'<input type="submit" name="submitbutton" value="{html.escape(button)}">')
    return "\n".join([*lines, "</form>"])


def _system_information(role: Role, release: Release, fqdn: str) -> str:
    rows = (("System host name", fqdn), ("Product", role.label), ("Software version", release))
    cells = "".join(
        f"<tr><th>{name}</th><td>{html.escape(str(value))}</td></tr>\n" for name, value in rows
    )
    return f'<h2>System information</h2>\n<table id="systeminformation">\n{cells}</table>\n'
