"""What the emulated device accepts in an upload, by role and release."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vcs_acme.devices import Release, Role

logger = logging.getLogger(__name__)

KeyFormat = Literal["pkcs1", "pkcs8", "sec1"]
ALL_KEY_FORMATS: frozenset[KeyFormat] = frozenset(("pkcs1", "pkcs8", "sec1"))

_FIRST_ECDSA_RELEASE = Release.parse("X14.3")
_FIRST_SERVER_EKU_UPLOAD_RELEASE = Release.parse("X15.4")
_FIRST_SPLIT_STORES_RELEASE = Release.parse("X15.5")

_KEY_HEADERS: dict[bytes, KeyFormat] = {
    b"-----BEGIN RSA PRIVATE KEY-----": "pkcs1",
    b"-----BEGIN PRIVATE KEY-----": "pkcs8",
    b"-----BEGIN EC PRIVATE KEY-----": "sec1",
}
_ECDSA_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})


class RefusalError(Exception):
    """The device turns a request down; the message is what it shows the user."""


@dataclass(frozen=True)
class Acceptance:
    """The upload rules of one role and release, enforced independently of the agent's rules."""

    role: Role
    release: Release
    server_eku_upload: bool
    key_formats: frozenset[KeyFormat]

    def client_auth_required(self) -> bool:
        # MRA guide X15.0 "Requirements", Cisco docs 225482 / 225693, FN74362.
        if self.role is Role.VCS or self.release < _FIRST_SERVER_EKU_UPLOAD_RELEASE:
            return True
        if self.release >= _FIRST_SPLIT_STORES_RELEASE:
            return False
        return self.role is Role.EXPRESSWAY_C or not self.server_eku_upload

    def read_certificate(self, data: bytes) -> x509.Certificate:
        if not data.strip():
            raise RefusalError("Select a server certificate file to upload")
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError as error:
            raise RefusalError("The server certificate file is not a PEM certificate") from error
        if len(certificates) != 1:
            # The device presents only its own leaf; the chain belongs in the trusted list.
            raise RefusalError(
                "The server certificate file must hold exactly one certificate; put"
                " intermediate and root certificates in the trusted CA list"
            )
        return certificates[0]

    def read_key(self, data: bytes) -> tuple[PrivateKeyTypes, tuple[str, ...]]:
        if b"ENCRYPTED" in data:
            raise RefusalError(
                "The private key is password protected; upload it without a password"
            )
        lines = data.strip().splitlines()
        key_format = _KEY_HEADERS.get(lines[0].strip()) if lines else None
        if key_format is None:
            raise RefusalError("The private key file is not a PEM private key")
        if key_format not in self.key_formats:
            raise RefusalError(f"This system does not accept private keys in {key_format} format")
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            raise RefusalError("The private key file could not be read") from error

        # X14.3 troubleshooting: a key file without a final newline breaks MRA later on.
        notes = () if data.endswith(b"\n") else ("key-file-without-final-newline",)
        return key, notes

    def judge(
        self, certificate: x509.Certificate, key: PrivateKeyTypes, now: datetime.datetime
    ) -> None:
        if _public_der(key.public_key()) != _public_der(certificate.public_key()):
            raise RefusalError("The private key does not match the server certificate")
        self._judge_usages(certificate)
        self._judge_key_type(certificate)
        if any("*" in name for name in _certificate_names(certificate)):
            raise RefusalError("Wildcard certificates are not supported")
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise RefusalError("The server certificate is expired or not yet valid")

    def _judge_usages(self, certificate: x509.Certificate) -> None:
        try:
            usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            return
        if ExtendedKeyUsageOID.SERVER_AUTH not in usages:
            raise RefusalError("The certificate lacks the TLS Web Server Authentication usage")
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages and self.client_auth_required():
            raise RefusalError(
                "The certificate lacks the TLS Web Client Authentication usage, which this"
                " system needs for its server certificate"
            )

    def _judge_key_type(self, certificate: x509.Certificate) -> None:
        public_key = certificate.public_key()
        if isinstance(public_key, rsa.RSAPublicKey):
            if public_key.key_size < 2048:
                raise RefusalError("RSA keys shorter than 2048 bits are not supported")
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            if self.release < _FIRST_ECDSA_RELEASE:
                raise RefusalError("ECDSA keys are supported from X14.3")
            if public_key.curve.name not in _ECDSA_CURVES:
                raise RefusalError(f"The elliptic curve {public_key.curve.name} is not supported")
        else:
            raise RefusalError("The certificate's key type is not supported")

    def read_authorities(
        self, data: bytes, trusted: list[x509.Certificate]
    ) -> list[x509.Certificate]:
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError as error:
            raise RefusalError("The file does not hold PEM certificates") from error

        seen = {(known.subject, known.issuer) for known in trusted}
        for certificate in certificates:
            subject = certificate.subject.rfc4514_string()
            try:
                certificate.extensions.get_extension_for_class(x509.BasicConstraints)
            except x509.ExtensionNotFound as error:
                raise RefusalError(
                    f"The CA certificate '{subject}' has no BasicConstraints"
                ) from error
            if (certificate.subject, certificate.issuer) in seen:
                raise RefusalError(
                    f"A certificate with the subject and issuer of '{subject}' is already"
                    " trusted; it must be deleted before it can be replaced"
                )
            seen.add((certificate.subject, certificate.issuer))
        return certificates


def _public_der(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _certificate_names(certificate: x509.Certificate) -> list[str]:
    names = [
        str(attribute.value)
        for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ]
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return names
    return names + alternative.value.get_values_for_type(x509.DNSName)
