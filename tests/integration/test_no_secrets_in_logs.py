"""The whole pipeline at DEBUG: no password, EAB key or private key reaches the output."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from emulator.device import DeviceEmulator
from support.configs import for_pebble, http01
from support.devices import device_entry
from support.pebble import PebbleConfig, PebbleServer

from vcs_acme.pki import load_key
from vcs_acme.store import Store

pytestmark = pytest.mark.integration

DEVICE_PASSWORD = "Dev1ce-pa55word-never-shown"
HMAC_RAW = bytes(range(100, 164))
HMAC_KEY = base64.urlsafe_b64encode(HMAC_RAW).decode().rstrip("=")


@pytest.fixture(scope="module")
def eab_pebble24() -> Iterator[PebbleServer]:
    config = PebbleConfig(version="2.4", eab_required=True, eab_keys={"kid-7": HMAC_KEY})
    with PebbleServer(config) as server:
        yield server


def private_numbers(pem: bytes) -> list[int]:
    """The secret numbers of a key: RSA's d, p, q and CRT values; EC's private value."""
    key = load_key(pem)
    if isinstance(key, rsa.RSAPrivateKey):
        n = key.private_numbers()
        return [n.d, n.p, n.q, n.dmp1, n.dmq1, n.iqmp]
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return [key.private_numbers().private_value]


def encodings(number: int) -> list[str]:
    """How a secret number could show in text: hex, decimal, base64 at every alignment."""
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    forms = [raw.hex(), str(number)]
    for shift in range(3):  # a number inside a larger base64 blob starts at any byte offset
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(raw[shift:]).decode().rstrip("=")
            forms.append(text[4 : 4 + min(24, len(text) - 8)])
    return [form for form in forms if len(form) >= 16]


def secrets_in(text: str, key_pems: list[bytes]) -> list[str]:
    """Every secret, and every recognisable piece of private key material, in ``text``."""
    found = [s for s in (DEVICE_PASSWORD, HMAC_KEY, HMAC_RAW.hex()) if s in text]
    if "PRIVATE KEY-----" in text:
        found.append("a PEM private key")
    # PEM and logged reprs break base64 into lines: look through the text without them.
    flat = re.sub(r"\s|\\n", "", text)
    for pem in key_pems:
        for number in private_numbers(pem):
            found += [
                f"private key material {form!r}" for form in encodings(number) if form in flat
            ]
    return found


def test_debug_output_of_a_whole_renewal_holds_no_secret(
    tmp_path: Path, eab_pebble24: PebbleServer
) -> None:
    (tmp_path / "device-password").write_text(DEVICE_PASSWORD)
    config = for_pebble(tmp_path, eab_pebble24)
    config.acme["eab"] = {"key_id": "kid-7", "hmac_key": {"env": "TEST_EAB_HMAC"}}
    with DeviceEmulator("vcs", "X14.3", "admin", DEVICE_PASSWORD) as vcs:
        config.devices = [device_entry("vcs-1", vcs, tmp_path, tmp_path / "device-password")]
        config.certificate(
            "video", ["vcs.example.com"], challenge=http01(eab_pebble24), devices=["vcs-1"]
        )
        path = str(config.write())
        env = {**os.environ, "TEST_EAB_HMAC": HMAC_KEY}
        command = [sys.executable, "-m", "vcs_acme", "--log-level", "debug", "--config", path]
        runs = [
            subprocess.run([*command, *args], env=env, capture_output=True, text=True, check=False)
            for args in (["check"], ["renew"], ["renew", "--force"], ["deploy"], ["status"])
        ]

    assert [r.returncode for r in runs] == [0, 0, 0, 0, 0], runs[1].stdout + runs[1].stderr
    output = "\n".join(r.stdout + r.stderr for r in runs)
    assert "DEBUG" in output  # the exchange really was logged
    store = Store(config.state)
    lineage = store.lineage("video")
    keys = [lineage.version(n).key_pem for n in lineage.numbers()]
    account_key = next((config.state / "accounts").iterdir()) / "account-key.pem"
    keys.append(account_key.read_bytes())
    assert len(keys) == 3  # two versions and the account key
    assert secrets_in(output, keys) == []
