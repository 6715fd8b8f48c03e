"""The REST way in against the emulated appliance: the key stays on the device, every POST is
CSRF-marked, and the agent reports the device's answers faithfully."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from emulator import pki
from emulator.agent import bundle_of, device_settings, write_ca_file
from emulator.device import DeviceEmulator, fingerprint
from support.devices import StartDevice, device_starter

from vcs_acme.config_devices import DeviceSettings, TlsTrust
from vcs_acme.devices.access import DeviceError
from vcs_acme.devices.rest import RestAccess
from vcs_acme.devices.tls import presented_fingerprint
from vcs_acme.pki import fingerprint as colon_fingerprint
from vcs_acme.pki import split_pem_chain

pytestmark = pytest.mark.integration

USERNAME = "admin"
PASSWORD = "rest-password-91c2"
DEVICE_NAME = "exp-e.example.test"
EXTRA_NAMES = ("mra.example.test", "collab.example.test")
ROOT = pki.make_root("REST Test Root CA")
INTERMEDIATE = pki.make_intermediate(ROOT, "REST Test Issuing CA")
CHAIN = [INTERMEDIATE, ROOT]


@pytest.fixture
def start_device() -> Iterator[StartDevice]:
    with device_starter(USERNAME, PASSWORD, "expressway-e", "X14.3.2", fqdn=DEVICE_NAME) as start:
        yield start


@pytest.fixture
def emulator(start_device: StartDevice) -> DeviceEmulator:
    return start_device()


@pytest.fixture
def trusted(emulator: DeviceEmulator, tmp_path: Path) -> DeviceSettings:
    ca_file = write_ca_file(tmp_path, emulator.ca_pem)
    return device_settings(emulator, PASSWORD, TlsTrust(ca_file=ca_file), access="rest")


@pytest.fixture
def access(trusted: DeviceSettings) -> Iterator[RestAccess]:
    rest = RestAccess(trusted)
    yield rest
    rest.close()


def refusal(call: Callable[[], object]) -> DeviceError:
    with pytest.raises(DeviceError) as caught:
        call()
    return caught.value


def signed_for_device(access: RestAccess) -> x509.Certificate:
    """Have the device make its key and CSR, and a test CA sign it with both usages."""
    request = x509.load_pem_x509_csr(access.certificate_signing_request(EXTRA_NAMES, 2048))
    return pki.sign_request(INTERMEDIATE, request, usages=pki.SERVER_AND_CLIENT)


def posts_without_csrf_header(emulator: DeviceEmulator) -> list[str]:
    return [
        seen.path
        for seen in emulator.requests_seen
        if seen.method == "POST" and "x-csrf-header" not in seen.header_names
    ]


def test_release_is_read_from_system_information(
    emulator: DeviceEmulator, access: RestAccess
) -> None:
    assert access.software_release() == "X14.3.2"
    assert [seen.path for seen in emulator.requests_seen] == [
        "/api/status/common/systeminformation"
    ]


def test_device_made_key_is_certified_uploaded_and_activated(
    emulator: DeviceEmulator, access: RestAccess
) -> None:
    assert access.key_on_device

    certificate = signed_for_device(access)
    access.upload_server_certificate(bundle_of(certificate, None, CHAIN))
    access.restart()

    [csr] = emulator.events_of("csr")
    assert csr.detail == ", ".join((DEVICE_NAME, *EXTRA_NAMES))
    [upload] = emulator.events_of("server-certificate")
    assert (upload.accepted, upload.channel) == (True, "rest")
    assert upload.detail == fingerprint(certificate)
    [restart] = emulator.events_of("restart")
    assert (restart.accepted, restart.channel) == (True, "rest")
    wanted = colon_fingerprint(certificate)
    assert presented_fingerprint(emulator.host, emulator.https_port) == wanted
    assert presented_fingerprint(emulator.host, emulator.verify_ports[0]) == wanted


@pytest.mark.parametrize("bits", [2048, 4096])
def test_the_device_makes_a_key_of_the_size_asked_for(access: RestAccess, bits: int) -> None:
    request = x509.load_pem_x509_csr(access.certificate_signing_request(EXTRA_NAMES, bits))
    public = request.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == bits


def test_a_key_size_the_device_does_not_make_is_refused_with_its_words(
    access: RestAccess,
) -> None:
    error = refusal(lambda: access.certificate_signing_request(EXTRA_NAMES, 3072))
    assert "KeyLength must be one of (2048, 4096)" in str(error)
    assert not error.transient


def test_every_post_carries_the_csrf_header(emulator: DeviceEmulator, access: RestAccess) -> None:
    certificate = signed_for_device(access)
    access.upload_server_certificate(bundle_of(certificate, None, CHAIN))
    access.append_trusted_cas([ca.certificate_pem for ca in CHAIN])
    access.restart()

    posts = [seen.path for seen in emulator.requests_seen if seen.method == "POST"]
    assert posts == [
        "/api/provisioning/certs/generate_csr",
        "/api/provisioning/certs/server",
        "/api/provisioning/certs/root",
        "/api/provisioning/restart",
    ]
    assert posts_without_csrf_header(emulator) == []


def test_private_key_is_never_sent(access: RestAccess, emulator: DeviceEmulator) -> None:
    leaf = pki.make_leaf(INTERMEDIATE, [DEVICE_NAME])

    error = refusal(
        lambda: access.upload_server_certificate(bundle_of(leaf.certificate, leaf.key_pem(), CHAIN))
    )

    assert not error.transient
    assert emulator.requests_seen == []


def test_certificate_for_another_key_is_refused_with_the_device_text(
    emulator: DeviceEmulator, access: RestAccess
) -> None:
    signed_for_device(access)
    foreign = pki.make_leaf(INTERMEDIATE, [DEVICE_NAME]).certificate

    error = refusal(lambda: access.upload_server_certificate(bundle_of(foreign, None, CHAIN)))

    [upload] = emulator.events_of("server-certificate")
    assert not upload.accepted
    assert not error.transient
    assert upload.detail in str(error)
    assert emulator.pending_fingerprint() is None


def test_trusted_list_is_read_and_only_grows(emulator: DeviceEmulator, access: RestAccess) -> None:
    before = access.trusted_cas()
    assert before == split_pem_chain(emulator.trusted_ca_pem())

    access.append_trusted_cas([ca.certificate_pem for ca in CHAIN])
    after = access.trusted_cas()

    assert after == [*before, *(ca.certificate_pem for ca in CHAIN)]
    appends = emulator.events_of("trusted-ca-append")
    assert [(event.accepted, event.channel) for event in appends] == [(True, "rest")]
    assert not emulator.ca_reset_pressed


def test_refused_basic_credentials_are_permanent(
    emulator: DeviceEmulator, trusted: DeviceSettings
) -> None:
    settings = device_settings(emulator, "not-the-password", trusted.tls, access="rest")

    error = refusal(RestAccess(settings).software_release)

    assert not error.transient
    assert "login refused" in str(error)
    assert "not-the-password" not in str(error)


def test_server_error_and_dropped_connection_are_transient(
    emulator: DeviceEmulator, access: RestAccess
) -> None:
    emulator.fail_next_requests(1, 500)
    assert refusal(access.software_release).transient

    emulator.drop_next_connections(1)
    assert refusal(access.software_release).transient

    assert access.software_release() == "X14.3.2"


def test_restart_answered_with_a_server_error_is_not_reported_as_a_restart(
    emulator: DeviceEmulator, access: RestAccess
) -> None:
    emulator.fail_next_requests(1, 500)

    error = refusal(access.restart)

    assert error.transient
    assert emulator.events_of("restart") == []


def test_device_hanging_up_during_the_handshake_is_transient(
    emulator: DeviceEmulator, access: RestAccess
) -> None:
    emulator.set_restart_downtime(30.0)
    access.restart()

    error = refusal(RestAccess(access.device).software_release)

    assert error.transient
