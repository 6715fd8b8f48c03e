"""Issuance against a real Pebble 2.10: what a user sees from `vcs-acme renew` and `status`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from support.cli import Cli
from support.configs import ConfigFile, for_pebble, http01
from support.pebble import PebbleConfig, PebbleServer
from support.ports import free_port

from vcs_acme.pki import load_certificates, load_key
from vcs_acme.store import Store

pytestmark = pytest.mark.integration


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file and folder below ``folder`` with its mode and content hash."""
    result = {}
    for path in sorted(folder.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        result[str(path.relative_to(folder))] = (path.stat().st_mode, digest)
    return result


def current(config: ConfigFile, name: str) -> dict[str, object]:
    version = Store(config.state).lineage(name).current()
    assert version is not None
    return version.meta


@pytest.fixture
def config(tmp_path: Path, pebble: PebbleServer) -> ConfigFile:
    return for_pebble(tmp_path, pebble)


def test_ecdsa_and_rsa_certificates_are_issued_and_stored(
    config: ConfigFile, pebble: PebbleServer, cli: Cli
) -> None:
    config.certificate(
        "exp-e",
        ["exp-e.example.com", "mra.example.com"],
        key_type="ec384",
        challenge=http01(pebble),
    )
    config.certificate("vcs", ["vcs.example.com"], key_type="rsa3072", challenge=http01(pebble))

    result = cli("--config", str(config.write()), "renew")

    assert result.code == 0, result.err
    assert "exp-e: renewed: version 1" in result.out
    assert "vcs: renewed: version 1" in result.out
    store = Store(config.state)
    for name, kind, size in (
        ("exp-e", ec.EllipticCurvePrivateKey, 384),
        ("vcs", rsa.RSAPrivateKey, 3072),
    ):
        version = store.lineage(name).current()
        assert version is not None
        key = load_key(version.key_pem)
        assert isinstance(key, kind)
        assert (
            key.curve.key_size if isinstance(key, ec.EllipticCurvePrivateKey) else key.key_size
        ) == size
        chain = load_certificates(version.read("fullchain.pem"))
        assert chain[0].public_key() == key.public_key()
        assert version.read("fullchain.pem") == version.cert_pem + version.read("chain.pem")
        assert oct((version.path / "privkey.pem").stat().st_mode & 0o777) == "0o600"
    sans = load_certificates(store.lineage("exp-e").version(1).cert_pem)[0].extensions
    names = sans.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(names.get_values_for_type(x509.DNSName)) == [
        "exp-e.example.com",
        "mra.example.com",
    ]


def test_the_account_is_stored_once_and_reused(
    config: ConfigFile, pebble: PebbleServer, cli: Cli, caplog: pytest.LogCaptureFixture
) -> None:
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(pebble))
    path = str(config.write())
    caplog.set_level(logging.INFO, logger="vcs_acme")

    assert cli("--config", path, "renew").code == 0
    accounts = list((config.state / "accounts").iterdir())
    stored = (accounts[0] / "account.json").read_text()
    assert "registered a new account" in caplog.text
    caplog.clear()

    assert cli("--config", path, "renew", "--force").code == 0

    assert "registered a new account" not in caplog.text
    assert list((config.state / "accounts").iterdir()) == accounts
    assert (accounts[0] / "account.json").read_text() == stored
    assert oct((accounts[0] / "account-key.pem").stat().st_mode & 0o777) == "0o600"


def test_a_certificate_not_due_is_left_alone(
    config: ConfigFile, pebble: PebbleServer, cli: Cli
) -> None:
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(pebble))
    path = str(config.write())
    assert cli("--config", path, "renew").code == 0

    result = cli("--config", path, "renew")

    assert result.code == 0
    assert "a: not due:" in result.out
    assert Store(config.state).lineage("a").numbers() == [1]


def test_a_configuration_change_makes_it_due(
    config: ConfigFile, pebble: PebbleServer, cli: Cli
) -> None:
    entry = config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(pebble))
    assert cli("--config", str(config.write()), "renew").code == 0
    entry["domains"] = ["a.example.com", "b.example.com"]

    result = cli("--config", str(config.write()), "renew")

    assert "a: renewed: version 2" in result.out
    assert current(config, "a")["domains"] == ["a.example.com", "b.example.com"]


def test_renewal_sends_replaces_and_survives_a_refusal(
    config: ConfigFile, pebble: PebbleServer, cli: Cli, caplog: pytest.LogCaptureFixture
) -> None:
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(pebble))
    path = str(config.write())
    assert cli("--config", path, "renew").code == 0
    first = current(config, "a")

    assert cli("--config", path, "renew", "--force").code == 0
    assert current(config, "a")["replaced"] == first["ari_id"]

    # Version 1 has been replaced already: Pebble refuses to let it be replaced twice.
    (config.state / "certificates" / "a" / "current").write_text("1\n")
    caplog.set_level(logging.WARNING, logger="vcs_acme")
    result = cli("--config", path, "renew", "--force")

    assert result.code == 0, result.out + result.err
    assert "the CA refused 'replaces'" in caplog.text
    assert current(config, "a")["replaced"] is None
    assert current(config, "a")["version"] == 3


def test_a_predecessor_the_ca_does_not_know_does_not_stop_renewal(
    config: ConfigFile, pebble: PebbleServer, cli: Cli, caplog: pytest.LogCaptureFixture
) -> None:
    # As after a move to another CA: the stored certificate names a serial this CA never
    # issued. Pebble answers 'serverInternal'; sending the same 'replaces' again would fail
    # at every later try, so the renewal goes on without it, now and on the next pass.
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(pebble))
    path = str(config.write())
    assert cli("--config", path, "renew").code == 0
    meta_file = config.state / "certificates" / "a" / "versions" / "0001" / "meta.json"
    meta = json.loads(meta_file.read_text())
    key_id = str(meta["ari_id"]).split(".")[0]
    meta["ari_id"] = f"{key_id}.AQIDBAUGBwg"  # serial 0x0102030405060708
    meta_file.write_text(json.dumps(meta))
    caplog.set_level(logging.WARNING, logger="vcs_acme")

    result = cli("--config", path, "renew", "--force")

    assert result.code == 0, result.out + result.err
    assert "the CA refused 'replaces'" in caplog.text
    assert "could not find" in caplog.text  # the CA's own words reach the log
    assert current(config, "a")["version"] == 2
    assert current(config, "a")["replaced"] is None


def test_dry_run_does_the_exchange_and_leaves_the_state_folder_unchanged(
    config: ConfigFile, pebble: PebbleServer, cli: Cli
) -> None:
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(pebble))
    path = str(config.write())

    fresh = cli("--config", path, "renew", "--dry-run")
    assert fresh.code == 0, fresh.err
    assert "a: dry run ok: the CA issued a certificate" in fresh.out
    assert not config.state.exists()

    assert cli("--config", path, "renew").code == 0
    before = snapshot(config.state)
    again = cli("--config", path, "renew", "--dry-run", "--force")
    assert again.code == 0, again.err
    assert "dry run ok" in again.out
    assert snapshot(config.state) == before


def test_a_second_process_is_blocked_by_the_lock(config: ConfigFile, pebble: PebbleServer) -> None:
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(pebble))
    path = str(config.write())
    command = [sys.executable, "-m", "vcs_acme", "--config", path, "renew"]
    store = Store(config.state)
    store.ensure()

    with store.lineage("a").lock():
        blocked = subprocess.run(command, capture_output=True, text=True, check=False)
    after = subprocess.run(command, capture_output=True, text=True, check=False)

    assert blocked.returncode == 1
    assert "a: FAILED: certificate a is being worked on by another vcs-acme process" in (
        blocked.stdout
    )
    assert store.lineage("a").numbers() == [1]
    assert after.returncode == 0, after.stderr


def test_a_failed_validation_is_reported_and_nothing_stored(config: ConfigFile, cli: Cli) -> None:
    elsewhere = {"type": "http-01", "listen": f"127.0.0.1:{free_port()}"}
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=elsewhere)

    result = cli("--config", str(config.write()), "renew")

    assert result.code == 1
    line = next(x for x in result.out.splitlines() if x.startswith("a: FAILED"))
    assert "validation of a.example.com failed: the CA said:" in line
    assert "(connection)" in line
    assert Store(config.state).lineage("a").numbers() == []
    assert "1 failed" in result.err


def test_ari_window_decides_when_to_renew(
    config: ConfigFile, pebble: PebbleServer, cli: Cli
) -> None:
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(pebble))
    path = str(config.write())
    assert cli("--config", path, "renew").code == 0
    leaf = Store(config.state).lineage("a").version(1).cert_pem
    now = dt.datetime.now(dt.UTC)
    pebble.set_renewal_info(
        leaf, now + dt.timedelta(days=3), now + dt.timedelta(days=4), "https://ca.example.net/why"
    )

    later = cli("--config", path, "renew")
    rows = json.loads(cli("--config", path, "status", "--json").out)["certificates"]

    assert "a: not due: the CA suggests renewing between" in later.out
    assert rows[0]["next_run_reason"] == "ask the CA's renewal information again"
    moment = dt.datetime.fromisoformat(rows[0]["next_renewal"])
    assert now + dt.timedelta(days=3) - dt.timedelta(seconds=1) <= moment
    assert moment <= now + dt.timedelta(days=4)

    pebble.set_renewal_info(leaf, now - dt.timedelta(hours=2), now - dt.timedelta(hours=1))
    (config.state / "certificates" / "a" / "renewal-info.json").unlink()
    due = cli("--config", path, "renew")
    assert "a: renewed: version 2" in due.out


def test_status_reads_local_state_only(config: ConfigFile, pebble: PebbleServer, cli: Cli) -> None:
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(pebble))
    config.certificate("b", ["b.example.com"], key_type="ec256", challenge=http01(pebble))
    assert cli("--config", str(config.write()), "renew", "a").code == 0
    config.acme["directory"] = f"https://127.0.0.1:{free_port()}/dir"  # nobody answers

    result = cli("--config", str(config.write()), "status", "--json")

    assert result.code == 0, result.err
    rows = {row["name"]: row for row in json.loads(result.out)["certificates"]}
    assert set(rows["a"]) >= {
        "name",
        "domains",
        "version",
        "not_after",
        "days_left",
        "next_renewal",
        "reason",
    }
    assert rows["a"]["version"] == 1
    assert 89 < rows["a"]["days_left"] <= 90
    assert rows["b"]["version"] is None
    assert rows["b"]["reason"] == "no certificate has been issued yet"
    # A new version has not been asked about yet: the next pass asks the CA's window first.
    assert rows["a"]["next_run_reason"] == "ask the CA's renewal information for this version"
    assert rows["b"]["next_run_reason"] == "first issuance"
    table = cli("--config", str(config.write()), "status").out
    assert table.splitlines()[0].split()[:3] == ["NAME", "VERSION", "NOT"]


def test_unknown_names_are_a_usage_error(
    config: ConfigFile, pebble: PebbleServer, cli: Cli
) -> None:
    config.certificate("a", ["a.example.com"], challenge=http01(pebble))
    result = cli("--config", str(config.write()), "renew", "nope")
    assert result.code == 2
    assert "no certificate named nope" in result.err


def test_check_passes_against_the_ca_and_fails_when_it_is_away(
    config: ConfigFile, pebble: PebbleServer, cli: Cli
) -> None:
    config.certificate("a", ["a.example.com"], challenge=http01(pebble))
    good = cli("--config", str(config.write()), "check")
    assert good.code == 0, good.out
    assert f"[  ok] CA directory: {pebble.directory_url}" in good.out
    assert "renewal information (ARI): offered" in good.out

    config.acme["directory"] = f"https://127.0.0.1:{free_port()}/dir"
    away = cli("--config", str(config.write()), "check")
    assert away.code == 1
    assert "[FAIL] CA directory" in away.out


def other_ca(folder: Path) -> Path:
    """A CA file that Pebble's API certificate does not chain to."""
    with PebbleServer(PebbleConfig(version="2.10")) as unrelated:
        path = folder / "other-ca.pem"
        path.write_bytes(unrelated.ca_file.read_bytes())
    return path


@pytest.fixture
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return other_ca(tmp_path_factory.mktemp("foreign"))


def test_the_configured_ca_bundle_decides_not_the_environment(
    config: ConfigFile,
    pebble: PebbleServer,
    cli: Cli,
    foreign_ca: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(pebble))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(foreign_ca))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(foreign_ca))
    assert cli("--config", str(config.write()), "renew").code == 0

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pebble.ca_file))
    config.acme["ca_bundle"] = str(foreign_ca)
    refused = cli("--config", str(config.write()), "renew", "--force")
    assert refused.code == 1
    assert "TLS to the CA failed" in refused.out
    assert os.environ["REQUESTS_CA_BUNDLE"] == str(pebble.ca_file)


def test_unknown_account_at_the_ca_is_registered_again(
    config: ConfigFile, cli: Cli, caplog: pytest.LogCaptureFixture
) -> None:
    # Pebble forgets accounts when it restarts, as a reinstalled private CA would.
    http_port = free_port()
    challenge = {"type": "http-01", "listen": f"127.0.0.1:{http_port}"}
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=challenge)
    api_port = free_port()
    for _restart in range(2):
        with PebbleServer(PebbleConfig(http_port=http_port), api_port=api_port) as restarted:
            config.acme["ca_bundle"] = str(restarted.ca_file)
            config.acme["directory"] = restarted.directory_url
            caplog.set_level(logging.WARNING, logger="vcs_acme")
            result = cli("--config", str(config.write()), "renew", "--force")
            assert result.code == 0, result.out
    assert "no longer knows the stored account" in caplog.text


def test_renew_reports_as_json(config: ConfigFile, pebble: PebbleServer, cli: Cli) -> None:
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(pebble))
    config.certificate("b", ["b.example.com"], key_type="ec256", challenge=http01(pebble))

    result = cli("--config", str(config.write()), "renew", "--json")

    document = json.loads(result.out)
    assert [(c["name"], c["outcome"], c["ok"]) for c in document["certificates"]] == [
        ("a", "renewed", True),
        ("b", "renewed", True),
    ]
    assert document["certificates"][0]["fingerprint"] == current(config, "a")["fingerprint"]


def test_progress_is_numbered_on_a_terminal_only(config: ConfigFile, pebble: PebbleServer) -> None:
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(pebble))
    config.certificate("b", ["b.example.com"], key_type="ec256", challenge=http01(pebble))
    command = [sys.executable, "-m", "vcs_acme", "--config", str(config.write()), "renew"]
    leader, follower = pty.openpty()
    with subprocess.Popen(command, stdout=follower, stderr=subprocess.DEVNULL) as process:
        os.close(follower)
        assert process.wait(60) == 0
        terminal = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break  # the terminal's other side has closed
            if not chunk:
                break
            terminal += chunk
    os.close(leader)
    piped = subprocess.run(command, capture_output=True, text=True, check=False)

    lines = terminal.decode().splitlines()
    assert lines[0].startswith("[1/2] a: renewed: version 1")
    assert lines[1].startswith("[2/2] b: renewed: version 1")
    assert piped.stdout.splitlines()[0].startswith("a: not due:")
