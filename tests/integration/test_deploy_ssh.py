"""Renew and deploy over SSH to a real OpenSSH server standing in for the appliance's shell."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from emulator import pki
from support.cli import Cli
from support.configs import for_pebble, http01
from support.filetls import FileTlsPort
from support.pebble import PebbleServer
from support.sshd import SshServer

from vcs_acme.store import Store

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="sshd and chown need root (CI runs as root)"),
]


def test_renew_deploys_over_ssh_and_verifies_after_the_restart(
    tmp_path: Path, pebble: PebbleServer, cli: Cli
) -> None:
    factory = pki.make_leaf(pki.make_root("Factory CA"), ["vcs.example.com"])
    with SshServer() as ssh:
        certs = ssh.certs_dir
        (certs / "server.pem").write_bytes(factory.certificate_pem)
        (certs / "privkey.pem").write_bytes(factory.key_pem())
        (certs / "ca.pem").write_bytes(b"")
        with FileTlsPort(certs) as port:
            config = for_pebble(tmp_path, pebble, root_ca_file=str(tmp_path / "root.pem"))
            (tmp_path / "root.pem").write_text(pebble.roots_pem(0))
            config.devices = [{
                "name": "exp-e-ssh", "host": ssh.host, "role": "expressway-e",
                "release": "X15.5", "access": "ssh", "username": ssh.user,
                "restart": "immediately", "verify_ports": [port.port],
                "verify_timeout_seconds": 5,
                "ssh": {
                    "port": ssh.port, "known_hosts": str(ssh.known_hosts),
                    "key_file": str(ssh.client_key),
                    "certificate_path": str(certs / "server.pem"),
                    "key_path": str(certs / "privkey.pem"), "ca_path": str(certs / "ca.pem"),
                    "owner": "nobody:nogroup", "restart_command": port.restart_command,
                },
            }]  # fmt: skip
            config.certificate(
                "edge",
                ["edge.example.com"],
                key_type="ec256",
                challenge=http01(pebble),
                devices=["exp-e-ssh"],
            )

            result = cli("--config", str(config.write()), "renew")

            assert result.code == 0, result.out
            version = Store(config.state).lineage("edge").current()
            assert version is not None
            wanted = version.meta["fingerprint"]
            assert f"device exp-e-ssh: verified (presents {wanted})" in result.out
            assert (certs / "server.pem").read_bytes() == version.cert_pem
            assert (certs / "server.pem.vcs-acme-previous").read_bytes() == (
                factory.certificate_pem
            )
            assert pebble.roots_pem(0).strip() in (certs / "ca.pem").read_text()
            assert (certs / "privkey.pem").stat().st_mode & 0o777 == 0o600
