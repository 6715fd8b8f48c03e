"""CA features that need their own Pebble: EAB, profiles, alternate chains, nonce refusals."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import Cli
from support.configs import for_pebble, http01
from support.pebble import PebbleConfig, PebbleServer, Profile

from vcs_acme.issuance.chains import top_issuer
from vcs_acme.pki import load_certificates
from vcs_acme.store import Store

pytestmark = pytest.mark.integration

# 64 bytes: HS512 needs a key at least as long as its hash, and the CA checks that.
HMAC_KEY = base64.urlsafe_b64encode(bytes(range(64))).decode().rstrip("=")


@pytest.fixture(scope="module")
def eab_pebble() -> Iterator[PebbleServer]:
    config = PebbleConfig(eab_required=True, eab_keys={"kid-1": HMAC_KEY})
    with PebbleServer(config) as server:
        yield server


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_eab_given_is_accepted(
    tmp_path: Path, eab_pebble: PebbleServer, cli: Cli, algorithm: str
) -> None:
    (tmp_path / "hmac").write_text(HMAC_KEY + "\n")
    config = for_pebble(tmp_path, eab_pebble)
    config.acme["eab"] = {
        "key_id": "kid-1",
        "hmac_key": {"file": str(tmp_path / "hmac")},
        "algorithm": algorithm,
    }
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(eab_pebble))

    result = cli("--config", str(config.write()), "--log-level", "debug", "renew")

    assert result.code == 0, result.out
    assert HMAC_KEY not in result.out + result.err


def test_eab_required_but_not_configured(
    tmp_path: Path, eab_pebble: PebbleServer, cli: Cli
) -> None:
    config = for_pebble(tmp_path, eab_pebble)
    config.certificate("a", ["a.example.com"], challenge=http01(eab_pebble))

    result = cli("--config", str(config.write()), "renew")

    assert result.code == 1
    assert "this CA requires External Account Binding: set acme.eab.key_id" in result.out
    assert cli("--config", str(config.write()), "check").code == 1


def test_a_wrong_eab_key_is_refused_clearly(
    tmp_path: Path, eab_pebble: PebbleServer, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = base64.urlsafe_b64encode(bytes(range(1, 65))).decode().rstrip("=")
    monkeypatch.setenv("TEST_EAB", wrong)
    config = for_pebble(tmp_path, eab_pebble)
    config.acme["eab"] = {"key_id": "kid-1", "hmac_key": {"env": "TEST_EAB"}}
    config.certificate("a", ["a.example.com"], challenge=http01(eab_pebble))

    result = cli("--config", str(config.write()), "--log-level", "debug", "renew")

    assert result.code == 1
    line = next(x for x in result.out.splitlines() if x.startswith("a: FAILED"))
    assert line.startswith("a: FAILED: registering an account: the CA said:")
    assert "(unauthorized)" in line
    assert wrong not in result.out + result.err
    assert not (tmp_path / "state" / "accounts").exists() or not any(
        (tmp_path / "state" / "accounts").iterdir()
    )


@pytest.fixture(scope="module")
def profile_pebble() -> Iterator[PebbleServer]:
    profiles = {
        "shortlived": Profile("Six hours", 6 * 3600),
        "classic": Profile("Ninety days", 90 * 86400),
    }
    with PebbleServer(PebbleConfig(profiles=profiles)) as server:
        yield server


@pytest.mark.parametrize(("profile", "lifetime"), [("shortlived", 6 * 3600), ("classic", 7776000)])
def test_the_configured_profile_is_ordered(
    tmp_path: Path, profile_pebble: PebbleServer, cli: Cli, profile: str, lifetime: int
) -> None:
    config = for_pebble(tmp_path, profile_pebble)
    config.certificate(
        "a", ["a.example.com"], key_type="ec256", profile=profile, challenge=http01(profile_pebble)
    )

    assert cli("--config", str(config.write()), "renew").code == 0

    version = Store(config.state).lineage("a").current()
    assert version is not None
    assert version.meta["profile"] == profile
    leaf = load_certificates(version.cert_pem)[0]
    span = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert abs(span.total_seconds() - lifetime) <= 1


def test_an_unknown_profile_names_those_offered(
    tmp_path: Path, profile_pebble: PebbleServer, cli: Cli
) -> None:
    config = for_pebble(tmp_path, profile_pebble)
    config.certificate(
        "a", ["a.example.com"], profile="tlsserver", challenge=http01(profile_pebble)
    )

    result = cli("--config", str(config.write()), "renew")

    assert result.code == 1
    assert "the CA offers no profile 'tlsserver'; it offers: classic, shortlived" in result.out
    check = cli("--config", str(config.write()), "check")
    assert check.code == 1
    assert "profile 'tlsserver' not offered" in check.out


def test_a_six_hour_certificate_is_scheduled_at_half_its_life(
    tmp_path: Path, profile_pebble: PebbleServer, cli: Cli
) -> None:
    config = for_pebble(tmp_path, profile_pebble)
    config.certificate(
        "a", ["a.example.com"], profile="shortlived", challenge=http01(profile_pebble)
    )
    assert cli("--config", str(config.write()), "renew").code == 0
    # Forget the CA's ARI answer, to see the lifetime rule alone.
    (config.state / "certificates" / "a" / "renewal-info.json").unlink(missing_ok=True)

    status = cli("--config", str(config.write()), "status").out

    assert "half of the lifetime (6 hours) left" in status


@pytest.fixture(scope="module")
def alternate_pebble() -> Iterator[PebbleServer]:
    with PebbleServer(PebbleConfig(alternate_roots=1)) as server:
        yield server


def test_the_preferred_chain_is_chosen(
    tmp_path: Path, alternate_pebble: PebbleServer, cli: Cli
) -> None:
    roots = [load_certificates(alternate_pebble.roots_pem(i).encode())[0] for i in (0, 1)]
    names = [root.subject.rfc4514_string().removeprefix("CN=") for root in roots]
    config = for_pebble(tmp_path, alternate_pebble)
    config.certificate("default", ["a.example.com"], challenge=http01(alternate_pebble))
    config.certificate(
        "alternate", ["a.example.com"], preferred_chain=names[1], challenge=http01(alternate_pebble)
    )

    assert cli("--config", str(config.write()), "renew").code == 0

    store = Store(config.state)
    tops = {}
    for name in ("default", "alternate"):
        version = store.lineage(name).current()
        assert version is not None
        tops[name] = top_issuer(version.read("fullchain.pem"))
    assert tops == {"default": names[0], "alternate": names[1]}


def test_twenty_issuances_in_a_row_despite_half_the_nonces_refused(
    tmp_path: Path, cli: Cli
) -> None:
    with PebbleServer(PebbleConfig(nonce_reject_percent=50)) as pebble:
        config = for_pebble(tmp_path, pebble)
        config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(pebble))
        path = str(config.write())
        started = dt.datetime.now(dt.UTC)

        codes = [cli("--config", path, "renew", "--force").code for _ in range(20)]

    assert codes == [0] * 20
    lineage = Store(config.state).lineage("a")
    assert lineage.numbers() == list(range(1, 21))
    assert all(
        dt.datetime.fromisoformat(str(lineage.version(n).meta["issued"]))
        >= started - dt.timedelta(seconds=1)
        for n in lineage.numbers()
    )
