"""Choosing a chain by the issuer's common name."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from vcs_acme.issuance.chains import choose_chain


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def certificate(subject: str, issuer: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return built.public_bytes(serialization.Encoding.PEM)


LEAF = certificate("vcs.example.com", "Intermediate A")
DEFAULT = LEAF + certificate("Intermediate A", "Root A")
ALTERNATE = LEAF + certificate("Intermediate A", "Cross B") + certificate("Cross B", "Root B")


def test_no_preference_keeps_the_default() -> None:
    choice = choose_chain(DEFAULT, [ALTERNATE], None)
    assert (choice.fullchain_pem, choice.top_issuer) == (DEFAULT, "Root A")


def test_the_chain_leading_to_the_preferred_root_is_chosen() -> None:
    choice = choose_chain(DEFAULT, [ALTERNATE], "Root B")
    assert (choice.fullchain_pem, choice.matched) == (ALTERNATE, True)


def test_a_name_inside_the_chain_matches_too() -> None:
    choice = choose_chain(DEFAULT, [ALTERNATE], "Cross B")
    assert choice.fullchain_pem == ALTERNATE


def test_an_unknown_preference_falls_back_and_says_so() -> None:
    choice = choose_chain(DEFAULT, [ALTERNATE], "Root C")
    assert (choice.fullchain_pem, choice.matched, choice.top_issuer) == (DEFAULT, False, "Root A")
