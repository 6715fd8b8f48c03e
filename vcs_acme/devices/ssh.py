"""SSH as root: replace the certificate files on the device's disk over SFTP.

The server certificate, its key and the trusted CA list are plain PEM files under
``/tandberg/persistent/certs/`` owned by ``_nobody:nobody`` (VCS X14.3 troubleshooting guide);
the key's file name and the restart command are unconfirmed and are settings
(:class:`~vcs_acme.config_devices.SshSettings`).

Every file is replaced the same way, so that nothing is lost until the new certificate is
verified: the new content goes to ``<path>.vcs-acme-new``, the current file is copied to
``<path>.vcs-acme-previous``, and the new file is renamed over the old one with the
``posix-rename@openssh.com`` request, which is atomic on the device. Only then are the owners
set, with ``chown`` over an exec channel, because SFTP can only set numeric ids.

The device's host key is always checked against the configured ``known_hosts`` file; an
unknown or changed key ends the connection before anything is sent.

Reading the software release over SSH is not known (no public source names a file or command
that holds it), so :meth:`SshAccess.software_release` returns None and an ``ssh`` device needs
``release`` set in its configuration.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NoReturn

import paramiko
from paramiko.hostkeys import InvalidHostKey
from paramiko.pkey import UnknownKeyType
from paramiko.ssh_exception import NoValidConnectionsError

from vcs_acme import pki
from vcs_acme.config_devices import DeviceSettings
from vcs_acme.devices.access import Bundle, DeviceError

logger = logging.getLogger(__name__)

NEW_SUFFIX = ".vcs-acme-new"
PREVIOUS_SUFFIX = ".vcs-acme-previous"

CERTIFICATE_MODE = 0o644
KEY_MODE = 0o600

# Covers the TCP connection, the SSH banner and the login each.
CONNECT_TIMEOUT = 15.0
# A command that prints nothing for this long is taken as hung.
COMMAND_TIMEOUT = 60.0
# The exit status of a channel that closed without sending one (paramiko's value).
DROPPED = -1
STDERR_LIMIT = 300


@dataclass(frozen=True)
class _RemoteFile:
    path: str
    content: bytes
    mode: int


class _UnknownHostKey(paramiko.SSHException):
    """The server offered a host key that known_hosts does not list; carries that key."""

    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("host key not in known_hosts")
        self.key = key


class _RefuseUnknownHostKey(paramiko.RejectPolicy):
    """Reject like :class:`paramiko.RejectPolicy`, keeping the offered key for the message."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> NoReturn:
        raise _UnknownHostKey(key)


class SshAccess:
    """One device's SSH and SFTP service, logged in on first use."""

    key_on_device = False

    def __init__(self, device: DeviceSettings) -> None:
        self.device = device
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._address = f"{device.host}:{device.ssh.port}"

    def _fail(self, message: str, *, transient: bool = False) -> DeviceError:
        return DeviceError(self.device.name, message, transient=transient)

    def software_release(self) -> str | None:
        logger.debug(
            "ssh %s: the release cannot be read over SSH; using the configured one", self._address
        )
        return None

    def certificate_signing_request(self, names: tuple[str, ...], rsa_bits: int) -> bytes:
        raise self._fail(
            "the ssh way in cannot make a key and CSR on the device; the agent "
            "makes the key and uploads it with the certificate"
        )

    def upload_server_certificate(self, bundle: Bundle) -> None:
        if bundle.key_pem is None:
            raise self._fail(
                "the bundle has no private key; over ssh the key travels with the certificate"
            )
        ssh = self.device.ssh
        self._replace(
            [
                _RemoteFile(ssh.certificate_path, bundle.leaf_pem, CERTIFICATE_MODE),
                _RemoteFile(ssh.key_path, bundle.key_pem, KEY_MODE),
            ]
        )
        logger.debug("ssh %s: server certificate %s in place", self._address, bundle.fingerprint)

    def trusted_cas(self) -> list[bytes]:
        content = self._read(self.device.ssh.ca_path)
        return pki.split_pem_chain(content) if content else []

    def append_trusted_cas(self, ca_pems: list[bytes]) -> None:
        if not ca_pems:
            return
        path = self.device.ssh.ca_path
        current = self._read(path) or b""
        if current and not current.endswith(b"\n"):
            current += b"\n"
        added = b"".join(pem if pem.endswith(b"\n") else pem + b"\n" for pem in ca_pems)
        self._replace([_RemoteFile(path, current + added, CERTIFICATE_MODE)])
        logger.debug("ssh %s: appended %d CA certificates to %s", self._address, len(ca_pems), path)

    def restart(self) -> None:
        command = self.device.ssh.restart_command
        logger.debug("ssh %s: running the restart command %r", self._address, command)
        try:
            status, stderr = self._execute(command)
        finally:
            # The device goes down: the next call logs in again.
            self.close()
        if status == DROPPED:
            # Going down ends the session before the command can report; the certificate
            # check after the restart tells whether it worked.
            logger.debug("ssh %s: the restart ended the session", self._address)
        elif status != 0:
            raise self._fail(
                f"restart command {command!r} failed with status {status}: {_trim(stderr)}"
            )

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # Files

    def _replace(self, files: list[_RemoteFile]) -> None:
        sftp = self._open_sftp()
        for file in files:
            self._write(sftp, file.path + NEW_SUFFIX, file.content, file.mode)
        kept = [self._keep_previous(sftp, file) for file in files]
        for file in files:
            with self._file_errors(f"renaming {file.path + NEW_SUFFIX} to {file.path}"):
                sftp.posix_rename(file.path + NEW_SUFFIX, file.path)
            logger.debug("ssh %s: replaced %s", self._address, file.path)
        self._chown([file.path for file in files] + [path for path in kept if path])

    def _write(self, sftp: paramiko.SFTPClient, path: str, content: bytes, mode: int) -> None:
        logger.debug(
            "ssh %s: writing %d bytes to %s (mode %o)", self._address, len(content), path, mode
        )
        with self._file_errors(f"writing {path}"), sftp.open(path, "wb") as handle:
            # The mode is set while the file is still empty: a key is never readable by others.
            handle.chmod(mode)
            handle.write(content)

    def _keep_previous(self, sftp: paramiko.SFTPClient, file: _RemoteFile) -> str | None:
        current = self._read(file.path)
        if current is None:
            return None
        previous = file.path + PREVIOUS_SUFFIX
        self._write(sftp, previous, current, file.mode)
        return previous

    def _read(self, path: str) -> bytes | None:
        """The file's content, or None when there is no such file."""
        sftp = self._open_sftp()
        logger.debug("ssh %s: reading %s", self._address, path)
        content: bytes | None = None
        with self._file_errors(f"reading {path}"):
            try:
                with sftp.open(path, "rb") as handle:
                    content = handle.read()
            except FileNotFoundError:
                logger.debug("ssh %s: %s does not exist", self._address, path)
        return content

    def _chown(self, paths: list[str]) -> None:
        owner = self.device.ssh.owner
        command = shlex.join(["chown", owner, *paths])
        logger.debug("ssh %s: %s", self._address, command)
        status, stderr = self._execute(command)
        if status == DROPPED:
            raise self._fail(
                f"setting the owner {owner} ended without a status (connection lost?)",
                transient=True,
            )
        if status != 0:
            raise self._fail(
                f"setting the owner {owner} failed with status {status}: {_trim(stderr)}"
            )

    @contextmanager
    def _file_errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError as error:
            raise self._fail(f"{doing}: no such file or folder") from error
        except PermissionError as error:
            raise self._fail(f"{doing}: permission denied") from error
        except (paramiko.SSHException, EOFError, ConnectionError, TimeoutError) as error:
            raise self._fail(
                f"{doing}: connection lost ({_name(error)})", transient=True
            ) from error
        except OSError as error:
            # SFTP status messages other than the two above ("Failure", ...).
            raise self._fail(f"{doing}: {error}") from error

    # Commands

    def _execute(self, command: str) -> tuple[int, bytes]:
        """Run ``command``; return its exit status and what it wrote to stderr.

        The status is DROPPED when the channel closed without one: the connection was lost,
        or the command was killed by a signal (which SSH reports apart, and paramiko not).
        """
        channel = self._open_channel()
        try:
            self._start(channel, command)
            return self._finish(channel, command)
        finally:
            channel.close()

    def _start(self, channel: paramiko.Channel, command: str) -> None:
        try:
            channel.settimeout(COMMAND_TIMEOUT)
            channel.exec_command(command)
            channel.shutdown_write()
        except (paramiko.SSHException, EOFError, OSError) as error:
            raise self._fail(f"the device would not run {command!r}: {_name(error)}") from error

    def _finish(self, channel: paramiko.Channel, command: str) -> tuple[int, bytes]:
        try:
            # The commands run here print a few lines at most, so reading stdout to its end
            # before stderr cannot fill the channel window and stall.
            channel.makefile("rb").read()
            stderr: bytes = channel.makefile_stderr("rb").read()
            if not channel.status_event.wait(COMMAND_TIMEOUT):
                raise TimeoutError
        except TimeoutError:
            raise self._fail(
                f"command {command!r} gave no answer within {COMMAND_TIMEOUT:g} s", transient=True
            ) from None
        except (paramiko.SSHException, EOFError, ConnectionError) as error:
            logger.debug("ssh %s: lost during %r: %s", self._address, command, _name(error))
            return DROPPED, b""
        return channel.exit_status, stderr

    def _open_channel(self) -> paramiko.Channel:
        transport = self._connect().get_transport()
        try:
            if transport is None:
                raise EOFError
            return transport.open_session(timeout=CONNECT_TIMEOUT)
        except (paramiko.SSHException, EOFError, OSError) as error:
            self.close()
            raise self._fail(
                f"cannot open a session on {self._address}: {_name(error)}", transient=True
            ) from error

    # Connection

    def _open_sftp(self) -> paramiko.SFTPClient:
        client = self._connect()
        if self._sftp is None:
            logger.debug("ssh %s: opening SFTP", self._address)
            with self._file_errors("opening SFTP"):
                self._sftp = client.open_sftp()
        return self._sftp

    def _connect(self) -> paramiko.SSHClient:
        if self._client is not None and _active(self._client):
            return self._client
        self.close()
        client = paramiko.SSHClient()
        self._load_known_hosts(client)
        client.set_missing_host_key_policy(_RefuseUnknownHostKey())
        password, key = self._credentials()
        logger.debug(
            "ssh %s: logging in as %s with %s",
            self._address,
            self.device.username,
            "a key" if key else "a password",
        )
        try:
            client.connect(
                self.device.host,
                self.device.ssh.port,
                self.device.username,
                password=password,
                pkey=key,
                allow_agent=False,
                look_for_keys=False,
                timeout=CONNECT_TIMEOUT,
                banner_timeout=CONNECT_TIMEOUT,
                auth_timeout=CONNECT_TIMEOUT,
            )
        except Exception as error:
            client.close()
            raise self._connect_error(error) from None
        self._client = client
        return client

    def _load_known_hosts(self, client: paramiko.SSHClient) -> None:
        path = self.device.ssh.known_hosts
        port, host = self.device.ssh.port, self.device.host
        fetch = (
            f"check the device's host key fingerprint on its console, then add the key "
            f"with `ssh-keyscan -p {port} {host} >> {path or 'FILE'}`"
        )
        if path is None:
            raise self._fail(f"ssh needs a known_hosts file: set ssh.known_hosts; {fetch}")
        if not path.is_file():
            raise self._fail(f"known_hosts file {path} does not exist; {fetch}")
        try:
            # System host keys are never written back, unlike those of load_host_keys.
            client.load_system_host_keys(str(path))
        except (OSError, UnicodeDecodeError, InvalidHostKey) as error:
            raise self._fail(f"cannot read known_hosts file {path}: {_name(error)}") from None

    def _credentials(self) -> tuple[str | None, paramiko.PKey | None]:
        """The password, and the key from key_file (the password is its passphrase)."""
        password = self.device.password.reveal() if self.device.password else None
        path = self.device.ssh.key_file
        if path is None:
            return password, None
        passphrase = password.encode() if password else None
        try:
            return password, paramiko.PKey.from_path(path, passphrase)
        except OSError as error:
            raise self._fail(f"cannot read ssh key_file {path}: {error.strerror}") from None
        except paramiko.PasswordRequiredException:
            raise self._fail(
                f"ssh key_file {path} is encrypted; set password to its passphrase"
            ) from None
        except (paramiko.SSHException, UnknownKeyType, ValueError):
            # The parser's own message may quote the file; it stays out.
            raise self._fail(
                f"ssh key_file {path} is not a private key that can be read "
                "(OpenSSH or PEM; RSA, ECDSA or Ed25519; right passphrase?)"
            ) from None

    def _connect_error(self, error: Exception) -> DeviceError:
        known_hosts = self.device.ssh.known_hosts
        if isinstance(error, _UnknownHostKey):
            return self._fail(
                f"host key {_describe(error.key)} of {self._address} is not in "
                f"{known_hosts}; check this fingerprint on the device's console, "
                f"then add the key with `ssh-keyscan -p {self.device.ssh.port} "
                f"{self.device.host} >> {known_hosts}`"
            )
        if isinstance(error, paramiko.BadHostKeyException):
            return self._fail(
                f"host key of {self._address} CHANGED: it offered "
                f"{_describe(error.key)}, {known_hosts} lists "
                f"{_describe(error.expected_key)}; if the device was reinstalled, "
                "check the new fingerprint on its console and replace the "
                "entry"
            )
        if isinstance(error, paramiko.BadAuthenticationType):
            return self._fail(
                f"login refused for {self.device.username}: the device accepts "
                f"only {', '.join(error.allowed_types)}"
            )
        if isinstance(error, paramiko.AuthenticationException):
            return self._fail(
                f"login refused for {self.device.username} on {self._address}; "
                "check password / ssh.key_file"
            )
        if isinstance(error, TimeoutError):
            return self._fail(
                f"no answer from {self._address} within {CONNECT_TIMEOUT:g} s", transient=True
            )
        if isinstance(error, NoValidConnectionsError):
            reasons = {_reason(problem) for problem in error.errors.values()}
            return self._fail(
                f"cannot connect to {self._address}: {', '.join(sorted(reasons))}", transient=True
            )
        if isinstance(error, OSError):
            reason = _reason(error)
            return self._fail(f"cannot connect to {self._address}: {reason}", transient=True)
        return self._fail(f"ssh to {self._address} failed: {_name(error)}", transient=True)


def _active(client: paramiko.SSHClient) -> bool:
    transport = client.get_transport()
    return transport is not None and transport.is_active()


def _describe(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def _name(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return _name(error)


def _trim(stderr: bytes) -> str:
    text = re.sub(r"\s+", " ", stderr.decode("utf-8", "replace")).strip()
    if len(text) > STDERR_LIMIT:
        text = text[:STDERR_LIMIT] + "…"
    return text or "(no message)"
