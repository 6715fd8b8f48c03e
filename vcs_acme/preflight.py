"""``vcs-acme check``: what can be known without changing anything that lasts.

The one change it makes: for each DNS-01 name, a harmless TXT record is added and removed
again, since the right to update a zone cannot be learnt otherwise.
"""

from __future__ import annotations

import datetime as dt
import os

import requests

from vcs_acme.config import Settings
from vcs_acme.errors import VcsAcmeError
from vcs_acme.issuance.dns01.probe import probe_update_rights
from vcs_acme.issuance.network import USER_AGENT
from vcs_acme.preflight_devices import device_lines

OK, FAIL, INFO = "ok", "FAIL", "info"


def _line(status: str, what: str, detail: str) -> None:
    print(f"[{status:>4}] {what}: {detail}")


def run_checks(settings: Settings) -> bool:
    """Print one line per check; true when every check passed."""
    _line(OK, "configuration", f"{settings.source} ({len(settings.certificates)} certificate(s))")
    passed = _check_state(settings)
    passed = _check_dns_updates(settings) and passed
    directory = _fetch_directory(settings)
    if directory is None or not _check_offer(settings, directory):
        passed = False
    for line in device_lines(settings, dt.datetime.now(dt.UTC)):
        _line(line.status, line.what, line.detail)
        passed = passed and line.status != FAIL
    return passed


def _check_state(settings: Settings) -> bool:
    folder = settings.state_dir
    probe = folder if folder.exists() else folder.parent
    if os.access(probe, os.W_OK | os.X_OK):
        _line(OK, "state folder", f"{folder} is writable")
        return True
    _line(FAIL, "state folder", f"{folder} cannot be written by this user")
    return False


def _check_dns_updates(settings: Settings) -> bool:
    """Each DNS-01 name: may its validation record be added and removed?"""
    passed = True
    for certificate in settings.certificates:
        challenge = certificate.challenge
        for name in certificate.domains:
            if challenge.type_for(name) != "dns-01" or challenge.dns is None:
                continue
            what = f"DNS-01 for {name}"
            try:
                _line(OK, what, probe_update_rights(challenge.dns, name))
            except VcsAcmeError as error:
                _line(FAIL, what, str(error))
                passed = False
    return passed


def _fetch_directory(settings: Settings) -> dict[str, object] | None:
    acme = settings.acme
    verify: bool | str = str(acme.ca_bundle) if acme.ca_bundle else True
    try:
        response = requests.get(
            acme.directory_url,
            verify=verify,
            timeout=acme.timeout_seconds,
            headers={"User-Agent": USER_AGENT},
        )
        response.raise_for_status()
        directory = response.json()
    except requests.exceptions.SSLError as error:
        _line(FAIL, "CA directory", f"TLS failed ({error}); set acme.ca_bundle for a private CA")
        return None
    except (requests.RequestException, ValueError) as error:
        _line(FAIL, "CA directory", f"{acme.directory_url} did not answer properly: {error}")
        return None
    if not isinstance(directory, dict) or "newOrder" not in directory:
        _line(FAIL, "CA directory", f"{acme.directory_url} is not an ACME directory")
        return None
    _line(OK, "CA directory", acme.directory_url)
    return directory


def _check_offer(settings: Settings, directory: dict[str, object]) -> bool:
    meta = directory.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    passed = True
    if meta.get("externalAccountRequired") and settings.acme.eab is None:
        _line(FAIL, "account", "the CA requires External Account Binding; set [acme.eab]")
        passed = False
    ari = "offered" if "renewalInfo" in directory else "not offered (lifetime rule applies)"
    _line(INFO, "renewal information (ARI)", ari)
    profiles = meta.get("profiles")
    offered = set(profiles) if isinstance(profiles, dict) else set()
    listed = ", ".join(sorted(offered))
    for certificate in settings.certificates:
        if certificate.profile and offered and certificate.profile not in offered:
            what = f"certificate {certificate.name}"
            _line(FAIL, what, f"profile {certificate.profile!r} not offered (offered: {listed})")
            passed = False
    return passed
