"""``vcs-acme check`` for devices: reachable, login accepted, release known, and a forecast.

The forecast answers "will this device take what this CA issues?" from the certificate last
issued for it (the CA's profile shows in it) and the device's rules, before anything is
uploaded. Nothing on a device is changed: only reads and a login.
"""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import dataclass

from cryptography import x509

from vcs_acme import bundle as bundles
from vcs_acme import pki
from vcs_acme.config import CertificateSettings, Settings
from vcs_acme.config_devices import DeviceSettings
from vcs_acme.deploy import open_access
from vcs_acme.devices.access import DeviceError
from vcs_acme.devices.release import Release
from vcs_acme.devices.rules import DeviceProfile, check_bundle
from vcs_acme.store import Store

CONNECT_SECONDS = 5.0


@dataclass(frozen=True)
class Line:
    status: str  # "ok", "FAIL", "info"
    what: str
    detail: str


def device_lines(settings: Settings, now: dt.datetime) -> list[Line]:
    lines: list[Line] = []
    for device in settings.devices:
        lines += _device(settings, device, now)
    return lines


def _device(settings: Settings, device: DeviceSettings, now: dt.datetime) -> list[Line]:
    what = f"device {device.name}"
    if device.access == "folder":
        return [_folder(device, what)]
    port = device.ssh.port if device.access == "ssh" else device.port
    try:
        socket.create_connection((device.host, port), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        return [Line("FAIL", what, f"{device.host}:{port} unreachable ({error.strerror or error}); "
                     "check the address, the firewall and the port")]  # fmt: skip
    release, login = _login_and_release(device, _known(settings, device))
    if release is None:
        return [Line("FAIL", what, login)]
    lines = [Line("ok", what, f"reachable, {login}, {device.role.label} {release}")]
    return lines + _forecasts(settings, device, release, now)


def _folder(device: DeviceSettings, what: str) -> Line:
    assert device.folder is not None
    parent = device.folder.path
    if parent.is_dir() or parent.parent.is_dir():
        return Line("ok", what, f"bundles are written to {parent / device.name}")
    return Line("FAIL", what, f"{parent} does not exist; create it")


def _known(settings: Settings, device: DeviceSettings) -> set[str]:
    """Fingerprints of every version this agent may have put on the device."""
    store = Store(settings.state_dir)
    known: set[str] = set()
    for certificate in settings.certificates:
        if device.name in certificate.devices:
            known |= store.lineage(certificate.name).fingerprints()
    return known


def _login_and_release(device: DeviceSettings, known: set[str]) -> tuple[Release | None, str]:
    access = open_access(device, known)
    try:
        if device.access == "ssh":
            access.trusted_cas()  # logs in and reads, changes nothing
            detected = None
        else:
            detected = access.software_release()
    except DeviceError as error:
        return None, str(error)
    finally:
        access.close()
    login = "login accepted"
    if device.release is not None:
        if detected and Release.parse(detected) != device.release:
            said = f"reports release {detected}, the configuration says {device.release}"
            return None, f"{said}; correct release, or leave it out to read it from the device"
        return device.release, login
    if not detected:
        return None, f"{login}, but its release is unknown; set release"
    try:
        return Release.parse(detected), f"{login}, release read from the device"
    except ValueError as problem:
        return None, f"reports release {detected!r}: {problem}"


def _forecasts(
    settings: Settings, device: DeviceSettings, release: Release, now: dt.datetime
) -> list[Line]:
    lines = []
    for certificate in settings.certificates:
        if device.name in certificate.devices:
            lines.append(_forecast(settings, certificate, device, release, now))
    return lines


def _forecast(
    settings: Settings,
    certificate: CertificateSettings,
    device: DeviceSettings,
    release: Release,
    now: dt.datetime,
) -> Line:
    what = f"device {device.name} <- {certificate.name}"
    version = Store(settings.state_dir).lineage(certificate.name).current()
    if version is None:
        return Line("info", what, "no certificate issued yet; `vcs-acme renew --dry-run` shows "
                    "what the CA issues")  # fmt: skip
    profile = DeviceProfile(device.role, release, device.server_eku_upload, device.required_names)
    leaf = x509.load_pem_x509_certificate(version.cert_pem)
    key = pki.load_key(version.key_pem) if version.has_key else None
    cas = bundles.ca_list(version, settings.acme.root_ca_file)
    verdict = check_bundle(profile, leaf, key, [x509.load_pem_x509_certificate(c) for c in cas],
                           now)  # fmt: skip
    if verdict.accepted:
        notes = "; ".join(f.reason for f in verdict.warnings)
        return Line("ok", what, f"version {version.number} would be accepted"
                    + (f" (warnings: {notes})" if notes else ""))  # fmt: skip
    reasons = "; ".join(f"{f.reason} (remedy: {f.remedy})" for f in verdict.violations)
    return Line("FAIL", what, f"version {version.number} would be refused: {reasons}")
