"""The bundle each device receives: leaf, private key in the device's format, trusted CA list.

The trusted CA list is the intermediates plus the root, because a VCS or Expressway sends only
its own leaf and must itself trust every CA above it (Cisco doc 213872). The root comes from
the version (an alternate chain that carried it), from the configured file, or from the
top intermediate's AIA caIssuers URL, in that order.
"""

from __future__ import annotations

import logging
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AuthorityInformationAccessOID

from vcs_acme import pki
from vcs_acme.devices.access import Bundle
from vcs_acme.store import (
    PRIVATE_MODE,
    PUBLIC_MODE,
    StoredVersion,
    atomic_write,
    private_folder,
    write_json,
)

logger = logging.getLogger(__name__)

AIA_TIMEOUT_SECONDS = 10


def key_in_format(key_pem: bytes, key_format: str) -> bytes:
    """The key unencrypted, as PKCS#8 or the traditional form (PKCS#1 for RSA, SEC1 for EC)."""
    key = pki.load_key(key_pem)
    form = (
        serialization.PrivateFormat.PKCS8
        if key_format == "pkcs8"
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    pem = key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())
    # A key file without a final newline breaks Mobile and Remote Access (X14.3 guide).
    return pem if pem.endswith(b"\n") else pem + b"\n"


def is_self_signed(certificate: x509.Certificate) -> bool:
    if certificate.subject != certificate.issuer:
        return False
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, x509.verification.VerificationError):
        return False
    return True


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, x509.verification.VerificationError):
        return False
    return True


def find_root(
    chain: list[x509.Certificate], candidates: list[x509.Certificate], *, fetch: bool = True
) -> x509.Certificate | None:
    """The self-signed root that issued the chain's top certificate, if one can be found."""
    if not chain:
        return None
    top = chain[-1]
    if is_self_signed(top):
        return top
    for candidate in candidates:
        if is_self_signed(candidate) and issued_by(top, candidate):
            return candidate
    return _from_aia(top) if fetch else None


def _from_aia(top: x509.Certificate) -> x509.Certificate | None:
    try:
        access = top.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for description in access:
        if description.access_method != AuthorityInformationAccessOID.CA_ISSUERS:
            continue
        url = str(description.access_location.value)
        try:
            response = requests.get(url, timeout=AIA_TIMEOUT_SECONDS)
            response.raise_for_status()
            certificate = _parse_any(response.content)
        except (requests.RequestException, ValueError) as error:
            logger.warning("cannot fetch the root from %s: %s", url, error)
            continue
        if is_self_signed(certificate) and issued_by(top, certificate):
            return certificate
    return None


def _parse_any(data: bytes) -> x509.Certificate:
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def ca_list(version: StoredVersion, root_file: Path | None) -> list[bytes]:
    """Intermediates then the root, PEM each; the root only when it can be found."""
    chain = pki.load_certificates(version.read("fullchain.pem"))
    intermediates = [c for c in chain[1:] if not is_self_signed(c)]
    candidates = []
    if (version.path / "roots.pem").exists():
        candidates += pki.load_certificates(version.read("roots.pem"))
    if root_file is not None:
        candidates += pki.load_certificates(root_file.read_bytes())
    root = find_root(chain, candidates)
    if root is None:
        logger.warning(
            "the root above %s was not found (set acme.root_ca_file); the trusted CA list "
            "carries the intermediates only",
            pki.common_name(chain[-1].issuer),
        )
    cas = [*intermediates, *([root] if root else [])]
    return [c.public_bytes(serialization.Encoding.PEM) for c in cas]


def build(version: StoredVersion, key_format: str, root_file: Path | None) -> Bundle:
    key_pem = key_in_format(version.key_pem, key_format) if version.has_key else None
    return Bundle(
        leaf_pem=version.cert_pem,
        key_pem=key_pem,
        ca_pems=tuple(ca_list(version, root_file)),
        fingerprint=str(version.meta["fingerprint"]),
    )


def save(version: StoredVersion, device: str, bundle: Bundle) -> Path:
    """Keep what a device received beside the version, with a small description."""
    folder = private_folder(version.path / "devices" / device)
    atomic_write(folder / "server.pem", bundle.leaf_pem, PUBLIC_MODE)
    if bundle.key_pem is not None:
        atomic_write(folder / "server.key", bundle.key_pem, PRIVATE_MODE)
    atomic_write(folder / "trusted-ca.pem", b"".join(bundle.ca_pems), PUBLIC_MODE)
    leaf = x509.load_pem_x509_certificate(bundle.leaf_pem)
    facts = pki.CertificateFacts.of(leaf)
    write_json(
        folder / "bundle.json",
        {
            "fingerprint": facts.fingerprint,
            "not_after": facts.not_after.isoformat(),
            "serial": facts.serial,
            "issuer": facts.issuer,
            "trusted_cas": [
                pki.common_name(x509.load_pem_x509_certificate(p).subject) for p in bundle.ca_pems
            ],
            "key_on_device": bundle.key_pem is None,
        },
        PUBLIC_MODE,
    )
    return folder
