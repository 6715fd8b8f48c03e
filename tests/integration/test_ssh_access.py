"""The ssh way in against a real OpenSSH server, its files under a temporary device root."""

from __future__ import annotations

import grp
import logging
import os
import pwd
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator.pki import make_leaf, make_root
from support.ports import free_port
from support.sshd import SshServer

from vcs_acme import pki
from vcs_acme.config_devices import DeviceSettings, SshSettings
from vcs_acme.devices.access import Bundle, DeviceError
from vcs_acme.devices.rules import Role
from vcs_acme.devices.ssh import SshAccess
from vcs_acme.secrets import Secret

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="sshd logs in as root and files change owner"),
]

# The appliance's owner is _nobody:nobody; this system has nobody:nogroup.
OWNER = "nobody:nogroup"


@pytest.fixture
def server() -> Iterator[SshServer]:
    with SshServer() as started:
        yield started


def device(
    server: SshServer,
    *,
    key_file: Path | None = None,
    password: Secret | None = None,
    known_hosts: Path | None = None,
    port: int | None = None,
    owner: str = OWNER,
    restart_command: str = "true",
) -> DeviceSettings:
    """Settings of a device served by ``server``; the authorized key unless told otherwise."""
    certs = server.certs_dir
    ssh = SshSettings(
        port=port or server.port,
        known_hosts=known_hosts or server.known_hosts,
        key_file=key_file or (None if password else server.client_key),
        certificate_path=str(certs / "server.pem"),
        key_path=str(certs / "privkey.pem"),
        ca_path=str(certs / "ca.pem"),
        owner=owner,
        restart_command=restart_command,
    )
    return DeviceSettings(
        name="vcs-1", host=server.host, role=Role("expressway-e"), access="ssh",
        username=server.user, password=password, ssh=ssh,
    )  # fmt: skip


@pytest.fixture
def access(server: SshServer) -> Iterator[SshAccess]:
    opened = SshAccess(device(server))
    yield opened
    opened.close()


def failure(settings: DeviceSettings) -> DeviceError:
    """The DeviceError a first use of ``settings`` ends with."""
    access = SshAccess(settings)
    try:
        with pytest.raises(DeviceError) as caught:
            access.trusted_cas()
    finally:
        access.close()
    return caught.value


def make_bundle() -> Bundle:
    root = make_root()
    leaf = make_leaf(root, ["vcs.example.com"], key_kind="p256")
    return Bundle(
        leaf_pem=leaf.certificate_pem,
        key_pem=leaf.key_pem(),
        ca_pems=(root.certificate_pem,),
        fingerprint=pki.fingerprint(leaf.certificate),
    )


def ca_pems(count: int) -> list[bytes]:
    return [make_root(f"Trusted CA {index}").certificate_pem for index in range(count)]


def owned_by_owner(path: Path) -> bool:
    status = path.stat()
    return (status.st_uid, status.st_gid) == (
        pwd.getpwnam("nobody").pw_uid,
        grp.getgrnam("nogroup").gr_gid,
    )


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def fingerprint_by_ssh_keygen(public_key: Path) -> str:
    listing = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(public_key)], check=True, capture_output=True, text=True
    )
    return listing.stdout.split()[1]


# Upload


def test_upload_writes_leaf_and_key_with_modes_and_owner(
    server: SshServer, access: SshAccess
) -> None:
    bundle = make_bundle()

    access.upload_server_certificate(bundle)

    certificate, key = server.certs_dir / "server.pem", server.certs_dir / "privkey.pem"
    assert certificate.read_bytes() == bundle.leaf_pem
    assert key.read_bytes() == bundle.key_pem
    assert (mode(certificate), mode(key)) == (0o644, 0o600)
    assert owned_by_owner(certificate)
    assert owned_by_owner(key)
    assert sorted(path.name for path in server.certs_dir.iterdir()) == [
        "privkey.pem",
        "server.pem",
    ]


def test_upload_keeps_the_previous_files(server: SshServer, access: SshAccess) -> None:
    old, new = make_bundle(), make_bundle()
    access.upload_server_certificate(old)

    access.upload_server_certificate(new)

    certs = server.certs_dir
    assert (certs / "server.pem").read_bytes() == new.leaf_pem
    assert (certs / "server.pem.vcs-acme-previous").read_bytes() == old.leaf_pem
    assert (certs / "privkey.pem.vcs-acme-previous").read_bytes() == old.key_pem
    assert mode(certs / "privkey.pem.vcs-acme-previous") == 0o600
    assert owned_by_owner(certs / "privkey.pem.vcs-acme-previous")
    assert not list(certs.glob("*.vcs-acme-new"))


def test_upload_never_logs_the_key(access: SshAccess, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bundle = make_bundle()
    assert bundle.key_pem is not None

    access.upload_server_certificate(bundle)

    key_body = bundle.key_pem.splitlines()[1].decode()
    assert "privkey.pem" in caplog.text
    assert key_body not in caplog.text


def test_upload_into_a_missing_folder_is_refused(server: SshServer, access: SshAccess) -> None:
    server.certs_dir.rmdir()

    with pytest.raises(
        DeviceError, match=re.escape("server.pem.vcs-acme-new: no such file")
    ) as caught:
        access.upload_server_certificate(make_bundle())

    assert not caught.value.transient


def test_a_failing_chown_is_reported_with_its_message(server: SshServer) -> None:
    access = SshAccess(device(server, owner="no-such-user:nogroup"))

    with pytest.raises(DeviceError, match="invalid user") as caught:
        access.upload_server_certificate(make_bundle())
    access.close()

    assert "setting the owner no-such-user:nogroup failed with status 1" in str(caught.value)


# Trusted CA list


def test_trusted_cas_of_a_missing_list_is_empty(access: SshAccess) -> None:
    assert access.trusted_cas() == []


def test_append_trusted_cas_only_adds(server: SshServer, access: SshAccess) -> None:
    ca_file = server.certs_dir / "ca.pem"
    first, second = ca_pems(2), ca_pems(1)
    # A list written by hand may lack its last newline.
    ca_file.write_bytes(b"".join(first).rstrip(b"\n"))
    before = ca_file.read_bytes()

    access.append_trusted_cas(second)

    after = ca_file.read_bytes()
    assert after.startswith(before)
    assert access.trusted_cas() == [*first, *second]
    assert (server.certs_dir / "ca.pem.vcs-acme-previous").read_bytes() == before
    assert owned_by_owner(ca_file)


def test_append_trusted_cas_creates_a_missing_list(server: SshServer, access: SshAccess) -> None:
    added = ca_pems(2)

    access.append_trusted_cas(added)

    assert (server.certs_dir / "ca.pem").read_bytes() == b"".join(added)
    assert not (server.certs_dir / "ca.pem.vcs-acme-previous").exists()


# Host keys


def test_an_unknown_host_key_is_refused_before_anything_is_written(server: SshServer) -> None:
    empty = server.folder / "empty_known_hosts"
    empty.write_text("")
    access = SshAccess(device(server, known_hosts=empty))

    with pytest.raises(DeviceError) as caught:
        access.upload_server_certificate(make_bundle())
    access.close()

    seen = fingerprint_by_ssh_keygen(server.folder / "host_key.pub")
    assert f"host key ssh-ed25519 {seen} of {server.host}:{server.port} is not in" in str(
        caught.value
    )
    assert f"ssh-keyscan -p {server.port} {server.host} >> {empty}" in str(caught.value)
    assert not caught.value.transient
    assert list(server.certs_dir.iterdir()) == []


def test_a_changed_host_key_is_refused_before_anything_is_written(server: SshServer) -> None:
    other = server.make_key("other_host_key")
    known_hosts = server.folder / "other_known_hosts"
    server.write_known_hosts(known_hosts, other)
    access = SshAccess(device(server, known_hosts=known_hosts))

    with pytest.raises(DeviceError, match="CHANGED") as caught:
        access.upload_server_certificate(make_bundle())
    access.close()

    assert fingerprint_by_ssh_keygen(server.folder / "host_key.pub") in str(caught.value)
    assert fingerprint_by_ssh_keygen(other.with_suffix(".pub")) in str(caught.value)
    assert not caught.value.transient
    assert list(server.certs_dir.iterdir()) == []


def test_a_missing_known_hosts_file_says_how_to_get_one(server: SshServer) -> None:
    missing = server.folder / "missing_known_hosts"

    error = failure(device(server, known_hosts=missing))

    assert f"known_hosts file {missing} does not exist" in str(error)
    assert f"ssh-keyscan -p {server.port} {server.host} >> {missing}" in str(error)


# Logins


def test_a_key_that_is_not_authorized_is_refused(server: SshServer) -> None:
    error = failure(device(server, key_file=server.stranger_key))

    assert f"login refused for {server.user}" in str(error)
    assert not error.transient


def test_a_wrong_password_is_refused_and_never_shown(
    server: SshServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = secrets.token_urlsafe(16)

    error = failure(device(server, password=Secret(password, "test")))

    assert f"login refused for {server.user}" in str(error)
    assert not error.transient
    assert password not in str(error) + repr(error) + caplog.text


def test_an_unreachable_port_is_transient(server: SshServer) -> None:
    port = free_port()

    error = failure(device(server, port=port))

    assert f"cannot connect to {server.host}:{port}" in str(error)
    assert error.transient


# Restart and the rest


def test_restart_runs_the_configured_command(server: SshServer) -> None:
    marker = server.folder / "restarted"
    access = SshAccess(device(server, restart_command=f"touch {marker}"))

    access.restart()

    assert marker.exists()


def test_a_failing_restart_command_is_reported_with_its_stderr(server: SshServer) -> None:
    command = "echo 'restart refused: maintenance mode' >&2; exit 3"
    access = SshAccess(device(server, restart_command=command))

    with pytest.raises(DeviceError) as caught:
        access.restart()

    assert "failed with status 3: restart refused: maintenance mode" in str(caught.value)
    assert not caught.value.transient


def test_a_restart_that_ends_the_session_counts_as_done(server: SshServer) -> None:
    # Ending the session's own sshd process drops the connection as a reboot does.
    access = SshAccess(device(server, restart_command="kill -KILL $PPID"))

    access.restart()

    assert access.trusted_cas() == []  # and the next use logs in again
    access.close()


def test_what_the_ssh_way_cannot_do(access: SshAccess) -> None:
    assert access.key_on_device is False
    assert access.software_release() is None
    with pytest.raises(DeviceError, match="cannot make a key and CSR"):
        access.certificate_signing_request(("vcs.example.com",), 2048)
