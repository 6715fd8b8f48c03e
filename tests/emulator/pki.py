"""A small certificate factory for tests: roots, intermediates and leaves made to order.

Key kinds are short strings: ``rsa<bits>`` (``rsa2048``, ``rsa1024``, ``rsa4104``), ``p256``,
``p384``, ``p521``, ``secp256k1`` and ``ed25519``. Generating RSA keys is slow, so
``cached_key`` hands out one key per (kind, slot) for the whole test session; ``make_key``
always makes a fresh one.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = CertificateIssuerPrivateKeyTypes
KeyFormat = Literal["pkcs1", "pkcs8", "sec1"]

SERVER_ONLY: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.SERVER_AUTH,)
SERVER_AND_CLIENT: tuple[x509.ObjectIdentifier, ...] = (
    ExtendedKeyUsageOID.SERVER_AUTH,
    ExtendedKeyUsageOID.CLIENT_AUTH,
)
CLIENT_ONLY: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.CLIENT_AUTH,)

_CURVES: dict[str, ec.EllipticCurve] = {
    "p256": ec.SECP256R1(),
    "p384": ec.SECP384R1(),
    "p521": ec.SECP521R1(),
    "secp256k1": ec.SECP256K1(),
}


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    certificate: x509.Certificate
    key: PrivateKey

    @property
    def certificate_pem(self) -> bytes:
        return certificate_pem(self.certificate)

    def key_pem(self, key_format: KeyFormat = "pkcs8") -> bytes:
        return key_pem(self.key, key_format)


def make_key(kind: str = "rsa2048") -> PrivateKey:
    """A fresh private key of the given kind."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind in _CURVES:
        return ec.generate_private_key(_CURVES[kind])
    raise ValueError(f"unknown key kind {kind!r}")


def cached_key(kind: str = "rsa2048", slot: int = 0) -> PrivateKey:
    """One key per (kind, slot) for the whole session; use another slot for a distinct key."""
    return _session_key(kind, slot)  # one spelling of the arguments, so one cache entry


@functools.cache
def _session_key(kind: str, slot: int) -> PrivateKey:
    return make_key(kind)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_root(
    common_name: str = "Test Root CA",
    *,
    key_kind: str = "p256",
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    basic_constraints: bool | None = True,
) -> Issued:
    """A self-signed CA; ``basic_constraints`` None omits the extension, False says CA:FALSE."""
    key = make_key(key_kind)
    name = _name(common_name)
    builder = _builder(name, name, key.public_key(), not_before, not_after, days=3650)
    builder = _with_ca_extensions(builder, basic_constraints)
    return Issued(_sign(builder, key, key.public_key()), key)


def make_intermediate(
    issuer: Issued,
    common_name: str = "Test Intermediate CA",
    *,
    key_kind: str = "p256",
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    basic_constraints: bool | None = True,
) -> Issued:
    """A CA certificate signed by ``issuer``."""
    key = make_key(key_kind)
    subject = _name(common_name)
    builder = _builder(
        subject, issuer.certificate.subject, key.public_key(), not_before, not_after, days=1825
    )
    builder = _with_ca_extensions(builder, basic_constraints)
    return Issued(_sign(builder, issuer.key, key.public_key()), key)


def make_leaf(
    issuer: Issued,
    names: Sequence[str],
    *,
    common_name: str | None = None,
    omit_common_name: bool = False,
    usages: Sequence[x509.ObjectIdentifier] | None = SERVER_AND_CLIENT,
    key: PrivateKey | None = None,
    key_kind: str = "rsa2048",
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    ip_addresses: Sequence[str] = (),
) -> Issued:
    """An end-entity certificate for ``names`` (DNS names in the SAN).

    The CN defaults to the first name. ``usages`` None leaves the EKU extension out. Without
    ``key`` the session's cached key of ``key_kind`` is used.
    """
    leaf_key = key if key is not None else cached_key(key_kind)
    cn = common_name if common_name is not None else (names[0] if names else "")
    subject = x509.Name([]) if omit_common_name else _name(cn)
    builder = _builder(
        subject, issuer.certificate.subject, leaf_key.public_key(), not_before, not_after, 90
    )
    builder = _with_leaf_extensions(builder, names, ip_addresses, usages)
    return Issued(_sign(builder, issuer.key, leaf_key.public_key()), leaf_key)


def sign_request(
    issuer: Issued,
    request: x509.CertificateSigningRequest,
    *,
    usages: Sequence[x509.ObjectIdentifier] | None = SERVER_AND_CLIENT,
) -> x509.Certificate:
    """Issue a certificate for a CSR, copying its subject and DNS names (a CA's job in small)."""
    names = _requested_names(request)
    builder = _builder(
        request.subject, issuer.certificate.subject, request.public_key(), None, None, 90
    )
    builder = _with_leaf_extensions(builder, names, (), usages)
    return _sign(builder, issuer.key, request.public_key())


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def bundle_pem(certificates: Sequence[x509.Certificate]) -> bytes:
    return b"".join(certificate_pem(certificate) for certificate in certificates)


def key_pem(key: PrivateKey, key_format: KeyFormat = "pkcs8", password: bytes = b"") -> bytes:
    """PEM text of a key: PKCS#1 (RSA only), PKCS#8, or SEC1 (EC only); encrypted if asked."""
    formats = {
        "pkcs1": serialization.PrivateFormat.TraditionalOpenSSL,
        "sec1": serialization.PrivateFormat.TraditionalOpenSSL,
        "pkcs8": serialization.PrivateFormat.PKCS8,
    }
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, formats[key_format], encryption)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: CertificatePublicKeyTypes,
    not_before: datetime.datetime | None,
    not_after: datetime.datetime | None,
    days: int,
) -> x509.CertificateBuilder:
    start = not_before or now() - datetime.timedelta(days=1)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + datetime.timedelta(days=days))
    )


def _with_ca_extensions(
    builder: x509.CertificateBuilder, basic_constraints: bool | None
) -> x509.CertificateBuilder:
    if basic_constraints is not None:
        constraints = x509.BasicConstraints(ca=basic_constraints, path_length=None)
        builder = builder.add_extension(constraints, critical=True)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return builder.add_extension(usage, critical=True)


def _with_leaf_extensions(
    builder: x509.CertificateBuilder,
    names: Sequence[str],
    ip_addresses: Sequence[str],
    usages: Sequence[x509.ObjectIdentifier] | None,
) -> x509.CertificateBuilder:
    alternative: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    alternative += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if alternative:
        builder = builder.add_extension(x509.SubjectAlternativeName(alternative), critical=False)
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    return builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)


def _sign(
    builder: x509.CertificateBuilder, key: PrivateKey, subject_key: CertificatePublicKeyTypes
) -> x509.Certificate:
    # Key identifiers: strict verifiers (such as urllib3's) refuse chains without them.
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(subject_key), critical=False
    ).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def _requested_names(request: x509.CertificateSigningRequest) -> list[str]:
    try:
        extension = request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(extension.value.get_values_for_type(x509.DNSName))
