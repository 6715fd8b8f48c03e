"""Keys, CSRs and certificates: the small amount of X.509 the agent needs."""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_CURVES: dict[str, type[ec.EllipticCurve]] = {"ec256": ec.SECP256R1, "ec384": ec.SECP384R1}
_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)


def generate_key(key_type: str) -> PrivateKey:
    """A new private key of a configured type (``rsa2048`` … ``ec384``)."""
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type]())
    if key_type.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    raise ValueError(f"unknown key type {key_type!r}")


def key_type_of(key: PrivateKey) -> str:
    """The configured name of a key's type, the inverse of :func:`generate_key`."""
    if isinstance(key, rsa.RSAPrivateKey):
        return f"rsa{key.key_size}"
    return f"ec{key.curve.key_size}"


def key_to_pem(key: PrivateKey) -> bytes:
    """PKCS#8, unencrypted: the file is protected by its mode and folder instead."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("only RSA and ECDSA keys are supported")
    return key


def make_csr(key: PrivateKey, domains: tuple[str, ...]) -> bytes:
    """A CSR with the first name as common name and every name as a SAN, in PEM."""
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in domains]),
            critical=False,
        )
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def csr_names(csr_pem: bytes) -> list[str]:
    """The DNS names a CSR asks for: its SANs, else its common name."""
    csr = x509.load_pem_x509_csr(csr_pem)
    try:
        extension = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = extension.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    common = common_name(csr.subject)
    return names or ([common] if common else [])


def split_pem_chain(pem: bytes) -> list[bytes]:
    """Each certificate of a PEM bundle, in order, each ending with a newline."""
    return [match.group(0) + b"\n" for match in _PEM_CERTIFICATE.finditer(pem)]


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    return [x509.load_pem_x509_certificate(part) for part in split_pem_chain(pem)]


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, lower-case hex with colons, as browsers show it."""
    return certificate.fingerprint(hashes.SHA256()).hex(":")


def common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def dns_names(certificate: x509.Certificate) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return extension.value.get_values_for_type(x509.DNSName)


def ari_certificate_id(certificate: x509.Certificate) -> str:
    """The ARI CertID: base64url(AKI keyIdentifier) "." base64url(serial DER INTEGER).

    draft-ietf-acme-ari section 4.1; the same value goes into an order's ``replaces``.
    """
    extension = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    key_identifier = extension.value.key_identifier
    if key_identifier is None:
        raise ValueError("certificate has no authority key identifier")
    serial = certificate.serial_number
    # One more bit than the magnitude needs, for the sign bit of a DER INTEGER.
    serial_bytes = serial.to_bytes(math.ceil((serial.bit_length() + 1) / 8), "big")
    return f"{_b64url(key_identifier)}.{_b64url(serial_bytes)}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class CertificateFacts:
    """What the agent records and shows about one issued certificate."""

    fingerprint: str
    serial: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    domains: tuple[str, ...]

    @classmethod
    def of(cls, certificate: x509.Certificate) -> CertificateFacts:
        return cls(
            fingerprint=fingerprint(certificate),
            serial=format(certificate.serial_number, "x"),
            issuer=common_name(certificate.issuer) or certificate.issuer.rfc4514_string(),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            domains=tuple(dns_names(certificate)),
        )
