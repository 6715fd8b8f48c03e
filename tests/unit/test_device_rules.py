"""Table tests of the device acceptance rules: the role x release matrix and every other rule."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from emulator import pki

from vcs_acme.devices import DeviceProfile, Release, Role, Verdict, check_bundle

NOW = pki.now()
NAME = "device.example.test"
ROOT = pki.make_root("Rules Root CA")
INTERMEDIATE = pki.make_intermediate(ROOT, "Rules Intermediate CA")
CHAIN = [INTERMEDIATE.certificate, ROOT.certificate]
DEFAULT_PROFILE = DeviceProfile(Role.EXPRESSWAY_E, Release.parse("X14.3"), required_names=(NAME,))


def profile(role: Role, release: str, server_eku_upload: bool = False) -> DeviceProfile:
    return DeviceProfile(role, Release.parse(release), server_eku_upload, (NAME,))


def leaf(**options: object) -> pki.Issued:
    names = options.pop("names", [NAME])
    return pki.make_leaf(INTERMEDIATE, names, **options)  # type: ignore[arg-type]


def judge(
    issued: pki.Issued,
    *,
    device: DeviceProfile = DEFAULT_PROFILE,
    with_key: bool = True,
    cas: list[x509.Certificate] | None = None,
) -> Verdict:
    key = issued.key if with_key else None
    return check_bundle(device, issued.certificate, key, CHAIN if cas is None else cas, NOW)


def leaf_with_rsa_modulus(bits: int) -> x509.Certificate:
    """A leaf whose RSA public key has exactly ``bits`` bits, without the slow key generation.

    The rules read only the certificate's public key size, so an odd modulus of the right
    length stands in for a real key (the tests pass no private key for it).
    """
    modulus = (1 << (bits - 1)) | 1
    public_key = rsa.RSAPublicNumbers(65537, modulus).public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
        .issuer_name(INTERMEDIATE.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
    )
    return builder.sign(INTERMEDIATE.key, hashes.SHA256())


# --- the clientAuth matrix -------------------------------------------------------------------

CLIENT_NEEDED = "client-certificate-needs-client-auth"
C_SIDE = "expressway-c-needs-client-auth"

# role, release, EnableServerEkuUpload, serverAuth-only accepted, warning for serverAuth-only
MATRIX = [
    (Role.VCS, "X8.11.4", False, False, None),
    (Role.VCS, "X8.1", False, False, None),
    (Role.VCS, "X14.3", False, False, None),
    (Role.EXPRESSWAY_C, "X14.3", False, False, None),
    (Role.EXPRESSWAY_C, "X15.4", False, False, None),
    (Role.EXPRESSWAY_C, "X15.4", True, False, None),
    (Role.EXPRESSWAY_C, "X15.5", False, True, CLIENT_NEEDED),
    (Role.EXPRESSWAY_E, "X14.3", False, False, None),
    (Role.EXPRESSWAY_E, "X15.3.2", True, False, None),
    (Role.EXPRESSWAY_E, "X15.4", False, False, None),
    (Role.EXPRESSWAY_E, "X15.4.1", False, False, None),
    (Role.EXPRESSWAY_E, "X15.4", True, True, C_SIDE),
    (Role.EXPRESSWAY_E, "X15.5", False, True, CLIENT_NEEDED),
    (Role.EXPRESSWAY_E, "X15.5", True, True, CLIENT_NEEDED),
]


def _matrix_id(row: tuple[Role, str, bool, bool, str | None]) -> str:
    role, release, setting, _, _ = row
    return f"{role.value}-{release}" + ("-ekuupload" if setting else "")


@pytest.mark.parametrize("row", MATRIX, ids=[_matrix_id(row) for row in MATRIX])
def test_server_auth_only_leaf(row: tuple[Role, str, bool, bool, str | None]) -> None:
    role, release, setting, accepted, warning = row

    verdict = judge(leaf(usages=pki.SERVER_ONLY), device=profile(role, release, setting))

    assert verdict.accepted is accepted
    assert verdict.violation_codes() == (set() if accepted else {"eku-client-auth-missing"})
    assert verdict.warning_codes() == ({warning} if warning else set())


@pytest.mark.parametrize("row", MATRIX, ids=[_matrix_id(row) for row in MATRIX])
def test_server_and_client_leaf(row: tuple[Role, str, bool, bool, str | None]) -> None:
    role, release, setting, _, _ = row

    verdict = judge(leaf(usages=pki.SERVER_AND_CLIENT), device=profile(role, release, setting))

    assert verdict.accepted
    assert verdict.violations == ()
    assert verdict.warnings == ()


@pytest.mark.parametrize("row", [row for row in MATRIX if not row[3]], ids=_matrix_id)
def test_client_auth_remedy_names_both_ways_out(
    row: tuple[Role, str, bool, bool, str | None],
) -> None:
    role, release, setting, _, _ = row

    verdict = judge(leaf(usages=pki.SERVER_ONLY), device=profile(role, release, setting))

    (finding,) = verdict.violations
    assert "clientAuth" in finding.reason
    assert "private ACME CA" in finding.remedy
    assert "X15.5" in finding.remedy
    if role is not Role.EXPRESSWAY_C:
        assert "EnableServerEkuUpload: On" in finding.remedy


def test_x15_5_warning_names_client_certificate_and_ssh_tunnels() -> None:
    verdict = judge(leaf(usages=pki.SERVER_ONLY), device=profile(Role.EXPRESSWAY_C, "X15.5"))

    (warning,) = verdict.warnings
    assert "client certificate" in warning.reason
    assert "TCP 2222" in warning.reason


def test_missing_server_auth_is_refused_on_every_release() -> None:
    verdict = judge(leaf(usages=pki.CLIENT_ONLY), device=profile(Role.EXPRESSWAY_E, "X15.5"))

    assert verdict.violation_codes() == {"eku-server-auth-missing"}


def test_leaf_without_eku_extension_serves_any_purpose() -> None:
    verdict = judge(leaf(usages=None), device=profile(Role.VCS, "X8.11.4"))

    assert verdict.accepted
    assert verdict.warnings == ()


# --- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bits", "violations", "warnings"),
    [
        (1024, {"key-rsa-too-small"}, set()),
        (2047, {"key-rsa-too-small"}, set()),
        (2048, set(), set()),
        (4096, set(), set()),
        (4104, set(), {"key-rsa-large"}),
    ],
)
def test_rsa_key_sizes(bits: int, violations: set[str], warnings: set[str]) -> None:
    certificate = leaf_with_rsa_modulus(bits)

    verdict = check_bundle(DEFAULT_PROFILE, certificate, None, CHAIN, NOW)

    assert verdict.violation_codes() == violations
    assert verdict.warning_codes() == warnings


def test_real_rsa_1024_key_is_refused() -> None:
    verdict = judge(leaf(key_kind="rsa1024"))

    assert verdict.violation_codes() == {"key-rsa-too-small"}


@pytest.mark.parametrize(
    ("key_kind", "release", "violations"),
    [
        ("p256", "X14.3", set()),
        ("p384", "X14.3.2", set()),
        ("p521", "X15.5", set()),
        ("p256", "X14.2.7", {"key-ecdsa-unsupported-release"}),
        ("p384", "X8.11.4", {"key-ecdsa-unsupported-release"}),
        ("secp256k1", "X15.5", {"key-curve-unsupported"}),
        ("ed25519", "X15.5", {"key-type-unsupported"}),
    ],
)
def test_key_types(key_kind: str, release: str, violations: set[str]) -> None:
    device = profile(Role.EXPRESSWAY_E, release)

    verdict = judge(leaf(key_kind=key_kind), device=device)

    assert verdict.violation_codes() == violations


def test_private_key_of_another_certificate_is_refused() -> None:
    issued = leaf()
    other = pki.Issued(issued.certificate, pki.cached_key("rsa2048", slot=1))

    assert judge(other).violation_codes() == {"key-mismatch"}
    assert judge(issued).accepted


def test_key_checks_skipped_when_the_device_holds_the_key() -> None:
    issued = pki.Issued(leaf().certificate, pki.cached_key("rsa2048", slot=1))

    assert judge(issued, with_key=False).accepted


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "required", "violations"),
    [
        ({}, (NAME,), set()),
        ({"names": ["DEVICE.example.test."]}, (NAME,), set()),
        ({"names": [NAME, "peer.example.test"]}, (NAME, "peer.example.test"), set()),
        ({"names": [NAME]}, (NAME, "peer.example.test"), {"name-not-covered"}),
        ({"names": [], "common_name": NAME}, (NAME,), {"name-not-covered"}),
        ({"common_name": "*.example.test"}, (NAME,), {"name-wildcard"}),
        ({"names": [NAME, "*.example.test"]}, (NAME,), {"name-wildcard"}),
    ],
)
def test_names(options: dict[str, object], required: tuple[str, ...], violations: set[str]) -> None:
    device = DeviceProfile(Role.EXPRESSWAY_C, Release.parse("X14.3"), required_names=required)

    verdict = judge(leaf(**options), device=device)

    assert verdict.violation_codes() == violations


def test_a_missing_common_name_is_a_warning_with_a_way_out() -> None:
    # The device raises an alarm without a CN but takes the certificate; profiles such as
    # Let's Encrypt's "tlsserver" and "shortlived" leave the CN out.
    verdict = judge(leaf(omit_common_name=True))

    assert verdict.accepted
    assert verdict.warning_codes() == {"cn-missing"}
    (finding,) = verdict.warnings
    assert "alarm" in finding.reason
    assert "classic" in finding.remedy


# --- dates -----------------------------------------------------------------------------------

DAY = datetime.timedelta(days=1)
JANUARY_2050 = datetime.datetime(2050, 1, 1, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("not_before", "not_after", "violations"),
    [
        (NOW - DAY, NOW + DAY, set()),
        (NOW - 2 * DAY, NOW - DAY, {"certificate-expired"}),
        (NOW + DAY, NOW + 2 * DAY, {"certificate-not-yet-valid"}),
        (NOW - DAY, JANUARY_2050 - datetime.timedelta(seconds=1), set()),
        (NOW - DAY, JANUARY_2050, {"certificate-expires-after-2049"}),
    ],
)
def test_leaf_dates(
    not_before: datetime.datetime, not_after: datetime.datetime, violations: set[str]
) -> None:
    verdict = judge(leaf(not_before=not_before, not_after=not_after))

    assert verdict.violation_codes() == violations


def test_expiry_past_2050_quotes_the_guide() -> None:
    verdict = judge(leaf(not_after=JANUARY_2050 + DAY))

    (finding,) = verdict.violations
    assert "can cause trouble" in finding.reason
    assert "2050" in finding.remedy


@pytest.mark.parametrize(
    ("options", "violations"),
    [
        ({}, set()),
        ({"not_before": NOW - 9 * DAY, "not_after": NOW - DAY}, {"ca-expired"}),
        ({"not_before": NOW + DAY}, {"ca-not-yet-valid"}),
        ({"basic_constraints": None}, {"ca-basic-constraints-missing"}),
        ({"basic_constraints": False}, {"ca-not-a-ca"}),
    ],
)
def test_ca_certificates(options: dict[str, object], violations: set[str]) -> None:
    extra_root = pki.make_root("Extra Root CA", **options)  # type: ignore[arg-type]

    verdict = judge(leaf(), cas=[*CHAIN, extra_root.certificate])

    assert verdict.violation_codes() == violations


def test_a_ca_past_2050_is_a_warning_not_a_refusal() -> None:
    extra_root = pki.make_root("Extra Root CA", not_after=JANUARY_2050 + DAY)

    verdict = judge(leaf(), cas=[*CHAIN, extra_root.certificate])

    assert verdict.accepted
    assert verdict.warning_codes() == {"ca-expires-after-2049"}


def test_ca_certificates_sharing_a_common_name_are_a_warning() -> None:
    twin = pki.make_root("Rules Root CA")

    verdict = judge(leaf(), cas=[*CHAIN, twin.certificate])

    assert verdict.accepted
    assert verdict.warning_codes() == {"ca-duplicate-cn"}
    assert judge(leaf()).warnings == ()


# --- the verdict as a whole ------------------------------------------------------------------


def test_every_violation_is_listed_with_reason_and_remedy() -> None:
    issued = leaf(
        usages=pki.SERVER_ONLY,
        common_name="*.example.test",
        not_before=NOW - 2 * DAY,
        not_after=NOW - DAY,
    )
    mismatched = pki.Issued(issued.certificate, pki.cached_key("rsa2048", slot=1))
    device = profile(Role.EXPRESSWAY_C, "X14.3")

    verdict = judge(mismatched, device=device)

    assert not verdict.accepted
    assert verdict.violation_codes() == {
        "eku-client-auth-missing",
        "name-wildcard",
        "key-mismatch",
        "certificate-expired",
    }
    assert all(finding.reason and finding.remedy for finding in verdict.violations)


def test_now_must_carry_a_time_zone() -> None:
    naive = datetime.datetime(2030, 1, 1)

    with pytest.raises(ValueError, match="timezone-aware"):
        check_bundle(DEFAULT_PROFILE, leaf().certificate, None, CHAIN, naive)


# --- releases --------------------------------------------------------------------------------


def test_releases_order_as_published() -> None:
    texts = ["X8.1", "X8.11.4", "X12.5", "X14.2.7", "X14.3", "X14.3.2", "X15.4.1", "X15.5"]

    releases = [Release.parse(text) for text in texts]

    assert releases == sorted(releases)
    assert Release.parse("X15.4") == Release.parse("X15.4.0")
    assert Release.parse("x14.3.2") == Release.parse("X14.3.2")
    assert str(Release.parse(" X14.3.2 ")) == "X14.3.2"
    assert Release.parse("X15.4.1").at_least("X15.4")
    assert not Release.parse("X15.3.9").at_least("X15.4")


@pytest.mark.parametrize("text", ["", "14.3", "X14", "X14.3.2.1", "Xa.b", "X14.3-beta", "VCS"])
def test_garbage_release_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"X<major>\.<minor>\[\.<maintenance>\]") as caught:
        Release.parse(text)

    assert repr(text) in str(caught.value)
