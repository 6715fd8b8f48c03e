"""Run Pebble, the ACME test CA, and its DNS companion for tests and demonstrations.

`PebbleServer` starts two processes from the binaries that `tests/tools/install-tools.sh`
unpacks into `.cache/tools/pebble-<version>/usr/bin/`:

- `pebble-challtestsrv`, used only as a DNS server: every A query is answered with 127.0.0.1,
  AAAA queries get no answer (so validation never tries ::1), and TXT records are set and
  cleared through its management API for DNS-01. All its challenge listeners are turned off.
- `pebble`, with its ACME API and management API on free loopback ports, served with a TLS
  certificate issued by a throwaway CA generated for this run (neither Debian package ships
  one). Pebble resolves every name through the DNS server above, or through a server of the
  test's own when `PebbleConfig.dns_server` names one (then challtestsrv is not started).

Everything lives in a private temporary folder removed on exit. Pebble's own issuing
hierarchy is regenerated at every start; fetch it with `roots_pem` and `intermediates_pem`.

Pebble 2.10 refuses signed (JWS) requests that carry no User-Agent header with a
`malformed` problem; 2.4 accepts them. Every request made here sends one, and clients under
test must do the same (requests and urllib3 add a default one unless told not to).

Failures to start or to talk to the servers raise `PebbleError`, whose message carries the
tail of the server logs.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .ports import LOOPBACK, free_port

logger = logging.getLogger(__name__)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = REPOSITORY_ROOT / ".cache" / "tools"
INSTALL_SCRIPT = "tests/tools/install-tools.sh"

USER_AGENT = "vcs-acme-tests/pebble-harness"

STARTUP_TIMEOUT = 15.0
POLL_INTERVAL = 0.05
REQUEST_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
LOG_TAIL_LINES = 30

PebbleVersion = Literal["2.10", "2.4"]


class PebbleError(RuntimeError):
    """Pebble or its DNS server could not be started, or refused a management request."""


@dataclass(frozen=True)
class Profile:
    """A certificate profile offered by Pebble 2.10 (advertised in the directory's meta)."""

    description: str
    validity_period: int
    """Lifetime of certificates issued under this profile, in seconds."""


@dataclass
class PebbleConfig:
    """What the test CA looks like. Every default matches a plain Pebble except where noted."""

    version: PebbleVersion = "2.10"

    profiles: dict[str, Profile] = field(default_factory=dict)
    """Pebble 2.10 only. Empty means Pebble's own single default profile. With several
    profiles and none requested in an order, Pebble picks one at random."""

    validity_period: int | None = None
    """Certificate lifetime in seconds when no profile applies; None keeps Pebble's default
    (five years on 2.4)."""

    eab_keys: dict[str, str] = field(default_factory=dict, repr=False)
    """External account binding keys: key identifier -> base64url HMAC key. Secret."""

    eab_required: bool = False
    """Refuse new accounts that carry no external account binding."""

    http_port: int | None = None
    """Port Pebble connects to for HTTP-01 validation, where the client's responder listens.
    None picks a free port, readable afterwards as `PebbleServer.http_port`."""

    tls_port: int | None = None
    """Port Pebble connects to for TLS-ALPN-01 validation. None picks a free port."""

    nonce_reject_percent: int = 0
    """Share of good nonces rejected as bad (PEBBLE_WFE_NONCEREJECT). Pebble's own default
    is 5; 0 here keeps tests deterministic unless a test asks for rejections."""

    authz_reuse_percent: int | None = None
    """How often valid authorizations are reused (PEBBLE_AUTHZREUSE); None keeps 50."""

    alternate_roots: int = 0
    """Number of alternate root hierarchies (PEBBLE_ALTERNATE_ROOTS)."""

    chain_length: int = 1
    """Intermediates between leaf and root (PEBBLE_CHAIN_LENGTH); 1 is Pebble's minimum."""

    dns_server: str | None = None
    """A DNS server of the test's own ("host:port", such as a BIND started by a fixture) that
    Pebble resolves every name through, instead of pebble-challtestsrv, which is then not
    started (and `add_txt`/`clear_txt` are unavailable). Pebble 2.10 asks it over TCP."""


@dataclass(frozen=True)
class _ApiCertificate:
    ca_file: Path
    certificate_file: Path
    key_file: Path


class PebbleServer:
    """Pebble and its DNS server, started on enter and stopped on exit.

    Usable as a context manager (`with PebbleServer(config) as pebble:`) or through
    `start()` and `stop()`.
    """

    def __init__(
        self,
        config: PebbleConfig | None = None,
        *,
        tools_dir: Path = TOOLS_DIR,
        startup_timeout: float = STARTUP_TIMEOUT,
        api_port: int | None = None,
    ) -> None:
        self.config = config if config is not None else PebbleConfig()
        _check_config(self.config)

        self.version: PebbleVersion = self.config.version
        self.binary_dir = tools_dir / f"pebble-{self.version}" / "usr" / "bin"
        self.startup_timeout = startup_timeout

        self.api_port = api_port or free_port()
        self.management_port = free_port()
        self.dns_port = free_port()
        self.dns_management_port = free_port()
        self.http_port = self.config.http_port or free_port()
        self.tls_port = self.config.tls_port or free_port()

        self.directory_url = f"https://{LOOPBACK}:{self.api_port}/dir"
        self.management_url = f"https://{LOOPBACK}:{self.management_port}"
        self.dns_server = self.config.dns_server or f"{LOOPBACK}:{self.dns_port}"
        self.dns_management_url = f"http://{LOOPBACK}:{self.dns_management_port}"

        self.workdir: Path | None = None
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._session = _new_session()
        self._ca_file: Path | None = None

    @property
    def ca_file(self) -> Path:
        """PEM file of the CA that issued the TLS certificate of Pebble's API."""
        if self._ca_file is None:
            raise PebbleError("Pebble is not running")
        return self._ca_file

    @property
    def package_version(self) -> str:
        """Debian version of the unpacked package, as recorded by the install script."""
        record = self.binary_dir.parents[1] / "package-version"
        return record.read_text(encoding="utf-8").strip()

    def __enter__(self) -> PebbleServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the DNS server and Pebble, and return once both answer."""
        if self._processes:
            raise PebbleError("Pebble is already running")
        pebble, challtestsrv = self._binaries()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"pebble-{self.version}-"))

        try:
            certificate = _write_api_certificate(self.workdir)
            self._ca_file = certificate.ca_file
            config_file = self._write_config(certificate)

            if self.config.dns_server is None:
                self._launch("challtestsrv", [str(challtestsrv), *self._dns_arguments()])
            self._launch(
                "pebble",
                [str(pebble), "-config", str(config_file), "-dnsserver", self.dns_server],
                environment=self._pebble_environment(),
            )
            self._await_ready()
        except BaseException:
            self.stop()
            raise

        logger.info("pebble %s ready at %s", self.version, self.directory_url)

    def stop(self) -> None:
        """Stop both processes (terminate, then kill after a bound) and remove the folder."""
        for name, process in self._processes.items():
            _stop_process(name, process)
        self._processes.clear()
        self._session.close()

        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        self._ca_file = None

    def directory(self) -> dict[str, Any]:
        """The ACME directory object (RFC 8555 §7.1.1)."""
        response = self._get(self.directory_url)
        document: dict[str, Any] = response.json()
        return document

    def roots_pem(self, index: int = 0) -> str:
        """Root certificate of issuing hierarchy `index` (0 is the default chain)."""
        return self._get(f"{self.management_url}/roots/{index}").text

    def intermediates_pem(self, index: int = 0) -> str:
        """Intermediate certificate of issuing hierarchy `index`."""
        return self._get(f"{self.management_url}/intermediates/{index}").text

    def set_renewal_info(
        self,
        certificate_pem: str | bytes,
        window_start: datetime.datetime,
        window_end: datetime.datetime,
        explanation_url: str | None = None,
    ) -> None:
        """Make Pebble's ARI endpoint (RFC 9773) answer this window for a certificate.

        Pebble identifies the certificate by the serial number inside the leaf PEM, not by
        an ARI certificate identifier, so the PEM itself is required. The certificate must
        have been issued by this run of Pebble. Pebble 2.10 only.
        """
        if self.version == "2.4":
            raise PebbleError("Pebble 2.4 has no renewal information (ARI) support")

        renewal_info: dict[str, Any] = {
            "suggestedWindow": {
                "start": _rfc3339(window_start),
                "end": _rfc3339(window_end),
            }
        }
        if explanation_url is not None:
            renewal_info["explanationURL"] = explanation_url

        if isinstance(certificate_pem, bytes):
            certificate_pem = certificate_pem.decode("ascii")
        # The ARI answer travels as a string that Pebble serves back verbatim.
        body = {"Certificate": certificate_pem, "ARIResponse": json.dumps(renewal_info)}
        self._post(f"{self.management_url}/set-renewal-info/", body, verify=self.ca_file)

    def add_txt(self, name: str, value: str) -> None:
        """Serve a TXT record for `name` from the DNS server (for DNS-01)."""
        self._require_challtestsrv()
        body = {"host": _fully_qualified(name), "value": value}
        self._post(f"{self.dns_management_url}/set-txt", body, verify=True)

    def clear_txt(self, name: str) -> None:
        """Remove every TXT record served for `name`."""
        self._require_challtestsrv()
        body = {"host": _fully_qualified(name)}
        self._post(f"{self.dns_management_url}/clear-txt", body, verify=True)

    def _require_challtestsrv(self) -> None:
        if self.config.dns_server is not None:
            raise PebbleError(f"Pebble resolves through {self.dns_server}; set records there")

    def _binaries(self) -> tuple[Path, Path]:
        pebble = self.binary_dir / "pebble"
        challtestsrv = self.binary_dir / "pebble-challtestsrv"
        for binary in (pebble, challtestsrv):
            if not os.access(binary, os.X_OK):
                raise PebbleError(f"{binary} is missing; run {INSTALL_SCRIPT} as root first")
        return pebble, challtestsrv

    def _write_config(self, certificate: _ApiCertificate) -> Path:
        settings: dict[str, Any] = {
            "listenAddress": f"{LOOPBACK}:{self.api_port}",
            "managementListenAddress": f"{LOOPBACK}:{self.management_port}",
            "certificate": str(certificate.certificate_file),
            "privateKey": str(certificate.key_file),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": self.config.eab_required,
        }
        if self.config.eab_keys:
            settings["externalAccountMACKeys"] = dict(self.config.eab_keys)
        if self.config.validity_period is not None:
            settings["certificateValidityPeriod"] = self.config.validity_period
        if self.config.profiles:
            settings["profiles"] = {
                name: {"description": p.description, "validityPeriod": p.validity_period}
                for name, p in self.config.profiles.items()
            }

        assert self.workdir is not None
        config_file = self.workdir / "pebble-config.json"
        # The file may hold external account binding keys.
        _write_private(config_file, json.dumps({"pebble": settings}, indent=2).encode())
        return config_file

    def _dns_arguments(self) -> list[str]:
        # The flag naming the DNS listener was renamed between the two releases, and 2.10
        # added a DNS-over-HTTPS listener; an empty value turns a listener off.
        dns_flag = "-dns01" if self.version == "2.4" else "-dnsserver"
        arguments = [
            dns_flag, self.dns_server,
            "-management", f"{LOOPBACK}:{self.dns_management_port}",
            "-defaultIPv4", LOOPBACK,
            "-defaultIPv6", "",
            "-http01", "",
            "-https01", "",
            "-tlsalpn01", "",
        ]  # fmt: skip
        if self.version != "2.4":
            arguments += ["-doh", ""]
        return arguments

    def _pebble_environment(self) -> dict[str, str]:
        # Pebble settings inherited from the calling shell would make runs differ.
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")}
        environment.update(
            {
                "PEBBLE_VA_NOSLEEP": "1",
                "PEBBLE_WFE_NONCEREJECT": str(self.config.nonce_reject_percent),
                "PEBBLE_ALTERNATE_ROOTS": str(self.config.alternate_roots),
                "PEBBLE_CHAIN_LENGTH": str(self.config.chain_length),
            }
        )
        if self.config.authz_reuse_percent is not None:
            environment["PEBBLE_AUTHZREUSE"] = str(self.config.authz_reuse_percent)
        return environment

    def _launch(
        self, name: str, command: list[str], environment: dict[str, str] | None = None
    ) -> None:
        assert self.workdir is not None
        logger.debug("starting %s: %s", name, command)
        with (self.workdir / f"{name}.log").open("wb") as log:
            self._processes[name] = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _await_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not (self._dns_answers() and self._directory_answers()):
            for name, process in self._processes.items():
                if process.poll() is not None:
                    raise self._startup_error(f"{name} exited with status {process.returncode}")
            if time.monotonic() > deadline:
                raise self._startup_error(f"not ready within {self.startup_timeout:g} s")
            time.sleep(POLL_INTERVAL)

    def _dns_answers(self) -> bool:
        if self.config.dns_server is not None:
            return True  # the test's own server, ready before Pebble was started
        try:
            response = self._session.get(
                self.dns_management_url, timeout=REQUEST_TIMEOUT, verify=True
            )
        except requests.ConnectionError:
            return False
        response.close()
        return True

    def _directory_answers(self) -> bool:
        try:
            response = self._session.get(
                self.directory_url, timeout=REQUEST_TIMEOUT, verify=str(self.ca_file)
            )
        except requests.exceptions.SSLError as error:
            raise self._startup_error(f"TLS to Pebble's API failed: {error}") from error
        except requests.ConnectionError:
            return False
        return response.status_code == 200

    def _startup_error(self, reason: str) -> PebbleError:
        tails = [f"pebble {self.version} did not start: {reason}"]
        for name in self._processes:
            tails.append(f"--- last lines of {name}.log ---\n{self._log_tail(name)}")
        return PebbleError("\n".join(tails))

    def _log_tail(self, name: str) -> str:
        if self.workdir is None:
            return ""
        log = self.workdir / f"{name}.log"
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def _get(self, url: str) -> requests.Response:
        response = self._session.get(url, timeout=REQUEST_TIMEOUT, verify=str(self.ca_file))
        _raise_for_status(response)
        return response

    def _post(self, url: str, body: dict[str, Any], *, verify: Path | bool) -> None:
        response = self._session.post(
            url,
            data=json.dumps(body),
            headers={"Content-Type": "application/json"},
            timeout=REQUEST_TIMEOUT,
            verify=str(verify) if isinstance(verify, Path) else verify,
        )
        _raise_for_status(response)


def _check_config(config: PebbleConfig) -> None:
    if config.version not in ("2.10", "2.4"):
        raise ValueError(f"unknown Pebble version {config.version!r}; use '2.10' or '2.4'")
    if config.version == "2.4" and config.profiles:
        raise ValueError("Pebble 2.4 has no certificate profiles")


def _new_session() -> requests.Session:
    session = requests.Session()
    # The CA file is passed on every request; REQUESTS_CA_BUNDLE and proxy settings from the
    # environment must not decide trust or route loopback traffic.
    session.trust_env = False
    session.headers["User-Agent"] = USER_AGENT
    return session


def _raise_for_status(response: requests.Response) -> None:
    if response.status_code >= 400:
        raise PebbleError(
            f"{response.request.method} {response.url} answered {response.status_code}: "
            f"{response.text.strip()[:500]}"
        )


def _stop_process(name: str, process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        logger.warning("%s ignored SIGTERM for %g s; killing it", name, STOP_TIMEOUT)
        process.kill()
        process.wait()


def _rfc3339(moment: datetime.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("renewal window times must carry a time zone")
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fully_qualified(name: str) -> str:
    return name if name.endswith(".") else f"{name}."


def _write_private(path: Path, content: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as output:
        output.write(content)


def _write_api_certificate(folder: Path) -> _ApiCertificate:
    """Issue a TLS certificate for 127.0.0.1 and localhost from a CA made for this run."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vcs-acme test API CA")])
    ca_certificate = (
        _certificate_builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(certificate_signing=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    alternative_names = x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.IPv4Address(LOOPBACK)),
        ]
    )
    leaf_certificate = (
        _certificate_builder(leaf_name, ca_name, leaf_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(certificate_signing=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(alternative_names, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = _ApiCertificate(
        ca_file=folder / "api-ca.pem",
        certificate_file=folder / "api-certificate.pem",
        key_file=folder / "api-key.pem",
    )
    files.ca_file.write_bytes(ca_certificate.public_bytes(serialization.Encoding.PEM))
    files.certificate_file.write_bytes(leaf_certificate.public_bytes(serialization.Encoding.PEM))
    _write_private(
        files.key_file,
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return files


def _certificate_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, certificate_signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not certificate_signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_signing,
        crl_sign=certificate_signing,
        encipher_only=False,
        decipher_only=False,
    )
