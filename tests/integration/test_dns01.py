"""DNS-01 against real BIND 9 servers and Pebble 2.10 resolving through them.

Names in example.test have no address, so only DNS-01 proves them; names in static.test
have an address but their zone takes no updates, so only HTTP-01 proves them. Every zone
has a primary (127.0.0.1) and a secondary (::1); lagging.test never tells its secondary
about a change. Pebble asks a recursive BIND that forwards to the primary. Each test uses
names of its own, since the servers live for the module.
"""

from __future__ import annotations

import logging
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from acme import messages
from cryptography import x509
from support.bind import PRIMARY, BindServers, TsigKey
from support.cli import Cli
from support.configs import ConfigFile, for_pebble
from support.pebble import PebbleConfig, PebbleServer
from support.ports import free_port

from vcs_acme import config as config_module
from vcs_acme.issuance.account import open_account
from vcs_acme.issuance.client import AcmeClient
from vcs_acme.pki import load_certificates
from vcs_acme.store import Store

pytestmark = pytest.mark.integration

NSUPDATE = "/usr/bin/nsupdate"


@pytest.fixture(scope="module")
def bind() -> Iterator[BindServers]:
    with BindServers() as servers:
        yield servers


@pytest.fixture(scope="module")
def ca(bind: BindServers) -> Iterator[PebbleServer]:
    """Pebble resolving every name through BIND; no reuse of authorizations."""
    settings = PebbleConfig(version="2.10", dns_server=bind.resolver, authz_reuse_percent=0)
    with PebbleServer(settings) as server:
        yield server


@pytest.fixture
def config(tmp_path: Path, ca: PebbleServer) -> ConfigFile:
    return for_pebble(tmp_path, ca)


def key_file(folder: Path, key: TsigKey, secret: str | None = None) -> str:
    path = folder / f"{key.name}.secret"
    path.write_text((secret or key.secret) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return str(path)


def dns01(
    bind: BindServers, folder: Path, key: TsigKey | None = None, **extra: Any
) -> dict[str, Any]:
    """DNS-01 by dynamic update to the BIND primary, signed with ``key`` (default: sha256)."""
    key = key or bind.key
    return {
        "type": "dns-01",
        "resolver": bind.server,
        "server": bind.server,
        "nameserver_port": bind.port,
        "query_timeout_seconds": 2,
        "tsig": {
            "name": key.name,
            "algorithm": key.algorithm,
            "secret": {"file": key_file(folder, key)},
        },
        **extra,
    }


def sans(config: ConfigFile, name: str) -> list[str]:
    version = Store(config.state).lineage(name).current()
    assert version is not None
    leaf = load_certificates(version.cert_pem)[0]
    extension = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return sorted(extension.value.get_values_for_type(x509.DNSName))


@pytest.fixture
def orders(monkeypatch: pytest.MonkeyPatch) -> list[messages.OrderResource]:
    """Every order the agent creates at the CA (the real one, recorded on the way back)."""
    created: list[messages.OrderResource] = []
    original = AcmeClient.new_order

    def recording(self: AcmeClient, *args: Any) -> messages.OrderResource:
        order = original(self, *args)
        created.append(order)
        return order

    monkeypatch.setattr(AcmeClient, "new_order", recording)
    return created


def authorization_states(config: ConfigFile, order: messages.OrderResource) -> list[str]:
    """What the CA says now about each authorization of an order, asked with the account."""
    settings = config_module.load(config.path)
    account = open_account(settings.acme, Store(config.state), save=False)
    return [account.client.authorization(a.uri).body.status.name for a in order.authorizations]


def test_several_names_are_proven_with_one_propagation_wait(
    config: ConfigFile,
    bind: BindServers,
    cli: Cli,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    names = ["multi.example.test", "*.multi.example.test", "one.example.test", "two.example.test"]
    config.certificate("internal", names, key_type="ec256", challenge=dns01(bind, tmp_path))
    caplog.set_level(logging.DEBUG, logger="vcs_acme")

    result = cli("--config", str(config.write()), "renew")

    assert result.code == 0, result.out + result.err
    assert "internal: renewed: version 1" in result.out
    assert sans(config, "internal") == sorted(names)
    waits = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert waits == ["DNS-01: waiting for 4 record(s) to show on 2 name server(s) of example.test"]
    # The name and its wildcard share one record name with two values; both were removed.
    for name in ("multi", "one", "two"):
        assert bind.settled_txt(f"_acme-challenge.{name}.example.test") == set()
    assert bind.key.secret not in caplog.text + result.out + result.err


def test_a_cname_delegates_the_record_to_the_validation_zone(
    config: ConfigFile,
    bind: BindServers,
    cli: Cli,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    bind.add(
        "example.test",
        "_acme-challenge.delegated.example.test",
        "CNAME",
        "delegated.validation.test.",
    )
    config.certificate(
        "delegated", ["delegated.example.test"], key_type="ec256", challenge=dns01(bind, tmp_path)
    )
    caplog.set_level(logging.INFO, logger="vcs_acme")

    result = cli("--config", str(config.write()), "renew")

    assert result.code == 0, result.out + result.err
    assert sans(config, "delegated") == ["delegated.example.test"]
    assert "is a CNAME to delegated.validation.test" in caplog.text
    assert "added 1 TXT record(s) to zone validation.test" in caplog.text
    assert "removed 1 TXT record(s) from zone validation.test" in caplog.text
    assert bind.settled_txt("delegated.validation.test") == set()


def test_one_certificate_mixes_http01_and_dns01_names(
    config: ConfigFile, bind: BindServers, ca: PebbleServer, cli: Cli, tmp_path: Path
) -> None:
    # web.static.test can only be proven over HTTP, internal.example.test only in DNS.
    names = ["internal-mixed.example.test", "web.static.test"]
    challenge = dns01(
        bind, tmp_path, http_names=["web.static.test"], listen=f"127.0.0.1:{ca.http_port}"
    )
    config.certificate("mixed", names, key_type="ec256", challenge=challenge)

    result = cli("--config", str(config.write()), "renew")

    assert result.code == 0, result.out + result.err
    assert sans(config, "mixed") == names


def test_a_wrong_tsig_secret_is_refused_and_the_order_abandoned(
    config: ConfigFile,
    bind: BindServers,
    cli: Cli,
    tmp_path: Path,
    orders: list[messages.OrderResource],
) -> None:
    challenge = wrong_secret(bind, tmp_path)
    config.certificate("refused", ["refused.example.test"], key_type="ec256", challenge=challenge)

    result = cli("--config", str(config.write()), "renew")

    assert result.code == 1
    line = next(x for x in result.out.splitlines() if x.startswith("refused: FAILED"))
    assert (
        f"the DNS server {bind.server} refused the TSIG key vcs-acme-256 for zone example.test "
        "(BADSIG); check challenge.tsig name, algorithm and secret" in line
    )
    assert len(orders) == 1
    assert authorization_states(config, orders[0]) == ["deactivated"]
    assert bind.settled_txt("_acme-challenge.refused.example.test") == set()


def test_only_the_added_records_are_removed(
    config: ConfigFile, bind: BindServers, cli: Cli, tmp_path: Path
) -> None:
    record = "_acme-challenge.keep.example.test"
    bind.add("example.test", record, "TXT", "another-certificate")
    config.certificate(
        "keep", ["keep.example.test"], key_type="ec256", challenge=dns01(bind, tmp_path)
    )

    result = cli("--config", str(config.write()), "renew")

    assert result.code == 0, result.out + result.err
    assert bind.settled_txt(record) == {"another-certificate"}


def test_a_lagging_name_server_fails_the_order_after_the_bound_and_cleans_up(
    config: ConfigFile,
    bind: BindServers,
    cli: Cli,
    tmp_path: Path,
    orders: list[messages.OrderResource],
) -> None:
    # The primary has every change at once, and Pebble's resolver asks the primary; but the
    # secondary never hears of it, so the challenge must not be answered.
    record = "_acme-challenge.slow.lagging.test"
    bind.add("lagging.test", record, "TXT", "unrelated")
    challenge = dns01(bind, tmp_path, propagation_timeout_seconds=1)
    config.certificate("slow", ["slow.lagging.test"], key_type="ec256", challenge=challenge)

    result = cli("--config", str(config.write()), "renew")

    assert result.code == 1
    line = next(x for x in result.out.splitlines() if x.startswith("slow: FAILED"))
    assert f"the DNS-01 record {record} is not yet served by ns2.lagging.test" in line
    assert "raise challenge.propagation_timeout_seconds" in line
    assert authorization_states(config, orders[0]) == ["deactivated"]
    assert bind.txt(record, PRIMARY) == {"unrelated"}


HOOK = """#!/bin/sh
# A DNS-01 hook as an administrator would write one, driving BIND through nsupdate.
set -eu
echo "$VCS_ACME_ACTION $VCS_ACME_NAME $VCS_ACME_ZONE $VCS_ACME_VALUE" >> "{calls}"
case "$VCS_ACME_ACTION" in add) verb=add ;; remove) verb=delete ;; *) exit 2 ;; esac
printf 'server {host} {port}\\nzone %s\\nupdate %s %s 60 TXT "%s"\\nsend\\n' \\
    "$VCS_ACME_ZONE" "$verb" "$VCS_ACME_NAME" "$VCS_ACME_VALUE" | {nsupdate} -v -k "{key}"
echo "nsupdate done for $VCS_ACME_NAME"
"""


def write_script(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    path.chmod(stat.S_IRWXU)
    return str(path)


def hook_challenge(bind: BindServers, command: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "type": "dns-01",
        "provider": "hook",
        "command": command,
        "resolver": bind.server,
        "nameserver_port": bind.port,
        "query_timeout_seconds": 2,
        **extra,
    }


def test_the_hook_provider_drives_nsupdate(
    config: ConfigFile,
    bind: BindServers,
    cli: Cli,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    calls = tmp_path / "calls"
    key = bind.key.write(tmp_path / "nsupdate.key")
    hook = HOOK.format(calls=calls, host=PRIMARY, port=bind.port, nsupdate=NSUPDATE, key=key)
    challenge = hook_challenge(bind, [write_script(tmp_path / "hook.sh", hook)])
    names = ["hooked.example.test", "hooked2.example.test"]
    config.certificate("hooked", names, key_type="ec256", challenge=challenge)
    caplog.set_level(logging.DEBUG, logger="vcs_acme")

    result = cli("--config", str(config.write()), "renew")

    assert result.code == 0, result.out + result.err
    assert sans(config, "hooked") == names
    calls_made = [line.split() for line in calls.read_text().splitlines()]
    records = {(name, zone, value) for _action, name, zone, value in calls_made}
    assert {(name, zone) for name, zone, _value in records} == {
        ("_acme-challenge.hooked.example.test", "example.test"),
        ("_acme-challenge.hooked2.example.test", "example.test"),
    }
    # Every record added, then every one of them (and nothing else) removed.
    assert [call[0] for call in calls_made] == ["add", "add", "remove", "remove"]
    assert {tuple(c[1:]) for c in calls_made[:2]} == {tuple(c[1:]) for c in calls_made[2:]}
    output = [r for r in caplog.records if "nsupdate done for" in r.getMessage()]
    assert {r.levelno for r in output} == {logging.DEBUG}
    assert len(output) == 4
    for name in names:
        assert bind.settled_txt(f"_acme-challenge.{name}") == set()


def test_a_failing_hook_is_reported_in_one_line(
    config: ConfigFile, bind: BindServers, cli: Cli, tmp_path: Path
) -> None:
    script = write_script(tmp_path / "hook.sh", "#!/bin/sh\necho 'api token rejected'\nexit 3\n")
    config.certificate(
        "failing", ["failing.example.test"], challenge=hook_challenge(bind, [script])
    )

    result = cli("--config", str(config.write()), "check")

    assert result.code == 1
    assert (
        f"[FAIL] DNS-01 for failing.example.test: the DNS hook {script} failed to add "
        "_acme-challenge.failing.example.test (exit status 3)" in result.out
    )
    assert "api token rejected" not in result.out


def running(pid: int) -> bool:
    """Whether a process runs; one killed but not yet reaped by its new parent does not."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def test_a_hook_that_hangs_is_stopped_with_what_it_started(
    config: ConfigFile, bind: BindServers, cli: Cli, tmp_path: Path
) -> None:
    pid_file = tmp_path / "child.pid"
    script = write_script(
        tmp_path / "hook.sh", f"#!/bin/sh\nsleep 60 &\necho $! > {pid_file}\nwait\n"
    )
    challenge = hook_challenge(bind, [script], command_timeout_seconds=1)
    config.certificate("hanging", ["hanging.example.test"], challenge=challenge)

    result = cli("--config", str(config.write()), "check")

    assert result.code == 1
    assert "did not add _acme-challenge.hanging.example.test within 1 s and was stopped" in (
        result.out
    )
    assert not running(int(pid_file.read_text()))


@pytest.mark.parametrize(
    ("index", "source"),
    [(0, "file"), (1, "env"), (2, "credential")],
    ids=["hmac-sha256-file", "hmac-sha384-env", "hmac-sha512-credential"],
)
def test_check_proves_the_update_rights(
    config: ConfigFile,
    bind: BindServers,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    index: int,
    source: str,
) -> None:
    key = bind.keys[index]
    challenge = dns01(bind, tmp_path, key)
    if source == "env":
        monkeypatch.setenv("TEST_TSIG_SECRET", key.secret)
        challenge["tsig"]["secret"] = {"env": "TEST_TSIG_SECRET"}
    elif source == "credential":
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
        challenge["tsig"]["secret"] = {"credential": Path(key_file(tmp_path, key)).name}
    name = f"check-{key.algorithm}.example.test"
    config.certificate("checked", [name], challenge=challenge)

    result = cli("--config", str(config.write()), "check")

    assert result.code == 0, result.out
    assert (
        f"[  ok] DNS-01 for {name}: _acme-challenge.{name} in zone example.test can be added and "
        f"removed (update at {bind.server}, TSIG key {key.name})" in result.out
    )
    assert bind.settled_txt(f"_acme-challenge.{name}") == set()
    assert key.secret not in result.out + result.err


def test_check_finds_the_primary_from_the_soa(
    config: ConfigFile, bind: BindServers, cli: Cli, tmp_path: Path
) -> None:
    challenge = dns01(bind, tmp_path)
    del challenge["server"]
    config.certificate("primary", ["primary.example.test"], challenge=challenge)

    result = cli("--config", str(config.write()), "check")

    assert result.code == 0, result.out
    assert f"(update at {bind.server}, TSIG key {bind.key.name})" in result.out


def wrong_secret(bind: BindServers, folder: Path) -> dict[str, Any]:
    challenge = dns01(bind, folder)
    # The file named in the settings now holds a well-formed secret of another key.
    key_file(folder, bind.key, secret=bind.keys[1].secret[:44])
    return challenge


def unknown_key(bind: BindServers, folder: Path) -> dict[str, Any]:
    challenge = dns01(bind, folder)
    challenge["tsig"]["name"] = "nobody"
    return challenge


def dead_server(bind: BindServers, folder: Path) -> dict[str, Any]:
    return dns01(bind, folder, server=f"127.0.0.1:{free_port()}")


@pytest.mark.parametrize(
    ("domain", "make", "expected"),
    [
        ("wrong.example.test", wrong_secret, "refused the TSIG key vcs-acme-256 for zone "
         "example.test (BADSIG)"),
        ("unknown.example.test", unknown_key, "refused the TSIG key nobody for zone "
         "example.test (BADKEY)"),
        ("x.nozone.test", dns01, "no DNS zone found for _acme-challenge.x.nozone.test: the "
         "resolver {server} answered REFUSED"),
        ("away.example.test", dead_server, "cannot reach the DNS server 127.0.0.1:"),
        ("fixed.static.test", dns01, "refused the update of zone static.test (REFUSED): the "
         "TSIG key vcs-acme-256 may not update _acme-challenge.fixed.static.test"),
    ],
    ids=["wrong-secret", "unknown-key", "no-zone", "unreachable", "no-update-right"],
)  # fmt: skip
def test_check_says_what_is_wrong(
    config: ConfigFile,
    bind: BindServers,
    cli: Cli,
    tmp_path: Path,
    domain: str,
    make: Any,
    expected: str,
) -> None:
    config.certificate("checked", [domain], challenge=make(bind, tmp_path))

    result = cli("--config", str(config.write()), "check")

    assert result.code == 1
    line = next(x for x in result.out.splitlines() if x.startswith("[FAIL] DNS-01"))
    assert f"[FAIL] DNS-01 for {domain}: " in line
    assert expected.format(server=bind.server) in line


@pytest.mark.parametrize(
    ("change", "key_path", "expected"),
    [
        ({"domains": ["*.wild.example.test"], "challenge": {"type": "http-01"}},
         "certificate[0].domains[0]", "only DNS-01 can prove"),
        ({"challenge": {"type": "http-01", "server": "127.0.0.1"}},
         "certificate[0].challenge.server", "no name is proven by DNS-01"),
        ({"challenge": {"type": "dns-01", "dns_names": ["other.example.test"]}},
         "certificate[0].challenge.dns_names[0]", "not one of the domains"),
        ({"challenge": {"type": "dns-01", "provider": "hook"}},
         "certificate[0].challenge.command", "missing"),
        ({"challenge": {"type": "dns-01", "tsig": {"name": "k", "secret": {"value": "no!"}}}},
         "certificate[0].challenge.tsig.secret", "inline value holds no base64 text"),
        ({"challenge": {"type": "dns-01", "tsig": {"name": "k", "algorithm": "hmac-md5",
                                                   "secret": {"value": "AAAA"}}}},
         "certificate[0].challenge.tsig.algorithm", '"hmac-sha256", "hmac-sha384"'),
        ({"challenge": {"type": "dns-01", "resolver": "dns.example.test"}},
         "certificate[0].challenge.resolver", "expected an IP address"),
    ],
    ids=["wildcard-http", "dns-key-unused", "unknown-name", "hook-command", "secret-base64",
         "algorithm", "resolver-name"],
)  # fmt: skip
def test_challenge_settings_are_checked(
    config: ConfigFile, cli: Cli, change: dict[str, Any], key_path: str, expected: str
) -> None:
    entry = {"domains": ["a.example.test"], **change}
    config.certificate("a", **entry)

    result = cli("--config", str(config.write()), "check")

    assert result.code == 78
    assert f"{config.path}: {key_path}: " in result.err
    assert expected in result.err
    assert "no!" not in result.err


def test_a_dns_only_certificate_needs_no_http_port(
    config: ConfigFile, bind: BindServers, cli: Cli, tmp_path: Path
) -> None:
    # The HTTP-01 listen address is taken: it must not matter when no name uses HTTP-01.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        challenge = dns01(bind, tmp_path, listen=f"127.0.0.1:{port}")
        config.certificate(
            "dns-only", ["dns-only.example.test"], key_type="ec256", challenge=challenge
        )
        result = cli("--config", str(config.write()), "renew")

    assert result.code == 0, result.out + result.err
