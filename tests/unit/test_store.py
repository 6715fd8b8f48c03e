"""The state folder: modes, atomic versions, never overwriting, the lock."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from vcs_acme.errors import LockedError, StoreError
from vcs_acme.store import Store, atomic_write

FILES = {
    "cert.pem": b"leaf\n",
    "chain.pem": b"chain\n",
    "fullchain.pem": b"leaf\nchain\n",
    "privkey.pem": b"key\n",
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_folders_are_private_and_keys_0600(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    store.ensure()
    version = store.lineage("exp").add_version(FILES, {"fingerprint": "aa"})

    assert mode(tmp_path / "state") == 0o700
    assert mode(version.path) == 0o700
    assert mode(version.path / "privkey.pem") == 0o600
    assert mode(version.path / "cert.pem") == 0o644
    assert version.meta["version"] == 1


def test_a_loose_existing_folder_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir(mode=0o755)
    Store(tmp_path / "state").ensure()
    assert mode(tmp_path / "state") == 0o700


def test_versions_are_numbered_and_current_points_at_the_newest(tmp_path: Path) -> None:
    lineage = Store(tmp_path).lineage("exp")
    first = lineage.add_version(FILES, {})
    second = lineage.add_version({**FILES, "cert.pem": b"leaf 2\n"}, {})

    assert (first.number, second.number) == (1, 2)
    assert lineage.current_number() == 2
    assert lineage.version(1).cert_pem == b"leaf\n"
    assert lineage.version(2).cert_pem == b"leaf 2\n"
    assert not [p for p in lineage.versions_path.iterdir() if p.name.startswith(".")]


def test_a_failed_write_leaves_no_version_and_keeps_current(tmp_path: Path) -> None:
    lineage = Store(tmp_path).lineage("exp")
    lineage.add_version(FILES, {})
    with pytest.raises(KeyError):
        lineage.add_version({**FILES, "unknown.pem": b"x"}, {})

    assert lineage.numbers() == [1]
    assert lineage.current_number() == 1
    assert not [p for p in lineage.versions_path.iterdir() if p.name.startswith(".")]


def test_an_existing_version_is_never_overwritten(tmp_path: Path) -> None:
    lineage = Store(tmp_path).lineage("exp")
    lineage.add_version(FILES, {})
    # Someone points 'current' back at version 1: the next version is still 2, never 1.
    (lineage.path / "current").write_text("1\n", encoding="ascii")
    assert lineage.add_version(FILES, {}).number == 2
    (lineage.path / "current").write_text("1\n", encoding="ascii")
    assert lineage.add_version(FILES, {}).number == 3


def test_atomic_write_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "f"
    atomic_write(target, b"one")
    atomic_write(target, b"two", 0o640)
    assert (target.read_bytes(), mode(target)) == (b"two", 0o640)
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_the_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    lineage = Store(tmp_path).lineage("exp")
    held = lineage.lock()
    with held, pytest.raises(LockedError, match="another vcs-acme process"), lineage.lock():
        pass
    with lineage.lock():
        pass


def test_a_dry_run_lock_creates_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "state").lineage("exp").lock(create=False):
        pass
    assert not (tmp_path / "state").exists()


def test_a_damaged_pointer_is_reported(tmp_path: Path) -> None:
    lineage = Store(tmp_path).lineage("exp")
    lineage.add_version(FILES, {})
    (lineage.path / "current").write_text("garbage", encoding="ascii")
    with pytest.raises(StoreError, match="does not hold a version number"):
        lineage.current()
