"""The device emulator is strict: it refuses what a real appliance refuses, the way it does.

Every test talks to the emulator over real HTTPS (``requests``) or TLS (``ssl``), verifying
the emulator's certificate against the CA it publishes.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from emulator import pki
from emulator.device import (
    APPEND_BUTTON,
    CA_LABEL,
    CERTIFICATE_LABEL,
    KEY_LABEL,
    RESET_BUTTON,
    RESTART_BUTTON,
    UPLOAD_BUTTON,
    DeviceEmulator,
    fingerprint,
)
from support.devices import StartDevice, device_starter

from vcs_acme.devices import DeviceProfile, Release, Role, check_bundle

USERNAME = "admin"
PASSWORD = "correct horse battery"
NAME = "device.example.test"
ISSUING_ROOT = pki.make_root("Test Issuing Root CA")
CSRF = {"X-CSRF-Header": "anything"}


@pytest.fixture
def start_device() -> Iterator[StartDevice]:
    with device_starter(USERNAME, PASSWORD, "expressway-c", "X14.3.2") as start:
        yield start


# --- a small client, the way an agent has to work ---------------------------------------------


@dataclass
class Form:
    """What a client can learn from a form page: sessionid, inputs by label, buttons."""

    sessionid: str | None = None
    inputs_by_label: dict[str, str] = field(default_factory=dict)
    buttons: list[str] = field(default_factory=list)


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form = Form()
        self._names_by_id: dict[str, str] = {}
        self._label_for: str | None = None
        self._labels: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "label":
            self._label_for = attributes.get("for")
        elif tag == "input" and attributes.get("name") == "sessionid":
            self.form.sessionid = attributes.get("value")
        elif tag == "input" and attributes.get("type") == "submit":
            self.form.buttons.append(attributes.get("value", ""))
        elif tag == "input":
            self._names_by_id[attributes.get("id", "")] = attributes.get("name", "")

    def handle_data(self, data: str) -> None:
        if self._label_for is not None and data.strip():
            self._labels[data.strip()] = self._label_for
            self._label_for = None

    def result(self) -> Form:
        for label, input_id in self._labels.items():
            self.form.inputs_by_label[label] = self._names_by_id[input_id]
        return self.form


def read_form(page: str) -> Form:
    reader = _FormReader()
    reader.feed(page)
    return reader.result()


class WebClient:
    def __init__(self, device: DeviceEmulator, ca_file: Path) -> None:
        self.base = device.base_url
        self.session = requests.Session()
        # Without this, REQUESTS_CA_BUNDLE in the environment would replace ``verify``.
        self.session.trust_env = False
        self.session.verify = str(ca_file)

    def login(self, password: str = PASSWORD) -> requests.Response:
        fields = {"username": USERNAME, "password": password}
        buttons = {"submitbutton": "Login", "formbutton": "Login"}
        return self.session.post(f"{self.base}/login", data=fields | buttons, timeout=10)

    def get(self, path: str) -> requests.Response:
        return self.session.get(f"{self.base}{path}", timeout=10)

    def post(self, path: str, data: dict[str, str], files: dict[str, bytes]) -> requests.Response:
        uploads = {name: ("upload.pem", content) for name, content in files.items()}
        return self.session.post(f"{self.base}{path}", data=data, files=uploads or None, timeout=10)

    def submit(
        self, path: str, button: str, files: dict[str, bytes] | None = None
    ) -> requests.Response:
        form = read_form(self.get(path).text)
        assert form.sessionid
        assert button in form.buttons
        data = {"sessionid": form.sessionid, "submitbutton": button, "formbutton": button}
        by_name = {form.inputs_by_label[label]: content for label, content in (files or {}).items()}
        return self.post(path, data, by_name)


def outcome(response: requests.Response) -> tuple[str, str]:
    """The ("success" | "error", text) message a form page shows."""
    page = response.text
    for kind in ("success", "error"):
        marker = f'<p class="{kind}">'
        if marker in page:
            return kind, page.split(marker, 1)[1].split("</p>", 1)[0]
    return "", ""


@pytest.fixture
def web(start_device: StartDevice, tmp_path: Path) -> Callable[[DeviceEmulator], WebClient]:
    def connect(device: DeviceEmulator) -> WebClient:
        ca_file = tmp_path / f"device-ca-{device.https_port}.pem"
        ca_file.write_bytes(device.ca_pem)
        return WebClient(device, ca_file)

    return connect


def rest(device: DeviceEmulator, tmp_path: Path) -> requests.Session:
    ca_file = tmp_path / f"device-ca-{device.https_port}.pem"
    ca_file.write_bytes(device.ca_pem)
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_file)
    session.auth = (USERNAME, PASSWORD)
    return session


def presented(port: int, ca_pem: bytes, hostname: str) -> x509.Certificate:
    """The certificate a fresh TLS handshake shows, verified against ``ca_pem``."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def issued(**options: Any) -> pki.Issued:
    return pki.make_leaf(ISSUING_ROOT, [NAME], **options)


def server_files(leaf: pki.Issued, key_pem: bytes | None = None) -> dict[str, bytes]:
    key = leaf.key_pem() if key_pem is None else key_pem
    return {KEY_LABEL: key, CERTIFICATE_LABEL: leaf.certificate_pem}


# --- login and the form contract ---------------------------------------------------------------


def test_login_sets_both_cookies_and_a_failed_login_sets_none(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device()
    good, bad = web(device), web(device)

    bad.login(password="wrong")
    good.login()

    assert set(bad.session.cookies.keys()) == set()
    assert set(good.session.cookies.keys()) == {"SHARPID", "tandberg_login"}
    assert [event.accepted for event in device.events_of("login")] == [False, True]


@pytest.mark.parametrize("kept", [(), ("SHARPID",), ("tandberg_login",)])
def test_form_pages_need_both_login_cookies(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient], kept: tuple[str, ...]
) -> None:
    device = start_device()
    client = web(device)
    client.login()
    for name in {"SHARPID", "tandberg_login"} - set(kept):
        client.session.cookies.clear(domain="127.0.0.1", path="/", name=name)

    response = client.get("/servercertificate")

    assert response.url.endswith("/login")
    assert read_form(response.text).sessionid is None


def test_a_post_without_login_uploads_nothing(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device()
    client = web(device)
    leaf = issued()
    fields = {"sessionid": "guess", "submitbutton": UPLOAD_BUTTON, "formbutton": UPLOAD_BUTTON}

    response = client.post("/servercertificate", fields, {"fvk93q_sc": leaf.certificate_pem})

    assert response.url.endswith("/login")
    assert device.events_of("server-certificate") == []


def test_a_stale_sessionid_is_refused(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device()
    client = web(device)
    client.login()
    first = read_form(client.get("/trustedcacertificate").text)
    second = read_form(client.get("/trustedcacertificate").text)
    button = {"submitbutton": RESET_BUTTON, "formbutton": RESET_BUTTON}

    stale = client.post("/trustedcacertificate", {"sessionid": str(first.sessionid)} | button, {})

    assert first.sessionid != second.sessionid
    assert stale.status_code == 403
    assert outcome(stale)[0] == "error"
    assert not device.ca_reset_pressed


def test_a_missing_sessionid_is_refused(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device()
    client = web(device)
    client.login()
    client.get("/restart")
    button = {"submitbutton": RESTART_BUTTON, "formbutton": RESTART_BUTTON}

    response = client.post("/restart", button, {})

    assert response.status_code == 403
    assert device.events_of("restart") == []


def test_a_sessionid_serves_one_post(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device()
    client = web(device)
    client.login()
    form = read_form(client.get("/trustedcacertificate").text)
    data = {"sessionid": str(form.sessionid), "submitbutton": RESET_BUTTON}
    data["formbutton"] = RESET_BUTTON

    first = client.post("/trustedcacertificate", data, {})
    again = client.post("/trustedcacertificate", data, {})

    assert first.status_code == 200
    assert again.status_code == 403
    assert len(device.events_of("trusted-ca-reset")) == 1


def test_formbutton_must_repeat_the_button(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device()
    client = web(device)
    client.login()
    form = read_form(client.get("/restart").text)

    response = client.post(
        "/restart", {"sessionid": str(form.sessionid), "submitbutton": "Restart"}, {}
    )

    assert response.status_code == 403
    assert device.events_of("restart") == []


def test_randomized_field_names_are_found_by_label_only(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device(randomize_field_names=True)
    client = web(device)
    client.login()
    old = read_form(client.get("/servercertificate").text)
    new = read_form(client.get("/servercertificate").text)
    leaf = issued()
    fields = {"sessionid": str(new.sessionid), "submitbutton": UPLOAD_BUTTON}
    fields["formbutton"] = UPLOAD_BUTTON
    old_names = {old.inputs_by_label[CERTIFICATE_LABEL]: leaf.certificate_pem}

    with_old_names = client.post("/servercertificate", fields, old_names)
    by_label = client.submit("/servercertificate", UPLOAD_BUTTON, server_files(leaf))

    assert old.inputs_by_label != new.inputs_by_label
    assert with_old_names.status_code == 403
    assert outcome(by_label)[0] == "success"
    assert device.pending_fingerprint() == fingerprint(leaf.certificate)


# --- REST transport ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("release", "status_without_header"),
    [("X14.1", 200), ("X14.2", 403), ("X14.3.2", 403), ("X15.5", 403)],
)
def test_csrf_header_is_needed_from_x14_2(
    start_device: StartDevice, tmp_path: Path, release: str, status_without_header: int
) -> None:
    device = start_device("expressway-e", release)
    client = rest(device, tmp_path)
    url = f"{device.base_url}/api/provisioning/restart"

    without = client.post(url, timeout=10)
    restarts_after_without = len(device.events_of("restart"))
    with_header = client.post(url, headers=CSRF, timeout=10)

    assert without.status_code == status_without_header
    assert restarts_after_without == (1 if status_without_header == 200 else 0)
    assert with_header.status_code == 200


def test_rest_needs_the_admin_password(start_device: StartDevice, tmp_path: Path) -> None:
    device = start_device()
    client = rest(device, tmp_path)
    client.auth = (USERNAME, "wrong")

    response = client.post(f"{device.base_url}/api/provisioning/restart", headers=CSRF, timeout=10)

    assert response.status_code == 401
    assert device.events_of("restart") == []


def test_version_is_on_the_overview_and_in_the_status_api(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient], tmp_path: Path
) -> None:
    device = start_device("expressway-e", "X15.4.1")
    client = web(device)
    client.login()
    api = rest(device, tmp_path)

    overview = client.get("/overview").text
    status = api.get(f"{device.base_url}/api/status/common/systeminformation", timeout=10)
    raml = api.get(f"{device.base_url}/api/raml", timeout=10)

    assert "<tr><th>Software version</th><td>X15.4.1</td></tr>" in overview
    assert status.json()["SoftwareVersion"] == "X15.4.1"
    assert raml.status_code == 200
    assert raml.text.startswith("#%RAML")


# --- what the device accepts -------------------------------------------------------------------


def test_server_auth_only_is_refused_on_x14_3_expressway_c(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device("expressway-c", "X14.3")
    client = web(device)
    client.login()
    leaf = issued(usages=pki.SERVER_ONLY)

    response = client.submit("/servercertificate", UPLOAD_BUTTON, server_files(leaf))

    kind, text = outcome(response)
    assert (kind, "Client Authentication" in text) == ("error", True)
    assert [event.accepted for event in device.events_of("server-certificate")] == [False]
    assert device.pending_fingerprint() is None


def test_server_auth_only_is_accepted_on_x15_5_expressway_c(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device("expressway-c", "X15.5")
    client = web(device)
    client.login()
    leaf = issued(usages=pki.SERVER_ONLY)

    response = client.submit("/servercertificate", UPLOAD_BUTTON, server_files(leaf))

    assert outcome(response)[0] == "success"
    assert device.pending_fingerprint() == fingerprint(leaf.certificate)


@pytest.mark.parametrize(
    ("leaf_options", "key_pem", "formats", "refusal"),
    [
        ({}, pki.key_pem(pki.cached_key(), password=b"secret"), None, "password protected"),
        ({}, pki.key_pem(pki.cached_key(), "pkcs1"), ("pkcs8",), "pkcs1 format"),
        ({}, pki.key_pem(pki.cached_key("rsa2048", slot=1)), None, "does not match"),
        ({"names": ["*.example.test"]}, None, None, "Wildcard"),
        ({"key_kind": "p256"}, None, None, None),
        ({"key_kind": "p384"}, pki.key_pem(pki.cached_key("p384"), "sec1"), None, None),
        ({}, pki.key_pem(pki.cached_key(), "pkcs1"), None, None),
    ],
)
def test_server_certificate_rules(
    start_device: StartDevice,
    web: Callable[[DeviceEmulator], WebClient],
    leaf_options: dict[str, object],
    key_pem: bytes | None,
    formats: tuple[str, ...] | None,
    refusal: str | None,
) -> None:
    options = {} if formats is None else {"key_formats": formats}
    device = start_device("expressway-e", "X14.3", **options)
    client = web(device)
    client.login()
    leaf_arguments = dict(leaf_options)
    names = leaf_arguments.pop("names", [NAME])
    leaf = pki.make_leaf(ISSUING_ROOT, names, **leaf_arguments)  # type: ignore[arg-type]

    response = client.submit("/servercertificate", UPLOAD_BUTTON, server_files(leaf, key_pem))

    kind, text = outcome(response)
    assert kind == ("success" if refusal is None else "error")
    assert refusal is None or refusal in text


@pytest.mark.parametrize(
    ("role", "release", "server_eku_upload", "accepted"),
    [
        ("vcs", "X8.11.4", False, False),
        ("expressway-c", "X15.4", True, False),
        ("expressway-e", "X15.3.2", False, False),
        ("expressway-e", "X15.4", False, False),
        ("expressway-e", "X15.4", True, True),
        ("expressway-e", "X15.5", False, True),
    ],
)
def test_emulator_and_agent_rules_agree_on_server_auth_only(
    start_device: StartDevice,
    web: Callable[[DeviceEmulator], WebClient],
    role: str,
    release: str,
    server_eku_upload: bool,
    accepted: bool,
) -> None:
    device = start_device(role, release, server_eku_upload=server_eku_upload)
    client = web(device)
    client.login()
    leaf = issued(usages=pki.SERVER_ONLY)
    profile = DeviceProfile(Role(role), Release.parse(release), server_eku_upload, (NAME,))
    chain = [ISSUING_ROOT.certificate]

    response = client.submit("/servercertificate", UPLOAD_BUTTON, server_files(leaf))
    verdict = check_bundle(profile, leaf.certificate, leaf.key, chain, pki.now())

    assert (outcome(response)[0] == "success") is accepted
    assert verdict.accepted is accepted


def test_ecdsa_is_refused_before_x14_3(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device("expressway-e", "X14.2.7")
    client = web(device)
    client.login()

    response = client.submit(
        "/servercertificate", UPLOAD_BUTTON, server_files(issued(key_kind="p256"))
    )

    assert outcome(response) == ("error", "ECDSA keys are supported from X14.3")


def test_a_key_file_without_final_newline_is_taken_but_noted(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device()
    client = web(device)
    client.login()
    leaf = issued()

    client.submit("/servercertificate", UPLOAD_BUTTON, server_files(leaf, leaf.key_pem().rstrip()))
    client.submit("/servercertificate", UPLOAD_BUTTON, server_files(leaf))

    first, second = device.events_of("server-certificate")
    assert first.accepted
    assert first.notes == ("key-file-without-final-newline",)
    assert second.accepted
    assert second.notes == ()


# --- certificates change only with a restart ---------------------------------------------------


def test_an_upload_is_presented_only_after_a_restart(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device(verify_ports=2)
    client = web(device)
    client.login()
    leaf = issued()
    factory = presented(device.https_port, device.ca_pem, "127.0.0.1")

    client.submit("/servercertificate", UPLOAD_BUTTON, server_files(leaf))
    before_restart = presented(device.https_port, device.ca_pem, "127.0.0.1")
    restart = client.submit("/restart", RESTART_BUTTON)
    ports = [device.https_port, *device.verify_ports]
    after = [presented(port, ISSUING_ROOT.certificate_pem, NAME) for port in ports]

    assert before_restart == factory
    assert restart.status_code == 200
    assert all(certificate == leaf.certificate for certificate in after)
    assert device.presented_fingerprint() == fingerprint(leaf.certificate)


def test_a_restart_that_does_not_take(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device()
    client = web(device)
    client.login()
    leaf = issued()
    client.submit("/servercertificate", UPLOAD_BUTTON, server_files(leaf))
    device.break_restarts()

    client.submit("/restart", RESTART_BUTTON)

    assert presented(device.verify_ports[0], device.ca_pem, "127.0.0.1") != leaf.certificate
    assert device.pending_fingerprint() == fingerprint(leaf.certificate)
    assert [event.accepted for event in device.events_of("restart")] == [False]
    assert client.get("/overview").url.endswith("/login")  # a restart ends web sessions


def test_key_on_device_flow_over_rest(start_device: StartDevice, tmp_path: Path) -> None:
    device = start_device("expressway-e", "X15.4")
    api = rest(device, tmp_path)
    base = f"{device.base_url}/api/provisioning"
    request = {"Additional_FQDNS": ["peer.example.test"], "KeyLength": 2048, "Country": "NL"}

    none_yet = api.get(f"{base}/certs/generate_csr", timeout=10)
    generated = api.post(f"{base}/certs/generate_csr", json=request, headers=CSRF, timeout=10)
    csr_pem = api.get(f"{base}/certs/generate_csr", timeout=10).json()["CSR"]
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    certificate = pki.sign_request(ISSUING_ROOT, csr)
    files = {"file": ("server.pem", pki.certificate_pem(certificate))}
    upload = api.post(f"{base}/certs/server", files=files, headers=CSRF, timeout=10)
    api.post(f"{base}/restart", headers=CSRF, timeout=10)

    assert none_yet.status_code == 404
    assert generated.status_code == 200
    assert upload.status_code == 200, upload.text
    assert (
        presented(device.https_port, ISSUING_ROOT.certificate_pem, "peer.example.test")
        == certificate
    )


def test_rest_upload_for_a_key_the_device_does_not_hold_is_refused(
    start_device: StartDevice, tmp_path: Path
) -> None:
    device = start_device("expressway-e", "X15.4")
    api = rest(device, tmp_path)
    base = f"{device.base_url}/api/provisioning"
    files = {"file": ("server.pem", issued().certificate_pem)}

    without_csr = api.post(f"{base}/certs/server", files=files, headers=CSRF, timeout=10)
    api.post(f"{base}/certs/generate_csr", json={}, headers=CSRF, timeout=10)
    other_key = api.post(f"{base}/certs/server", files=files, headers=CSRF, timeout=10)

    assert without_csr.status_code == 400
    assert other_key.status_code == 400
    assert "does not match" in other_key.json()["Message"]
    assert device.pending_fingerprint() is None


# --- the trusted CA list -----------------------------------------------------------------------


def test_a_ca_without_basic_constraints_is_refused(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device()
    client = web(device)
    client.login()
    before = device.trusted_ca_pem()
    bare = pki.make_root("Bare CA", basic_constraints=None)

    response = client.submit(
        "/trustedcacertificate", APPEND_BUTTON, {CA_LABEL: bare.certificate_pem}
    )

    assert outcome(response)[0] == "error"
    assert "BasicConstraints" in outcome(response)[1]
    assert device.trusted_ca_pem() == before


def test_appending_to_the_trusted_list(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient], tmp_path: Path
) -> None:
    device = start_device()
    client = web(device)
    client.login()
    twin = pki.make_root("Test Issuing Root CA")  # same subject and issuer, other key

    appended = client.submit(
        "/trustedcacertificate", APPEND_BUTTON, {CA_LABEL: ISSUING_ROOT.certificate_pem}
    )
    identical = client.submit(
        "/trustedcacertificate", APPEND_BUTTON, {CA_LABEL: ISSUING_ROOT.certificate_pem}
    )
    replaced = client.submit(
        "/trustedcacertificate", APPEND_BUTTON, {CA_LABEL: twin.certificate_pem}
    )
    shown = client.get("/trustedcacertificate?show=pem").content
    over_rest = rest(device, tmp_path).get(
        f"{device.base_url}/api/provisioning/certs/root", timeout=10
    )

    assert outcome(appended)[0] == "success"
    assert "must be deleted before it can be replaced" in outcome(identical)[1]
    assert "must be deleted before it can be replaced" in outcome(replaced)[1]
    listed = x509.load_pem_x509_certificates(shown)
    assert listed.count(ISSUING_ROOT.certificate) == 1
    assert twin.certificate not in listed
    assert over_rest.content == shown == device.trusted_ca_pem()


def test_a_reset_is_recorded(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device()
    client = web(device)
    client.login()
    factory = device.trusted_ca_pem()
    client.submit("/trustedcacertificate", APPEND_BUTTON, {CA_LABEL: ISSUING_ROOT.certificate_pem})

    client.submit("/trustedcacertificate", RESET_BUTTON)

    assert device.ca_reset_pressed
    assert device.trusted_ca_pem() == factory


# --- faults ------------------------------------------------------------------------------------


def test_injected_errors_and_dropped_connections(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device()
    client = web(device)

    device.fail_next_requests(2, status=503)
    statuses = [client.get("/login").status_code for _ in range(3)]
    device.drop_next_connections(1)
    with pytest.raises(requests.ConnectionError):
        client.get("/login")

    assert statuses == [503, 503, 200]
    assert client.get("/login").status_code == 200


def test_slow_answers(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device()
    client = web(device)
    device.set_delay(0.2)

    started = time.monotonic()
    client.get("/login")

    assert time.monotonic() - started >= 0.2


def test_refused_logins(
    start_device: StartDevice, web: Callable[[DeviceEmulator], WebClient]
) -> None:
    device = start_device()
    client = web(device)
    device.refuse_logins()

    client.login()

    assert set(client.session.cookies.keys()) == set()
    assert [event.accepted for event in device.events_of("login")] == [False]


def test_the_device_is_unreachable_while_it_restarts(
    start_device: StartDevice, tmp_path: Path
) -> None:
    device = start_device()
    device.set_restart_downtime(0.3)
    api = rest(device, tmp_path)
    api.post(f"{device.base_url}/api/provisioning/restart", headers=CSRF, timeout=10)

    with pytest.raises((ssl.SSLError, OSError)):
        presented(device.verify_ports[0], device.ca_pem, "127.0.0.1")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            presented(device.verify_ports[0], device.ca_pem, "127.0.0.1")
            break
        except (ssl.SSLError, OSError):
            time.sleep(0.05)
    else:
        pytest.fail("the device did not come back after its downtime")


def test_events_serialise_for_failure_reports(start_device: StartDevice) -> None:
    device = start_device()

    assert json.dumps([event.__dict__ for event in device.events]) == "[]"
