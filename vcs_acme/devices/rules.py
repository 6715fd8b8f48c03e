"""Will this device accept this bundle? The rules VCS and Expressway apply, by release and role.

Every rule comes from the device reference (Cisco's certificate and MRA guides, Field Notice
FN74362). ``check_bundle`` is pure: the caller passes the clock in, and the answer is a
``Verdict`` that lists every violation with its reason and remedy, never just the first one.

The clientAuth matrix, the rule that matters most since public CAs stopped issuing clientAuth:

============  =================  ==========================================================
role          release            serverAuth-only leaf
============  =================  ==========================================================
VCS           any                refused
Expressway-C  before X15.5       refused
Expressway-E  before X15.4       refused
Expressway-E  X15.4              refused unless EnableServerEkuUpload is On (then a warning)
either        X15.5 and later    accepted with a warning (client certificate, SSH tunnels)
============  =================  ==========================================================
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vcs_acme.devices.release import Release

logger = logging.getLogger(__name__)

_FIRST_ECDSA_RELEASE = Release.parse("X14.3")
_FIRST_SERVER_EKU_UPLOAD_RELEASE = Release.parse("X15.4")
_FIRST_SPLIT_STORES_RELEASE = Release.parse("X15.5")

_RSA_MINIMUM_BITS = 2048
# Larger keys are legal but, per the X14.3 troubleshooting guide, may break SIP TLS zones.
_RSA_COMFORTABLE_BITS = 4096
_ECDSA_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})

# From 2050 on, X.509 switches from UTCTime to GeneralizedTime; the X15.4 guide warns that
# expiry dates past 2050 "can cause trouble", so the agent refuses them outright.
_LATEST_SAFE_NOT_AFTER = datetime(2050, 1, 1, tzinfo=UTC)

_SERVER_EKU_SETTING = "xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On"
_CLIENT_AUTH_CA = (
    "use a CA or certificate profile that still issues the clientAuth EKU"
    " (for example a private ACME CA)"
)


class Role(enum.Enum):
    """What an appliance is deployed as; the role decides part of what it accepts."""

    VCS = "vcs"
    EXPRESSWAY_C = "expressway-c"
    EXPRESSWAY_E = "expressway-e"

    @property
    def label(self) -> str:
        """The product name as Cisco writes it."""
        return {"vcs": "VCS", "expressway-c": "Expressway-C", "expressway-e": "Expressway-E"}[
            self.value
        ]


@dataclass(frozen=True)
class DeviceProfile:
    """What one device is and what its certificate has to name.

    ``server_eku_upload`` mirrors the X15.4 Expressway-E setting ``EnableServerEkuUpload``
    (default off, as on the device). ``required_names`` must each appear as a DNS name in the
    certificate's subject alternative names (default none).
    """

    role: Role
    release: Release
    server_eku_upload: bool = False
    required_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One reason a device would refuse (or merely frown at) a bundle, with what to do."""

    code: str
    reason: str
    remedy: str = ""


@dataclass(frozen=True)
class Verdict:
    """Everything wrong with a bundle for one device; accepted only when nothing is."""

    violations: tuple[Finding, ...] = ()
    warnings: tuple[Finding, ...] = ()

    @property
    def accepted(self) -> bool:
        return not self.violations

    def violation_codes(self) -> frozenset[str]:
        return frozenset(finding.code for finding in self.violations)

    def warning_codes(self) -> frozenset[str]:
        return frozenset(finding.code for finding in self.warnings)


@dataclass
class _Report:
    violations: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    def refuse(self, code: str, reason: str, remedy: str) -> None:
        self.violations.append(Finding(code, reason, remedy))

    def warn(self, code: str, reason: str, remedy: str = "") -> None:
        self.warnings.append(Finding(code, reason, remedy))

    def verdict(self) -> Verdict:
        return Verdict(tuple(self.violations), tuple(self.warnings))


def check_bundle(
    profile: DeviceProfile,
    leaf: x509.Certificate,
    key: PrivateKeyTypes | None,
    ca_certificates: list[x509.Certificate],
    now: datetime,
) -> Verdict:
    """Judge a bundle the way the device would, at the time ``now`` (timezone-aware).

    ``key`` is None when the device made the key itself (key-on-device mode); the checks on
    the private key are then skipped. The certificate's public key is still checked.
    """
    if now.tzinfo is None:
        raise ValueError("check_bundle needs a timezone-aware 'now'")

    report = _Report()
    _check_usages(profile, leaf, report)
    _check_public_key(profile, leaf.public_key(), report)
    if key is not None:
        _check_key_matches(leaf, key, report)
    _check_names(profile, leaf, report)
    _check_validity(leaf, "certificate", now, report)
    _check_authorities(ca_certificates, now, report)

    verdict = report.verdict()
    logger.debug(
        "bundle for %s %s: violations=%s warnings=%s",
        profile.role.label,
        profile.release,
        sorted(verdict.violation_codes()),
        sorted(verdict.warning_codes()),
    )
    return verdict


def needs_client_auth(profile: DeviceProfile) -> bool:
    """True when the device refuses (or breaks with) a server certificate without clientAuth."""
    if profile.role is Role.VCS:
        return True
    if profile.release >= _FIRST_SPLIT_STORES_RELEASE:
        return False
    if profile.role is Role.EXPRESSWAY_E and profile.release >= _FIRST_SERVER_EKU_UPLOAD_RELEASE:
        return not profile.server_eku_upload
    return True


def _check_usages(profile: DeviceProfile, leaf: x509.Certificate, report: _Report) -> None:
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        # RFC 5280 section 4.2.1.12: without the extension the key may serve any purpose.
        return

    if ExtendedKeyUsageOID.SERVER_AUTH not in usages:
        report.refuse(
            "eku-server-auth-missing",
            "the certificate's extended key usage lacks TLS Web Server Authentication",
            "request a TLS server certificate (serverAuth EKU) from the CA",
        )
    if ExtendedKeyUsageOID.CLIENT_AUTH in usages:
        return
    if needs_client_auth(profile):
        report.refuse("eku-client-auth-missing", _client_auth_reason(profile), _eku_remedy(profile))
    else:
        report.warn(*_client_auth_caveat(profile))


def _device(profile: DeviceProfile) -> str:
    return f"{profile.role.label} {profile.release}"


def _client_auth_reason(profile: DeviceProfile) -> str:
    reason = (
        f"the certificate lacks the TLS Web Client Authentication (clientAuth) EKU, which"
        f" {_device(profile)} requires: it also presents its server certificate as a client"
        " certificate (SIP mutual TLS, traversal and neighbour zones, clustering)"
    )
    if profile.role is Role.EXPRESSWAY_E and profile.release >= _FIRST_SERVER_EKU_UPLOAD_RELEASE:
        reason += f", and '{_SERVER_EKU_SETTING}' is not set on it"
    return reason


def _eku_remedy(profile: DeviceProfile) -> str:
    if profile.role is Role.VCS:
        release_way = (
            "a VCS has no setting that accepts serverAuth-only certificates; Expressway X15.4"
            f" (Expressway-E, '{_SERVER_EKU_SETTING}') or X15.5 (separate server and client"
            " certificates) does"
        )
    elif profile.role is Role.EXPRESSWAY_C:
        release_way = (
            "or upgrade this Expressway-C to X15.5, which accepts a serverAuth-only server"
            " certificate (the X15.4 setting EnableServerEkuUpload covers Expressway-E only)"
        )
    elif profile.release >= _FIRST_SERVER_EKU_UPLOAD_RELEASE:
        release_way = (
            f"or set '{_SERVER_EKU_SETTING}' on this Expressway-E and mark it so in the"
            " agent's device settings, or upgrade it to X15.5"
        )
    else:
        release_way = (
            f"or upgrade this Expressway-E to X15.4 and set '{_SERVER_EKU_SETTING}', or to X15.5"
        )
    return f"{_CLIENT_AUTH_CA}; {release_way}"


def _client_auth_caveat(profile: DeviceProfile) -> tuple[str, str, str]:
    if profile.release >= _FIRST_SPLIT_STORES_RELEASE:
        return (
            "client-certificate-needs-client-auth",
            f"{_device(profile)} accepts this serverAuth-only server certificate, but its"
            " separate client certificate, and SSH tunnels from an Expressway-C (TCP 2222),"
            " still need the clientAuth EKU",
            f"keep a clientAuth certificate in the client certificate store; {_CLIENT_AUTH_CA}",
        )
    return (
        "expressway-c-needs-client-auth",
        f"{_device(profile)} accepts this serverAuth-only certificate because"
        " EnableServerEkuUpload is On, but the Expressway-C it traverses with still needs"
        " clientAuth on its own certificate, including for SSH tunnels (TCP 2222)",
        f"for the Expressway-C, {_CLIENT_AUTH_CA}, or upgrade it to X15.5",
    )


def _check_public_key(
    profile: DeviceProfile, public_key: CertificatePublicKeyTypes, report: _Report
) -> None:
    if isinstance(public_key, rsa.RSAPublicKey):
        _check_rsa_size(public_key.key_size, report)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        _check_curve(profile, public_key.curve.name, report)
    else:
        report.refuse(
            "key-type-unsupported",
            f"the certificate's key is {type(public_key).__name__}; the device takes RSA or ECDSA",
            "issue the certificate for an RSA key of 2048 to 4096 bits",
        )


def _check_rsa_size(bits: int, report: _Report) -> None:
    if bits < _RSA_MINIMUM_BITS:
        report.refuse(
            "key-rsa-too-small",
            f"the RSA key has {bits} bits; the device needs at least {_RSA_MINIMUM_BITS}",
            "use an RSA key of 2048 to 4096 bits",
        )
    elif bits > _RSA_COMFORTABLE_BITS:
        report.warn(
            "key-rsa-large",
            f"the RSA key has {bits} bits; keys above {_RSA_COMFORTABLE_BITS} may break SIP TLS"
            " zones",
            "prefer an RSA key of 2048 to 4096 bits",
        )


def _check_curve(profile: DeviceProfile, curve: str, report: _Report) -> None:
    if curve not in _ECDSA_CURVES:
        report.refuse(
            "key-curve-unsupported",
            f"the ECDSA key uses curve {curve}; the device takes P-256, P-384 or P-521",
            "use an RSA key, or ECDSA on P-256, P-384 or P-521",
        )
    elif profile.release < _FIRST_ECDSA_RELEASE:
        report.refuse(
            "key-ecdsa-unsupported-release",
            f"{_device(profile)} takes only RSA keys; ECDSA arrived with X14.3",
            "use an RSA key of 2048 to 4096 bits, or upgrade the device to X14.3 or later",
        )


def _check_key_matches(leaf: x509.Certificate, key: PrivateKeyTypes, report: _Report) -> None:
    if _subject_public_key_info(key.public_key()) != _subject_public_key_info(leaf.public_key()):
        report.refuse(
            "key-mismatch",
            "the private key does not belong to the certificate's public key",
            "upload the key the certificate was issued for",
        )


def _subject_public_key_info(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_names(profile: DeviceProfile, leaf: x509.Certificate, report: _Report) -> None:
    common_names = _common_names(leaf)
    dns_names = _dns_names(leaf)
    if not common_names:
        # The device takes it but raises an alarm (X15.4 "About this guide"): a warning.
        report.warn(
            "cn-missing",
            "the certificate has no common name (CN); the device raises an alarm without one",
            "choose a CA profile that sets the CN to the first name (Let's Encrypt: classic)",
        )

    wildcards = [name for name in (*common_names, *dns_names) if "*" in name]
    if wildcards:
        report.refuse(
            "name-wildcard",
            f"wildcard names are not supported by the device: {', '.join(wildcards)}",
            "request the certificate for each FQDN explicitly",
        )

    covered = {_normal_name(name) for name in dns_names}
    missing = [name for name in profile.required_names if _normal_name(name) not in covered]
    if missing:
        report.refuse(
            "name-not-covered",
            f"the subject alternative names lack {', '.join(missing)}",
            "add every required name to the certificate's order",
        )


def _common_names(certificate: x509.Certificate) -> list[str]:
    attributes = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return [str(attribute.value) for attribute in attributes]


def _dns_names(certificate: x509.Certificate) -> list[str]:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(names.value.get_values_for_type(x509.DNSName))


def _normal_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _check_validity(
    certificate: x509.Certificate, kind: str, now: datetime, report: _Report
) -> None:
    subject = certificate.subject.rfc4514_string()
    not_before = certificate.not_valid_before_utc
    not_after = certificate.not_valid_after_utc
    if now < not_before:
        report.refuse(
            f"{kind}-not-yet-valid",
            f"{kind} '{subject}' is valid only from {not_before.isoformat()}",
            "check the clocks of this host and of the CA, then issue again",
        )
    if now > not_after:
        report.refuse(
            f"{kind}-expired",
            f"{kind} '{subject}' expired at {not_after.isoformat()}",
            "issue (or fetch) a current certificate",
        )
    if not_after < _LATEST_SAFE_NOT_AFTER:
        return
    reason = (
        f"{kind} '{subject}' expires at {not_after.isoformat()}; the device guide warns"
        " that expiry dates past 2050 can cause trouble"
    )
    if kind == "ca":
        # Long-lived roots past 2050 are common (and the device's own factory list has
        # some): a warning. The server certificate is the agent's to choose: refused.
        report.warn(f"{kind}-expires-after-2049", reason, "prefer a CA that expires before 2050")
        return
    report.refuse(
        f"{kind}-expires-after-2049", reason, "issue a certificate that expires before 2050-01-01"
    )


def _check_authorities(
    ca_certificates: list[x509.Certificate], now: datetime, report: _Report
) -> None:
    for certificate in ca_certificates:
        _check_basic_constraints(certificate, report)
        _check_validity(certificate, "ca", now, report)

    counts = Counter(name for ca in ca_certificates for name in _common_names(ca))
    for name, count in sorted(counts.items()):
        if count > 1:
            report.warn(
                "ca-duplicate-cn",
                f"{count} CA certificates share the common name '{name}'; the device guide"
                " discourages this",
                "keep one CA certificate per common name in the trusted list",
            )


def _check_basic_constraints(certificate: x509.Certificate, report: _Report) -> None:
    subject = certificate.subject.rfc4514_string()
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        report.refuse(
            "ca-basic-constraints-missing",
            f"CA certificate '{subject}' has no BasicConstraints extension; the device needs it",
            "use the CA's certificate as issued with BasicConstraints CA:TRUE",
        )
        return

    if not constraints.value.ca:
        report.refuse(
            "ca-not-a-ca",
            f"certificate '{subject}' is in the CA list but its BasicConstraints say CA:FALSE",
            "put only CA certificates (intermediates and root) in the trusted list",
        )
