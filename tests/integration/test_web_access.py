"""The web way in against the emulated appliance: what the device saw, what the agent reports."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator import pki
from emulator.agent import bundle_of, device_settings, write_ca_file
from emulator.device import DeviceEmulator, fingerprint
from support.devices import StartDevice, device_starter

from vcs_acme.config_devices import DeviceSettings, TlsTrust
from vcs_acme.devices.access import DeviceError
from vcs_acme.devices.tls import presented_fingerprint
from vcs_acme.devices.web import WebAccess
from vcs_acme.pki import fingerprint as colon_fingerprint
from vcs_acme.pki import split_pem_chain

pytestmark = pytest.mark.integration

USERNAME = "admin"
PASSWORD = "web-password-7f3a"
NAME = "exp-c.example.test"
ROOT = pki.make_root("Web Test Root CA")
INTERMEDIATE = pki.make_intermediate(ROOT, "Web Test Issuing CA")
CHAIN = [INTERMEDIATE, ROOT]
# A CA that never signed anything the emulator presents.
STRANGER = pki.make_root("Unrelated Root CA")


@pytest.fixture
def start_device() -> Iterator[StartDevice]:
    """Emulators with random form field names unless a test asks otherwise."""
    with device_starter(
        USERNAME, PASSWORD, "expressway-c", "X14.3.2", randomize_field_names=True
    ) as start:
        yield start


@pytest.fixture
def emulator(start_device: StartDevice) -> DeviceEmulator:
    return start_device()


@pytest.fixture
def trusted(emulator: DeviceEmulator, tmp_path: Path) -> DeviceSettings:
    """Settings that trust the emulator's interface CA through a CA file."""
    ca_file = write_ca_file(tmp_path, emulator.ca_pem)
    return device_settings(emulator, PASSWORD, TlsTrust(ca_file=ca_file))


@pytest.fixture
def access(trusted: DeviceSettings) -> Iterator[WebAccess]:
    web = WebAccess(trusted)
    yield web
    web.close()


def leaf_for(*names: str, usages: tuple[Any, ...] = pki.SERVER_AND_CLIENT) -> pki.Issued:
    return pki.make_leaf(INTERMEDIATE, list(names or (NAME,)), usages=usages)


def install_leaf(access: WebAccess, leaf: pki.Issued) -> None:
    access.upload_server_certificate(bundle_of(leaf.certificate, leaf.key_pem(), CHAIN))
    access.restart()


def refusal(call: Callable[[], object]) -> DeviceError:
    with pytest.raises(DeviceError) as caught:
        call()
    return caught.value


# --- reading and writing ---------------------------------------------------------------------


def test_release_is_read_from_the_overview(emulator: DeviceEmulator, access: WebAccess) -> None:
    assert access.software_release() == "X14.3.2"

    logins = emulator.events_of("login")
    assert [(event.accepted, event.channel) for event in logins] == [(True, "web")]


def test_certificate_and_key_go_into_the_inputs_found_by_label(
    emulator: DeviceEmulator, access: WebAccess
) -> None:
    leaf = leaf_for()
    interface = emulator.presented_fingerprint()

    access.upload_server_certificate(bundle_of(leaf.certificate, leaf.key_pem(), CHAIN))

    uploads = emulator.events_of("server-certificate")
    assert [(event.accepted, event.channel) for event in uploads] == [(True, "web")]
    assert uploads[0].detail == fingerprint(leaf.certificate)
    assert emulator.pending_fingerprint() == fingerprint(leaf.certificate)
    assert emulator.presented_fingerprint() == interface  # only a restart activates it


def test_one_login_serves_every_step(emulator: DeviceEmulator, access: WebAccess) -> None:
    leaf = leaf_for()

    access.software_release()
    access.upload_server_certificate(bundle_of(leaf.certificate, leaf.key_pem(), CHAIN))
    access.append_trusted_cas([ca.certificate_pem for ca in CHAIN])

    assert len(emulator.events_of("login")) == 1


def test_refused_upload_is_permanent_and_carries_the_device_text(
    start_device: StartDevice, tmp_path: Path
) -> None:
    # X14.3 Expressway-C needs clientAuth in its server certificate; the agent must relay why.
    emulator = start_device("expressway-c", "X14.3.2")
    settings = device_settings(
        emulator, PASSWORD, TlsTrust(write_ca_file(tmp_path, emulator.ca_pem))
    )
    leaf = leaf_for(usages=pki.SERVER_ONLY)

    error = refusal(
        lambda: WebAccess(settings).upload_server_certificate(
            bundle_of(leaf.certificate, leaf.key_pem(), CHAIN)
        )
    )

    [upload] = emulator.events_of("server-certificate")
    assert not upload.accepted
    assert not error.transient
    assert "TLS Web Client Authentication" in upload.detail
    assert upload.detail in str(error)
    assert emulator.pending_fingerprint() is None


def test_trusted_list_is_read_and_only_grows(emulator: DeviceEmulator, access: WebAccess) -> None:
    before = access.trusted_cas()
    assert before == split_pem_chain(emulator.trusted_ca_pem())
    assert len(before) == 2  # the emulator's factory list

    access.append_trusted_cas([ca.certificate_pem for ca in CHAIN])
    after = access.trusted_cas()

    assert after[: len(before)] == before
    assert after[len(before) :] == [ca.certificate_pem for ca in CHAIN]
    assert after == split_pem_chain(emulator.trusted_ca_pem())
    appends = emulator.events_of("trusted-ca-append")
    assert [(event.accepted, event.detail) for event in appends] == [(True, "2 appended")]
    assert not emulator.ca_reset_pressed


def test_nothing_to_append_sends_nothing(emulator: DeviceEmulator, access: WebAccess) -> None:
    access.append_trusted_cas([])

    assert emulator.events_of("trusted-ca-append") == []
    assert not any(seen.method == "POST" for seen in emulator.requests_seen)


def test_restart_makes_the_device_present_the_new_leaf(
    emulator: DeviceEmulator, access: WebAccess
) -> None:
    leaf = leaf_for()

    install_leaf(access, leaf)

    [restart] = emulator.events_of("restart")
    assert (restart.accepted, restart.channel) == (True, "web")
    wanted = colon_fingerprint(leaf.certificate)
    assert presented_fingerprint(emulator.host, emulator.https_port) == wanted
    assert presented_fingerprint(emulator.host, emulator.verify_ports[0]) == wanted
    assert not emulator.ca_reset_pressed


# --- failures: which ones pass by themselves ------------------------------------------------


def test_wrong_password_is_a_permanent_login_refusal(
    emulator: DeviceEmulator, trusted: DeviceSettings
) -> None:
    settings = device_settings(emulator, "not-the-password", trusted.tls)

    error = refusal(WebAccess(settings).software_release)

    assert not error.transient
    assert "login refused" in str(error)
    assert "not-the-password" not in str(error)
    assert [event.accepted for event in emulator.events_of("login")] == [False]


def test_device_refusing_logins_is_permanent(emulator: DeviceEmulator, access: WebAccess) -> None:
    emulator.refuse_logins()

    error = refusal(access.software_release)

    assert not error.transient
    assert "login refused" in str(error)
    assert PASSWORD not in str(error)


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_transient(
    emulator: DeviceEmulator, access: WebAccess, status: int
) -> None:
    access.software_release()
    emulator.fail_next_requests(1, status)

    error = refusal(access.software_release)

    assert error.transient
    assert f"HTTP {status}" in str(error)
    assert access.software_release() == "X14.3.2"  # it passed by itself


def test_dropped_connection_is_transient(emulator: DeviceEmulator, access: WebAccess) -> None:
    access.software_release()
    emulator.drop_next_connections(1)

    error = refusal(access.software_release)

    assert error.transient
    assert access.software_release() == "X14.3.2"


def test_answer_slower_than_the_timeout_is_transient(
    emulator: DeviceEmulator, trusted: DeviceSettings
) -> None:
    settings = device_settings(emulator, PASSWORD, trusted.tls, request_timeout_seconds=0.5)
    emulator.set_delay(5.0)
    started = time.monotonic()

    error = refusal(WebAccess(settings).software_release)

    assert error.transient
    assert time.monotonic() - started < 5.0  # given up at the timeout, not after the answer


def test_restart_page_failing_is_not_reported_as_a_restart(
    emulator: DeviceEmulator, access: WebAccess
) -> None:
    access.software_release()
    emulator.fail_next_requests(1, 500)

    error = refusal(access.restart)

    assert error.transient
    assert emulator.events_of("restart") == []


def test_device_hanging_up_during_the_handshake_is_transient(
    emulator: DeviceEmulator, access: WebAccess
) -> None:
    emulator.set_restart_downtime(30.0)
    access.restart()

    error = refusal(WebAccess(access.device).software_release)

    assert error.transient


# --- TLS: trust comes from the settings alone -----------------------------------------------


def test_wrong_ca_file_is_refused_before_anything_is_sent(
    emulator: DeviceEmulator, tmp_path: Path
) -> None:
    stranger = write_ca_file(tmp_path, STRANGER.certificate_pem)
    settings = device_settings(emulator, PASSWORD, TlsTrust(ca_file=stranger))

    error = refusal(WebAccess(settings).software_release)

    assert not error.transient
    assert "not trusted" in str(error)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    assert emulator.requests_seen == []


def test_pinned_fingerprint_of_the_interface_certificate_is_trusted(
    emulator: DeviceEmulator,
) -> None:
    pin = TlsTrust(fingerprint=emulator.presented_fingerprint())

    assert WebAccess(device_settings(emulator, PASSWORD, pin)).software_release() == "X14.3.2"


def test_wrong_pinned_fingerprint_is_refused(emulator: DeviceEmulator) -> None:
    pin = TlsTrust(fingerprint=fingerprint(STRANGER.certificate))

    error = refusal(WebAccess(device_settings(emulator, PASSWORD, pin)).software_release)

    assert not error.transient
    assert "not trusted" in str(error)
    assert emulator.requests_seen == []


# urllib3 warns of its own on every unverified request; the agent's warning is the one checked.
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_unverified_tls_works_and_warns(
    emulator: DeviceEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    settings = device_settings(emulator, PASSWORD, TlsTrust(verify=False))

    with caplog.at_level(logging.WARNING, logger="vcs_acme"):
        assert WebAccess(settings).software_release() == "X14.3.2"

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("emulated" in r.getMessage() and "not verified" in r.getMessage() for r in warnings)


def test_known_lineage_certificate_is_trusted_though_its_name_differs(
    emulator: DeviceEmulator, access: WebAccess, trusted: DeviceSettings
) -> None:
    # The new leaf names exp-c.example.test, not 127.0.0.1, and its CA is not in the CA file.
    leaf = leaf_for()
    install_leaf(access, leaf)
    known = {colon_fingerprint(leaf.certificate)}

    refused = refusal(WebAccess(trusted).software_release)
    assert not refused.transient
    assert "not trusted" in str(refused)

    assert WebAccess(trusted, known_fingerprints=known).software_release() == "X14.3.2"
    assert [event.accepted for event in emulator.events_of("login")] == [True, True]


def test_environment_does_not_decide_trust(
    emulator: DeviceEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment names the emulator's real CA; the settings name another one.
    device_ca = write_ca_file(tmp_path, emulator.ca_pem)
    stranger = write_ca_file(tmp_path, STRANGER.certificate_pem, "stranger.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(device_ca))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(device_ca))

    for trust in (TlsTrust(ca_file=stranger), TlsTrust()):
        settings = device_settings(emulator, PASSWORD, trust)
        error = refusal(WebAccess(settings).software_release)
        assert not error.transient
        assert "not trusted" in str(error)
    assert emulator.requests_seen == []
