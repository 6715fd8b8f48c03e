"""Run a real OpenSSH server as the far end of the ``ssh`` way in.

`SshServer` starts ``/usr/sbin/sshd -D -e`` on a free loopback port with a host key made for
this run. Everything lives in a private temporary folder removed on exit:

- ``client_key`` is authorized for the user running the tests (root, as on the appliance,
  through an ``AuthorizedKeysFile`` in the folder); ``stranger_key`` is a key that is not.
- Password logins are on too, so that a wrong password can be refused for real. No account's
  password is set or changed here: sshd refuses a wrong password for any account.
- ``known_hosts`` lists the host key as ``[127.0.0.1]:PORT``, as ``ssh-keyscan -p`` writes it.
- ``certs_dir`` is ``<device root>/tandberg/persistent/certs``, where the tests point the
  certificate paths instead of the appliance's ``/tandberg/persistent/certs``.

sshd needs root to switch to the logged-in user, and its privilege separation folder
``/run/sshd``, made here when missing. Failures to start raise `SshdError` with the tail of
the server's log.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from .ports import LOOPBACK, free_port

logger = logging.getLogger(__name__)

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
PRIVILEGE_SEPARATION_DIR = Path("/run/sshd")
INSTALL_SCRIPT = "tests/tools/install-system.sh"

STARTUP_TIMEOUT = 10.0
POLL_INTERVAL = 0.02
PROBE_TIMEOUT = 1.0
STOP_TIMEOUT = 5.0
LOG_TAIL_LINES = 30


class SshdError(RuntimeError):
    """sshd could not be started."""


class SshServer:
    """One sshd, started on enter and stopped on exit."""

    def __init__(self, *, startup_timeout: float = STARTUP_TIMEOUT) -> None:
        self.host = LOOPBACK
        self.port = free_port()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.startup_timeout = startup_timeout
        self.workdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SshServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def folder(self) -> Path:
        if self.workdir is None:
            raise SshdError("sshd is not running")
        return self.workdir

    @property
    def client_key(self) -> Path:
        return self.folder / "client_key"

    @property
    def stranger_key(self) -> Path:
        return self.folder / "stranger_key"

    @property
    def known_hosts(self) -> Path:
        return self.folder / "known_hosts"

    @property
    def certs_dir(self) -> Path:
        return self.folder / "device" / "tandberg" / "persistent" / "certs"

    @property
    def log_file(self) -> Path:
        return self.folder / "sshd.log"

    def start(self) -> None:
        """Make the keys and the configuration, start sshd, return once it greets."""
        if self._process is not None:
            raise SshdError("sshd is already running")
        if not os.access(SSHD, os.X_OK):
            raise SshdError(f"{SSHD} is missing; run {INSTALL_SCRIPT} as root first")
        PRIVILEGE_SEPARATION_DIR.mkdir(mode=0o755, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="sshd-"))

        try:
            config = self._prepare()
            self._launch(config)
            self._await_greeting()
        except BaseException:
            self.stop()
            raise

        logger.info("sshd ready at %s:%d", self.host, self.port)

    def stop(self) -> None:
        """Stop sshd (terminate, then kill after a bound) and remove the folder."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(STOP_TIMEOUT)
            self._process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def make_key(self, name: str) -> Path:
        """A fresh Ed25519 key pair in the folder; returns the private key's path."""
        path = self.folder / name
        subprocess.run(
            [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        return path

    def write_known_hosts(self, path: Path, host_key: Path) -> None:
        """Write a known_hosts file that names this server with the public half of host_key."""
        key_type, key_text = host_key.with_suffix(".pub").read_text().split()[:2]
        path.write_text(f"[{self.host}]:{self.port} {key_type} {key_text}\n")

    def _prepare(self) -> Path:
        host_key = self.make_key("host_key")
        client_key = self.make_key("client_key")
        self.make_key("stranger_key")
        authorized_keys = self.folder / "authorized_keys"
        authorized_keys.write_text(client_key.with_suffix(".pub").read_text())
        self.write_known_hosts(self.known_hosts, host_key)
        self.certs_dir.mkdir(parents=True)

        config = self.folder / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.host}",
                    f"Port {self.port}",
                    f"HostKey {host_key}",
                    f"PidFile {self.folder / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized_keys}",
                    # The folder belongs to the test run, not to the user logging in.
                    "StrictModes no",
                    "PermitRootLogin yes",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication yes",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "PrintMotd no",
                    "Subsystem sftp internal-sftp",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )
        return config

    def _launch(self, config: Path) -> None:
        command = [str(SSHD), "-D", "-e", "-f", str(config)]
        logger.debug("starting sshd: %s", command)
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def _await_greeting(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not self._greets():
            assert self._process is not None
            if self._process.poll() is not None:
                raise self._startup_error(f"sshd exited with status {self._process.returncode}")
            if time.monotonic() > deadline:
                raise self._startup_error(f"no SSH greeting within {self.startup_timeout:g} s")
            time.sleep(POLL_INTERVAL)

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), PROBE_TIMEOUT) as probe:
                return probe.recv(4).startswith(b"SSH-")
        except OSError:
            return False

    def _startup_error(self, reason: str) -> SshdError:
        lines = self.log_file.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return SshdError(f"sshd did not start: {reason}\n--- sshd.log ---\n" + "\n".join(lines))
