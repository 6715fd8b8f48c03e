"""The REST API: HTTP Basic, JSON answers, and the CSRF header from X14.2 on."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable

from vcs_acme.devices import Release

from .acceptance import RefusalError
from .messages import BadFormError, Credentials, Request, Response, json_answer
from .state import Device

logger = logging.getLogger(__name__)

_FIRST_CSRF_RELEASE = Release.parse("X14.2")


_RAML = """#%RAML 1.0
title: Emulated appliance REST API (certificate subset)
baseUri: https://{host}/api
/provisioning/certs/server: {post: {description: upload the certificate for the CSR key}}
/provisioning/certs/root: {get: {}, post: {description: append trusted CA certificates}}
/provisioning/certs/generate_csr: {get: {}, post: {}}
/provisioning/restart: {post: {}}
/status/common/systeminformation: {get: {}}
"""


class RestInterface:
    def __init__(self, device: Device, credentials: Credentials) -> None:
        self._device = device
        self._credentials = credentials
        self._routes: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("GET", "/api/raml"): lambda _: Response(200, _RAML.encode(), "application/raml+yaml"),
            # Assumed: the reference knows only that the version is under /api/status/common/.
            ("GET", "/api/status/common/systeminformation"): self._system_information,
            ("POST", "/api/provisioning/certs/server"): self._upload_server,
            ("GET", "/api/provisioning/certs/root"): self._trusted,
            ("POST", "/api/provisioning/certs/root"): self._append_trusted,
            ("GET", "/api/provisioning/certs/generate_csr"): self._csr,
            ("POST", "/api/provisioning/certs/generate_csr"): self._generate_csr,
            ("POST", "/api/provisioning/restart"): self._restart,
        }

    def handle(self, request: Request) -> Response:
        if not self._authorized(request):
            return json_answer(401, {"Message": "Authentication required"}, _BASIC_CHALLENGE)
        csrf_needed = self._device.acceptance.release >= _FIRST_CSRF_RELEASE
        if request.method == "POST" and csrf_needed and "X-CSRF-Header" not in request.headers:
            return json_answer(403, {"Message": "Missing X-CSRF-Header"})
        route = self._routes.get((request.method, request.path))
        if route is None:
            return json_answer(404, {"Message": "No such resource"})
        try:
            return route(request)
        except RefusalError as refusal:
            return json_answer(400, {"Message": str(refusal)})

    def _authorized(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return self._credentials.match(username, password)

    def _system_information(self, _: Request) -> Response:
        acceptance = self._device.acceptance
        return json_answer(
            200,
            {
                "SoftwareVersion": str(acceptance.release),
                "ProductType": acceptance.role.label,
                "SystemHostName": self._device.fqdn,
            },
        )

    def _upload_server(self, request: Request) -> Response:
        self._device.upload_server_certificate(_multipart_file(request), None, "rest")
        return json_answer(200, {"Message": "Server certificate uploaded; restart to use it"})

    def _trusted(self, _: Request) -> Response:
        return Response(200, self._device.trusted_pem(), "application/x-pem-file")

    def _append_trusted(self, request: Request) -> Response:
        count = self._device.append_trusted(_multipart_file(request), "rest")
        return json_answer(200, {"Message": f"{count} CA certificate(s) appended"})

    def _csr(self, _: Request) -> Response:
        csr = self._device.csr_pem()
        if csr is None:
            return json_answer(404, {"Message": "No certificate signing request in progress"})
        return json_answer(200, {"CSR": csr.decode()})

    def _generate_csr(self, request: Request) -> Response:
        try:
            fields = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as error:
            raise RefusalError("The request body is not JSON") from error
        self._device.generate_csr(fields)
        return json_answer(200, {"Message": "Certificate signing request generated"})

    def _restart(self, _: Request) -> Response:
        self._device.restart("rest")
        return json_answer(200, {"Message": "Restarting"})


_BASIC_CHALLENGE = ("WWW-Authenticate", 'Basic realm="Administrator"')


def _multipart_file(request: Request) -> bytes:
    try:
        form = request.form()
    except BadFormError as error:
        raise RefusalError(f"Send the certificate as multipart field 'file' ({error})") from error
    if "file" not in form:
        raise RefusalError("Send the certificate as multipart field 'file'")
    return form["file"]
