"""The certificate signing request the device makes for itself (REST ``generate_csr``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .acceptance import RefusalError

logger = logging.getLogger(__name__)

_CSR_FIELDS = frozenset(
    {
        "Additional_FQDNS",
        "Country",
        "KeyLength",
        "DigestAlgorithm",
        "Province",
        "Locality",
        "Organization",
        "OrganizationalUnit",
        "Email",
    }
)
_CSR_KEY_LENGTHS = (2048, 4096)  # X15.4 guide, "Generating a CSR" (RSA on the device)
_CSR_DIGESTS: dict[str, Callable[[], hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True)
class CsrRequest:
    """The JSON body of ``POST /api/provisioning/certs/generate_csr``, checked."""

    key_length: int
    digest: str
    additional: tuple[str, ...]
    subject: tuple[tuple[x509.ObjectIdentifier, str], ...]

    @classmethod
    def read(cls, fields: object) -> CsrRequest:
        if not isinstance(fields, dict):
            raise RefusalError("The request body must be a JSON object")
        unknown = sorted(set(fields) - _CSR_FIELDS)
        if unknown:
            raise RefusalError(f"Unknown fields: {', '.join(unknown)}")

        key_length = fields.get("KeyLength", 2048)
        if key_length not in _CSR_KEY_LENGTHS:
            raise RefusalError(f"KeyLength must be one of {_CSR_KEY_LENGTHS}")
        digest = str(fields.get("DigestAlgorithm", "sha256")).lower().replace("-", "")
        if digest not in _CSR_DIGESTS:
            raise RefusalError(f"DigestAlgorithm must be one of {sorted(_CSR_DIGESTS)}")
        return cls(key_length, digest, _additional_names(fields), _csr_subject(fields))

    def names(self, fqdn: str) -> list[str]:
        return [fqdn, *(name for name in self.additional if name != fqdn)]

    def build(self, fqdn: str, key: rsa.RSAPrivateKey) -> x509.CertificateSigningRequest:
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, fqdn)]
        attributes += [x509.NameAttribute(oid, value) for oid, value in self.subject]
        names = [x509.DNSName(name) for name in self.names(fqdn)]
        builder = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name(attributes))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
        )
        return builder.sign(key, _CSR_DIGESTS[self.digest]())


def _additional_names(fields: dict[Any, Any]) -> tuple[str, ...]:
    value = fields.get("Additional_FQDNS", [])
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise RefusalError("Additional_FQDNS must be a list of names")
    cleaned = tuple(name.strip() for name in names if name.strip())
    if any("*" in name for name in cleaned):
        raise RefusalError("Wildcard names are not supported")
    return cleaned


def _csr_subject(fields: dict[Any, Any]) -> tuple[tuple[x509.ObjectIdentifier, str], ...]:
    country = str(fields.get("Country", ""))
    if country and (len(country) != 2 or not country.isalpha()):
        raise RefusalError("Country must be a two-letter code")
    oids = {
        "Country": NameOID.COUNTRY_NAME,
        "Province": NameOID.STATE_OR_PROVINCE_NAME,
        "Locality": NameOID.LOCALITY_NAME,
        "Organization": NameOID.ORGANIZATION_NAME,
        "OrganizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "Email": NameOID.EMAIL_ADDRESS,
    }
    values = ((oid, str(fields.get(key, "")).strip()) for key, oid in oids.items())
    return tuple((oid, value) for oid, value in values if value)
