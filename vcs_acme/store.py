"""The state folder: accounts, lineages and their numbered versions, locks.

Layout (every folder 0700, every key 0600)::

    <state_dir>/
      accounts/<host>-<hash>/account.json, account-key.pem
      certificates/<name>/
        current                      "3": the number of the version in use
        renewal-info.json            the last ARI answer for the current version
        versions/0003/cert.pem, chain.pem, fullchain.pem, privkey.pem, meta.json
      locks/<name>.lock              flock(2) target; one process per certificate

Every file is written atomically (temporary file, fsync, rename, fsync of the folder). A
version is written whole into a temporary folder and renamed into place, so it either exists
completely or not at all, and an existing version is never overwritten.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vcs_acme.errors import LockedError, StoreError
from vcs_acme.retry import RetryState

FOLDER_MODE = 0o700
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644

VERSION_FILES = {
    "cert.pem": PUBLIC_MODE,
    "chain.pem": PUBLIC_MODE,
    "fullchain.pem": PUBLIC_MODE,
    "roots.pem": PUBLIC_MODE,
    "privkey.pem": PRIVATE_MODE,
}


def fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_write(
    path: Path, data: bytes, mode: int = PRIVATE_MODE, *, keep_existing: bool = False
) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, whole.

    With ``keep_existing``, a file already there stays as it is (the first writer wins).
    """
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if keep_existing:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
            Path(temporary).unlink()
        else:
            Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def private_folder(path: Path) -> Path:
    """Create ``path`` (and parents) as 0700; tighten an existing folder that is looser."""
    try:
        path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        if path.stat().st_mode & 0o077:
            path.chmod(FOLDER_MODE)
    except OSError as error:
        raise StoreError(f"cannot create state folder {path}: {error.strerror}") from None
    return path


def write_json(path: Path, data: dict[str, Any], mode: int = PRIVATE_MODE) -> None:
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), mode)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise StoreError(f"cannot read {path}: {error}") from None
    if not isinstance(data, dict):
        raise StoreError(f"cannot read {path}: expected a JSON object")
    return data


@dataclass(frozen=True)
class StoredAccount:
    key_pem: bytes
    data: dict[str, Any]


@dataclass(frozen=True)
class StoredVersion:
    """One issued certificate with its key and chain, as kept in the lineage."""

    number: int
    path: Path
    meta: dict[str, Any]

    def read(self, name: str) -> bytes:
        try:
            return (self.path / name).read_bytes()
        except OSError as error:
            raise StoreError(f"cannot read {self.path / name}: {error.strerror}") from None

    @property
    def cert_pem(self) -> bytes:
        return self.read("cert.pem")

    @property
    def key_pem(self) -> bytes:
        return self.read("privkey.pem")

    @property
    def has_key(self) -> bool:
        """False when the device made the key and only the certificate is kept here."""
        return (self.path / "privkey.pem").exists()


class Lineage:
    """One configured certificate and all its versions over time."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name
        self.path = store.root / "certificates" / name

    @property
    def versions_path(self) -> Path:
        return self.path / "versions"

    def current_number(self) -> int | None:
        try:
            text = (self.path / "current").read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreError(f"cannot read {self.path / 'current'}: {error.strerror}") from None
        if not text.isdigit():
            raise StoreError(f"{self.path / 'current'} does not hold a version number")
        return int(text)

    def version(self, number: int) -> StoredVersion:
        folder = self.versions_path / f"{number:04d}"
        meta = read_json(folder / "meta.json")
        if meta is None:
            raise StoreError(f"version {number} of {self.name} is missing ({folder})")
        return StoredVersion(number, folder, meta)

    def current(self) -> StoredVersion | None:
        number = self.current_number()
        return None if number is None else self.version(number)

    def numbers(self) -> list[int]:
        if not self.versions_path.is_dir():
            return []
        return sorted(int(p.name) for p in self.versions_path.iterdir() if p.name.isdigit())

    def add_version(self, files: dict[str, bytes], meta: dict[str, Any]) -> StoredVersion:
        """Write a new version whole, then point ``current`` at it. Needs the lock held."""
        private_folder(self.versions_path)
        number = max(self.numbers(), default=0) + 1
        meta = {**meta, "version": number}
        staging = Path(tempfile.mkdtemp(dir=self.versions_path, prefix=".new-"))
        try:
            for name, data in files.items():
                atomic_write(staging / name, data, VERSION_FILES[name])
            write_json(staging / "meta.json", meta, PUBLIC_MODE)
            final = self.versions_path / f"{number:04d}"
            # rename(2) onto an existing non-empty folder fails, so a version is never
            # overwritten; an empty one cannot exist because versions are only made here.
            staging.rename(final)
        except BaseException:
            _remove_tree(staging)
            raise
        fsync_folder(self.versions_path)
        atomic_write(self.path / "current", f"{number}\n".encode(), PUBLIC_MODE)
        return StoredVersion(number, final, meta)

    def device_state(self, device: str) -> dict[str, Any] | None:
        """What the last deploy to ``device`` left: state, version, fingerprint, error."""
        return read_json(self.path / "devices" / f"{device}.json")

    def save_device_state(self, device: str, data: dict[str, Any]) -> None:
        write_json(private_folder(self.path / "devices") / f"{device}.json", data)

    def fingerprints(self) -> set[str]:
        """The fingerprints of every version: certificates this agent put on devices."""
        return {str(self.version(n).meta.get("fingerprint")) for n in self.numbers()}

    def retry(self) -> RetryState | None:
        data = read_json(self.path / "retry.json")
        return RetryState.from_json(data) if data else None

    def save_retry(self, state: RetryState | None) -> None:
        if state is None:
            (self.path / "retry.json").unlink(missing_ok=True)
            return
        write_json(private_folder(self.path) / "retry.json", state.to_json())

    def renewal_info(self) -> dict[str, Any] | None:
        return read_json(self.path / "renewal-info.json")

    def save_renewal_info(self, data: dict[str, Any]) -> None:
        private_folder(self.path)
        write_json(self.path / "renewal-info.json", data)

    @contextlib.contextmanager
    def lock(self, *, create: bool = True) -> Iterator[None]:
        """Hold this certificate's lock, or raise :class:`LockedError` at once.

        With ``create`` false (a dry run, which must leave the state folder as it was) the
        lock is taken only when its file exists already.
        """
        path = self.store.root / "locks" / f"{self.name}.lock"
        if not create and not path.exists():
            yield
            return
        private_folder(path.parent)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno in (errno.EAGAIN, errno.EACCES):
                    raise LockedError(
                        f"certificate {self.name} is being worked on by another vcs-acme "
                        "process; try again when it has finished"
                    ) from None
                raise
            yield
        finally:
            os.close(descriptor)


class Store:
    """The state folder as a whole."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> None:
        for folder in ("", "accounts", "certificates", "locks"):
            private_folder(self.root / folder)

    def lineage(self, name: str) -> Lineage:
        return Lineage(self, name)

    def digest_key(self, *, create: bool) -> bytes | None:
        """A random key of this state folder, for digests of secrets that nobody can invert.

        Made on first use by a command that writes; None when it does not exist yet and
        ``create`` is false (``status`` creates nothing).
        """
        path = self.root / "digest.key"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            if not create:
                return None
        self.ensure()
        atomic_write(path, secrets.token_bytes(32), PRIVATE_MODE, keep_existing=True)
        return path.read_bytes()

    def account_path(self, directory_url: str) -> Path:
        host = urlsplit(directory_url).hostname or "ca"
        digest = hashlib.sha256(directory_url.encode()).hexdigest()[:10]
        return self.root / "accounts" / f"{host}-{digest}"

    def load_account(self, directory_url: str) -> StoredAccount | None:
        folder = self.account_path(directory_url)
        data = read_json(folder / "account.json")
        if data is None:
            return None
        try:
            key_pem = (folder / "account-key.pem").read_bytes()
        except OSError as error:
            raise StoreError(f"account key missing in {folder}: {error.strerror}") from None
        return StoredAccount(key_pem, data)

    def save_account(self, directory_url: str, key_pem: bytes, data: dict[str, Any]) -> None:
        folder = private_folder(self.account_path(directory_url))
        atomic_write(folder / "account-key.pem", key_pem, PRIVATE_MODE)
        write_json(folder / "account.json", data, PRIVATE_MODE)


def _remove_tree(folder: Path) -> None:
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()
