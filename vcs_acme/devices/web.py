"""The web interface: the way in that every VCS and Expressway release has.

Log in through the form and keep the cookies; read each page before posting to it and send
back its ``sessionid``; find file inputs by their label text; press buttons by their label.
Never press "Reset to default CA certificate" and never delete a CA: the trusted list only
grows (VCS certificate deployment guide, trusted CA list section).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from urllib.parse import urljoin

import requests

from vcs_acme import pki
from vcs_acme.config_devices import DeviceSettings
from vcs_acme.devices import forms
from vcs_acme.devices.access import Bundle, DeviceError
from vcs_acme.devices.tls import management_session, send

logger = logging.getLogger(__name__)

KEY_LABEL = "Select the server private key file"
CERTIFICATE_LABEL = "Select the server certificate file"
UPLOAD_BUTTON = "Upload server certificate data"
CA_LABEL = "Select the file containing trusted CA certificates"
APPEND_BUTTON = "Append CA certificate"
SHOW_ALL_LINK = "Show all (PEM file)"
RESTART_BUTTON = "Restart"
LOGIN_COOKIES = ("SHARPID", "tandberg_login")


class WebAccess:
    """One device's web interface, logged in on first use."""

    key_on_device = False

    def __init__(self, device: DeviceSettings, known_fingerprints: Collection[str] = ()) -> None:
        self.device = device
        self._known = known_fingerprints
        self._session: requests.Session | None = None
        self._base = f"https://{device.host}:{device.port}"

    def _url(self, path: str) -> str:
        return urljoin(self._base, path)

    def _fail(self, message: str, *, transient: bool = False) -> DeviceError:
        return DeviceError(self.device.name, message, transient=transient)

    def _send(self, method: str, path: str, **kwargs: object) -> requests.Response:
        session = self._login() if self._session is None else self._session
        return self._raw(session, method, path, **kwargs)

    def _raw(
        self, session: requests.Session, method: str, path: str, **kwargs: object
    ) -> requests.Response:
        response = send(session, self.device.name, method, self._url(path), **kwargs)
        if response.status_code >= 500:
            raise self._fail(f"{method} {path}: HTTP {response.status_code}", transient=True)
        if response.status_code >= 400:
            raise self._fail(f"{method} {path}: HTTP {response.status_code}: {_text(response)}")
        return response

    def _login(self) -> requests.Session:
        session = management_session(self.device, self._known, self.device.request_timeout_seconds)
        password = self.device.password.reveal() if self.device.password else ""
        form = {"username": self.device.username, "password": password,
                "submitbutton": "Login", "formbutton": "Login"}  # fmt: skip
        self._raw(session, "POST", self.device.web.login, data=form, allow_redirects=True)
        if not all(session.cookies.get(name) for name in LOGIN_COOKIES):
            raise self._fail(f"login refused for user {self.device.username!r}; check the password")
        logger.debug("device %s: logged in to the web interface", self.device.name)
        self._session = session
        return session

    def _page(self, path: str) -> forms.Page:
        response = self._send("GET", path)
        if self.device.web.login in response.url and path != self.device.web.login:
            self._session = None  # log in again on the next call
            raise self._fail("the web session ended; try again", transient=True)
        return forms.parse(response.text)

    def _submit(
        self, path: str, button: str, files: dict[str, bytes], *, may_hang_up: bool = False
    ) -> None:
        """Read the page, fill the labelled file inputs, press ``button``, read the outcome.

        With ``may_hang_up``, a connection dropped after the button was pressed counts as
        done: that is what a restarting device does.
        """
        page = self._page(path)
        form = page.form_with_button(button)
        if form is None:
            raise self._fail(f'no "{button}" button on {path}; is the release supported?')
        fields: dict[str, tuple[str, bytes, str]] = {}
        for label, content in files.items():
            name = page.field_for_label(form, label)
            if name is None:
                raise self._fail(f'no file input labelled "{label}" on {path}')
            fields[name] = (name + ".pem", content, "application/x-pem-file")
        data = {**form.hidden, "submitbutton": button, "formbutton": button}
        try:
            response = self._send("POST", form.action or path, data=data, files=fields)
        except DeviceError as error:
            if may_hang_up and error.transient and "HTTP" not in str(error):
                logger.debug("device %s: connection dropped after %s", self.device.name, button)
                return
            raise
        errors = forms.parse(response.text).errors()
        if errors:
            raise self._fail(f'"{button}" refused: {"; ".join(errors)}')
        logger.debug("device %s: %s done", self.device.name, button)

    def software_release(self) -> str | None:
        return forms.parse(self._send("GET", self.device.web.overview).text).cells.get(
            "Software version"
        )

    def certificate_signing_request(self, names: tuple[str, ...], rsa_bits: int) -> bytes:
        raise self._fail("the web way in uploads a key made here; it asks the device for no CSR")

    def upload_server_certificate(self, bundle: Bundle) -> None:
        if bundle.key_pem is None:
            raise self._fail("the web way in needs the private key")
        files = {KEY_LABEL: bundle.key_pem, CERTIFICATE_LABEL: bundle.leaf_pem}
        self._submit(self.device.web.server_certificate, UPLOAD_BUTTON, files)

    def trusted_cas(self) -> list[bytes]:
        page = self._page(self.device.web.trusted_ca)
        link = page.links.get(SHOW_ALL_LINK)
        if link is None:
            raise self._fail(f'no "{SHOW_ALL_LINK}" link on {self.device.web.trusted_ca}')
        text = self._send("GET", urljoin(self._url(self.device.web.trusted_ca), link)).content
        return pki.split_pem_chain(text)

    def append_trusted_cas(self, ca_pems: list[bytes]) -> None:
        if ca_pems:
            self._submit(self.device.web.trusted_ca, APPEND_BUTTON, {CA_LABEL: b"".join(ca_pems)})

    def restart(self) -> None:
        self._submit(self.device.web.restart, RESTART_BUTTON, {}, may_hang_up=True)
        self._session = None  # a restart ends the web session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _text(response: requests.Response) -> str:
    errors = forms.parse(response.text).errors()
    return "; ".join(errors) if errors else response.reason or ""
