"""Renew and deploy to emulated VCS / Expressway devices: what an administrator would see."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator import pki
from emulator.device import DeviceEmulator
from support.cli import Cli
from support.configs import ConfigFile, for_pebble, http01
from support.devices import bare, device_entry
from support.pebble import PebbleConfig, PebbleServer

from vcs_acme import config as config_module
from vcs_acme.devices.access import Bundle
from vcs_acme.devices.web import WebAccess
from vcs_acme.pki import fingerprint as pki_fingerprint
from vcs_acme.pki import generate_key, key_to_pem, load_certificates
from vcs_acme.store import Store

pytestmark = pytest.mark.integration

PASSWORD = "Adm1n-secret!"


@pytest.fixture(scope="module")
def pebble24() -> Iterator[PebbleServer]:
    """Debian 12's Pebble: its leaves carry clientAuth, as every VCS needs."""
    with PebbleServer(PebbleConfig(version="2.4")) as server:
        yield server


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "device-password"
    path.write_text(PASSWORD + "\n")
    return path


def configure(tmp_path: Path, pebble: PebbleServer) -> ConfigFile:
    root = tmp_path / "pebble-root.pem"
    root.write_text(pebble.roots_pem(0))
    return for_pebble(tmp_path, pebble, root_ca_file=str(root))


def status_devices(cli: Cli, config: ConfigFile) -> dict[str, dict[str, object]]:
    result = cli("--config", str(config.path), "status", "--json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)["certificates"]
    return {d["name"]: d for row in rows for d in row["devices"]}


def current_fingerprint(config: ConfigFile, name: str) -> str:
    version = Store(config.state).lineage(name).current()
    assert version is not None
    return str(version.meta["fingerprint"])


def uploads(emulator: DeviceEmulator) -> list[str]:
    return [e.detail for e in emulator.events_of("server-certificate") if e.accepted]


def test_renew_deploys_to_two_devices_and_verifies_them(
    tmp_path: Path, pebble24: PebbleServer, cli: Cli, password_file: Path
) -> None:
    config = configure(tmp_path, pebble24)
    with (
        DeviceEmulator("vcs", "X14.3.2", "admin", PASSWORD, randomize_field_names=True) as vcs,
        DeviceEmulator("expressway-e", "X12.7", "admin", PASSWORD) as exp,
    ):
        trusted_before = {vcs: vcs.trusted_ca_pem(), exp: exp.trusted_ca_pem()}
        config.devices = [
            device_entry("vcs-1", vcs, tmp_path, password_file, release="X14.3.2"),
            device_entry("exp-e-1", exp, tmp_path, password_file),  # release read from the device
        ]
        config.certificate(
            "video",
            ["vcs.example.com", "exp.example.com"],
            key_type="rsa2048",
            challenge=http01(pebble24),
            devices=["vcs-1", "exp-e-1"],
        )

        result = cli("--config", str(config.write()), "renew")

        assert result.code == 0, result.out
        wanted = current_fingerprint(config, "video")
        assert f"  device vcs-1: verified (presents {wanted})" in result.out
        assert f"  device exp-e-1: verified (presents {wanted})" in result.out
        for emulator in (vcs, exp):
            assert emulator.presented_fingerprint() == bare(wanted)
            assert emulator.trusted_ca_pem().startswith(trusted_before[emulator])
            assert pebble24.roots_pem(0).strip().encode() in emulator.trusted_ca_pem()
            assert not emulator.ca_reset_pressed
        devices = status_devices(cli, config)
        assert devices["vcs-1"]["state"] == "verified"
        assert devices["vcs-1"]["fingerprint"] == wanted
        assert devices["exp-e-1"]["verified_at"] is not None
        assert "verified" in cli("--config", str(config.path), "status").out


def test_a_server_auth_only_certificate_is_refused_before_any_upload(
    tmp_path: Path, pebble: PebbleServer, cli: Cli, password_file: Path
) -> None:
    config = configure(tmp_path, pebble)  # Pebble 2.10: serverAuth only
    with DeviceEmulator("expressway-c", "X14.3", "admin", PASSWORD) as expc:
        config.devices = [device_entry("exp-c", expc, tmp_path, password_file, release="X14.3")]
        config.certificate(
            "core", ["expc.example.com"], challenge=http01(pebble), devices=["exp-c"]
        )

        result = cli("--config", str(config.write()), "renew")

        assert result.code == 1
        line = next(x for x in result.out.splitlines() if "device exp-c" in x)
        assert line.startswith("  device exp-c: refused:")
        assert "clientAuth" in line
        assert expc.events_of("server-certificate") == []
        assert expc.events_of("login") == []
        assert status_devices(cli, config)["exp-c"]["state"] == "refused"


def test_restart_policy_never_leaves_the_device_pending(
    tmp_path: Path, pebble24: PebbleServer, cli: Cli, password_file: Path
) -> None:
    config = configure(tmp_path, pebble24)
    with DeviceEmulator("vcs", "X8.11.4", "admin", PASSWORD) as vcs:
        before = vcs.presented_fingerprint()
        entry = device_entry(
            "vcs-1",
            vcs,
            tmp_path,
            password_file,
            restart="never",
            release="X8.11.4",
            key_format="traditional",
        )
        config.devices = [entry]
        config.certificate(
            "video", ["vcs.example.com"], challenge=http01(pebble24), devices=["vcs-1"]
        )

        result = cli("--config", str(config.write()), "renew")

        assert result.code == 0, result.out
        assert "device vcs-1: pending-restart: version 1 uploaded" in result.out
        wanted = current_fingerprint(config, "video")
        assert (vcs.presented_fingerprint(), vcs.pending_fingerprint()) == (before, bare(wanted))
        assert status_devices(cli, config)["vcs-1"]["state"] == "pending-restart"

        entry["restart"] = "immediately"
        deployed = cli("--config", str(config.write()), "deploy")

        assert deployed.code == 0, deployed.out
        assert "device vcs-1: verified" in deployed.out
        assert len(uploads(vcs)) == 1  # only restarted, not uploaded again
        assert vcs.presented_fingerprint() == bare(wanted)


def test_drift_is_found_and_repaired_without_reissuing(
    tmp_path: Path, pebble24: PebbleServer, cli: Cli, password_file: Path
) -> None:
    config = configure(tmp_path, pebble24)
    corporate = pki.make_root("Corporate Root CA")
    with DeviceEmulator("vcs", "X14.3", "admin", PASSWORD) as vcs:
        entry = device_entry("vcs-1", vcs, tmp_path, password_file)
        # The administrator's trust for the device: its factory CA and the corporate CA.
        trust = Path(entry["tls_ca_file"])
        trust.write_bytes(vcs.ca_pem + corporate.certificate_pem)
        config.devices = [entry]
        config.certificate(
            "video", ["vcs.example.com"], challenge=http01(pebble24), devices=["vcs-1"]
        )
        path = str(config.write())
        assert cli("--config", path, "renew").code == 0
        # Someone installs a certificate by hand, from the corporate CA.
        foreign = pki.make_leaf(corporate, ["vcs.example.com"], ip_addresses=["127.0.0.1"])
        device = config_module.load(config.path).device("vcs-1")
        access = WebAccess(device, {current_fingerprint(config, "video")})
        access.upload_server_certificate(
            Bundle(foreign.certificate_pem, foreign.key_pem(), (), "foreign")
        )
        access.restart()
        access.close()
        assert vcs.presented_fingerprint() == bare(pki_fingerprint(foreign.certificate))

        result = cli("--config", path, "renew")

        assert result.code == 0, result.out
        assert "video: not due" in result.out
        assert "device vcs-1: verified" in result.out
        assert Store(config.state).lineage("video").numbers() == [1]
        assert vcs.presented_fingerprint() == bare(current_fingerprint(config, "video"))


def test_a_failed_upload_keeps_the_old_certificate_and_is_caught_up_later(
    tmp_path: Path, pebble24: PebbleServer, cli: Cli, password_file: Path
) -> None:
    config = configure(tmp_path, pebble24)
    with DeviceEmulator("vcs", "X14.3", "admin", PASSWORD) as vcs:
        before = vcs.presented_fingerprint()
        config.devices = [device_entry("vcs-1", vcs, tmp_path, password_file)]
        config.certificate(
            "video", ["vcs.example.com"], challenge=http01(pebble24), devices=["vcs-1"]
        )
        vcs.fail_next_requests(50, status=500)

        failed = cli("--config", str(config.write()), "renew")

        assert failed.code == 1
        assert "device vcs-1: failed:" in failed.out
        assert "HTTP 500" in failed.out
        assert vcs.presented_fingerprint() == before
        assert Store(config.state).lineage("video").numbers() == [1]
        state = status_devices(cli, config)["vcs-1"]
        assert (state["state"], state["version"]) == ("failed", 1)

        vcs.fail_next_requests(0)
        again = cli("--config", str(config.path), "renew")

        assert again.code == 0, again.out
        assert "video: not due" in again.out
        assert "device vcs-1: verified" in again.out
        assert Store(config.state).lineage("video").numbers() == [1]


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("refuse_logins", "login refused for user 'admin'"),
        ("drop_next_connections", "failed: device vcs-1: POST /login failed: ConnectionError"),
        ("break_restarts", "after the restart it still presents"),
    ],
)
def test_faults_are_reported_and_nothing_is_lost(
    tmp_path: Path, pebble24: PebbleServer, cli: Cli, password_file: Path, fault: str, expected: str
) -> None:
    config = configure(tmp_path, pebble24)
    with DeviceEmulator("vcs", "X14.3", "admin", PASSWORD) as vcs:
        before = vcs.presented_fingerprint()
        config.devices = [
            device_entry("vcs-1", vcs, tmp_path, password_file, verify_timeout_seconds=2)
        ]
        config.certificate(
            "video", ["vcs.example.com"], challenge=http01(pebble24), devices=["vcs-1"]
        )
        if fault == "drop_next_connections":
            vcs.drop_next_connections(100)
        else:
            getattr(vcs, fault)()

        result = cli("--config", str(config.write()), "renew")

        assert result.code == 1
        assert expected in result.out
        assert vcs.presented_fingerprint() == before
        assert PASSWORD not in result.out + result.err
        version = Store(config.state).lineage("video").current()
        assert version is not None
        assert version.has_key


def test_a_key_that_does_not_match_is_never_uploaded(
    tmp_path: Path, pebble24: PebbleServer, cli: Cli, password_file: Path
) -> None:
    config = configure(tmp_path, pebble24)
    with DeviceEmulator("vcs", "X14.3", "admin", PASSWORD) as vcs:
        config.devices = [device_entry("vcs-1", vcs, tmp_path, password_file)]
        config.certificate(
            "video", ["vcs.example.com"], challenge=http01(pebble24), devices=["vcs-1"]
        )
        assert cli("--config", str(config.write()), "renew").code == 0
        presented = vcs.presented_fingerprint()
        version = Store(config.state).lineage("video").current()
        assert version is not None
        (version.path / "privkey.pem").write_bytes(key_to_pem(generate_key("rsa2048")))
        uploaded = len(uploads(vcs))

        result = cli("--config", str(config.path), "deploy")

        assert result.code == 1
        assert "device vcs-1: refused:" in result.out
        assert "private key" in result.out
        assert len(uploads(vcs)) == uploaded
        assert vcs.presented_fingerprint() == presented


def test_the_key_stays_on_a_rest_device(
    tmp_path: Path, pebble24: PebbleServer, cli: Cli, password_file: Path
) -> None:
    config = configure(tmp_path, pebble24)
    with DeviceEmulator(
        "expressway-c", "X15.0", "admin", PASSWORD, fqdn="expc.example.com"
    ) as expc:
        config.devices = [device_entry("exp-c", expc, tmp_path, password_file, access="rest")]
        config.certificate(
            "core",
            ["expc.example.com", "expc-cluster.example.com"],
            challenge=http01(pebble24),
            devices=["exp-c"],
        )

        result = cli("--config", str(config.write()), "renew")

        assert result.code == 0, result.out
        version = Store(config.state).lineage("core").current()
        assert version is not None
        assert not version.has_key
        (csr,) = expc.events_of("csr")
        assert csr.detail == "expc.example.com, expc-cluster.example.com"
        # The device accepted the certificate only because it matches the key it kept.
        assert [e.accepted for e in expc.events_of("server-certificate")] == [True]
        assert expc.presented_fingerprint() == bare(str(version.meta["fingerprint"]))
        assert "device exp-c: verified" in result.out


def test_the_folder_way_in_writes_the_bundle_and_runs_the_command(
    tmp_path: Path, pebble24: PebbleServer, cli: Cli
) -> None:
    config = configure(tmp_path, pebble24)
    record = tmp_path / "command-ran"
    script = f'echo "$VCS_ACME_DEVICE $VCS_ACME_FINGERPRINT" > {record}'
    config.devices = [{
        "name": "manual", "host": "127.0.0.1", "role": "vcs", "release": "X14.3",
        "access": "folder", "restart": "never", "verify_ports": [1],
        "folder": {"path": str(tmp_path / "out"), "command": ["sh", "-c", script]},
    }]  # fmt: skip
    config.certificate("video", ["vcs.example.com"], challenge=http01(pebble24), devices=["manual"])

    result = cli("--config", str(config.write()), "renew")

    assert result.code == 0, result.out
    folder = tmp_path / "out" / "manual"
    key = (folder / "server.key").read_bytes()
    assert key.endswith(b"\n")
    assert oct((folder / "server.key").stat().st_mode & 0o777) == "0o600"
    assert load_certificates((folder / "trusted-ca.pem").read_bytes())
    assert record.read_text().split() == ["manual", current_fingerprint(config, "video")]
    assert "device manual: pending-restart" in result.out


def test_check_tests_devices_and_forecasts_what_they_accept(
    tmp_path: Path, pebble: PebbleServer, cli: Cli, password_file: Path
) -> None:
    config = configure(tmp_path, pebble)  # Pebble 2.10: serverAuth-only certificates
    with (
        DeviceEmulator("expressway-c", "X14.3.1", "admin", PASSWORD) as expc,
        DeviceEmulator("expressway-e", "X15.5", "admin", PASSWORD) as expe,
        DeviceEmulator("vcs", "X14.3", "admin", "another password") as vcs,
    ):
        config.devices = [
            device_entry("exp-c", expc, tmp_path, password_file),
            device_entry("exp-e", expe, tmp_path, password_file, release="X15.5"),
            device_entry("vcs", vcs, tmp_path, password_file),
        ]
        config.certificate("video", ["exp.example.com"], challenge=http01(pebble),
                           devices=["exp-c", "exp-e"])  # fmt: skip
        path = str(config.write())
        assert cli("--config", path, "renew").code == 1  # refused on the Expressway-C
        uploads_before = len(uploads(expc)) + len(uploads(expe))

        result = cli("--config", path, "check")

    assert result.code == 1
    lines = result.out.splitlines()
    assert "[  ok] device exp-c: reachable, login accepted, release read from the device, " \
        "Expressway-C X14.3.1" in lines  # fmt: skip
    refused = next(x for x in lines if x.startswith("[FAIL] device exp-c <- video"))
    assert "would be refused" in refused
    assert "clientAuth" in refused
    assert any(x.startswith("[  ok] device exp-e <- video: version 1 would be accepted")
               for x in lines)  # fmt: skip
    assert any(x.startswith("[FAIL] device vcs: device vcs: login refused") for x in lines)
    assert len(uploads(expc)) + len(uploads(expe)) == uploads_before  # check changes nothing
