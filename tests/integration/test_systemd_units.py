"""The files in ``systemd/`` as systemd 252 (Debian 12) reads them.

``systemd-analyze verify`` loads each unit and checks, among the rest, that ``ExecStart=``
names an executable file. The units name ``/usr/local/bin/vcs-acme``, which a test host need
not have, so the test copies them into a temporary folder and rewrites that path to the
``vcs-acme`` console script of the environment running the tests: the same rewrite a venv
install makes (docs/systemd.md), and a real entry point rather than a stub.

``systemd-analyze security --offline=true`` scores the sandbox from the file alone, from 0
(locked down) to 10 (exposed). sysusers and tmpfiles are applied to a temporary root folder.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

UNITS_DIR = Path(__file__).resolve().parents[2] / "systemd"
SERVICES = ("vcs-acme.service", "vcs-acme-renew.service")
UNITS = (*SERVICES, "vcs-acme-renew.timer")
INSTALLED_PATH = "/usr/local/bin/vcs-acme"
EXPOSURE_LIMIT = 2.0
ANALYZE_TIMEOUT_SECONDS = 60
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="files change owner (CI runs as root)")


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args],
        capture_output=True,
        text=True,
        timeout=ANALYZE_TIMEOUT_SECONDS,
        check=False,
    )


def copy_units(folder: Path) -> Path:
    """The units with ``ExecStart=`` pointing at this environment's ``vcs-acme``."""
    entry_point = Path(sys.prefix) / "bin" / "vcs-acme"
    assert entry_point.is_file(), f"{entry_point} missing: install the project (pip install -e)"
    for name in UNITS:
        text = (UNITS_DIR / name).read_text(encoding="utf-8")
        (folder / name).write_text(text.replace(INSTALLED_PATH, str(entry_point)), "utf-8")
    return folder


def service_settings(name: str) -> list[str]:
    """The [Service] lines of a unit, comments left out."""
    lines = (UNITS_DIR / name).read_text(encoding="utf-8").splitlines()
    start = lines.index("[Service]") + 1
    section = []
    for line in lines[start:]:
        if line.startswith("["):
            break
        if line and not line.startswith("#"):
            section.append(line)
    return section


def test_the_units_verify_without_a_warning(tmp_path: Path) -> None:
    folder = copy_units(tmp_path)

    result = analyze(
        "verify", "--man=no", "--recursive-errors=no", *(str(folder / u) for u in UNITS)
    )

    output = result.stdout + result.stderr
    ours = [line for line in output.splitlines() if "vcs-acme" in line or str(folder) in line]
    assert ours == []
    assert result.returncode == 0, output


def test_verify_reports_an_executable_path_not_adjusted(tmp_path: Path) -> None:
    # What an install sees when ExecStart= still names a path the binary is not at.
    (tmp_path / "vcs-acme.service").write_text(
        (UNITS_DIR / "vcs-acme.service")
        .read_text(encoding="utf-8")
        .replace(INSTALLED_PATH, str(tmp_path / "absent")),
        "utf-8",
    )

    result = analyze(
        "verify", "--man=no", "--recursive-errors=no", str(tmp_path / "vcs-acme.service")
    )

    assert result.returncode != 0
    assert "is not executable" in result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_the_exposure_score_is_low(tmp_path: Path, service: str) -> None:
    path = copy_units(tmp_path) / service

    result = analyze("security", "--offline=true", "--no-pager", str(path))

    found = re.search(
        rf"Overall exposure level for {re.escape(service)}: (\d+\.\d+)", result.stdout
    )
    assert found is not None, result.stdout + result.stderr
    assert float(found.group(1)) <= EXPOSURE_LIMIT, result.stdout


def test_daemon_and_timer_share_one_sandbox() -> None:
    def sandbox(name: str) -> list[str]:
        settings = service_settings(name)
        return settings[settings.index("User=vcs-acme") :]

    assert sandbox("vcs-acme.service") == sandbox("vcs-acme-renew.service")


@needs_root
def test_sysusers_and_tmpfiles_make_the_user_and_folders(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    for database in ("passwd", "group"):
        (tmp_path / "etc" / database).touch()

    run_tool("systemd-sysusers", f"--root={tmp_path}", str(UNITS_DIR / "vcs-acme.sysusers.conf"))
    run_tool(
        "systemd-tmpfiles",
        f"--root={tmp_path}",
        "--create",
        str(UNITS_DIR / "vcs-acme.tmpfiles.conf"),
    )

    user = next(
        line.split(":")
        for line in (tmp_path / "etc" / "passwd").read_text().splitlines()
        if line.startswith("vcs-acme:")
    )
    uid, gid, home, shell = int(user[2]), int(user[3]), user[5], user[6]
    assert (home, shell) == ("/var/lib/vcs-acme", "/usr/sbin/nologin")
    assert uid < 1000, "a system user"
    assert folder_mode_and_owner(tmp_path / "etc/vcs-acme") == (0o750, 0, gid)
    assert folder_mode_and_owner(tmp_path / "var/lib/vcs-acme") == (0o700, uid, gid)


def run_tool(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr


def folder_mode_and_owner(path: Path) -> tuple[int, int, int]:
    status = path.stat()
    assert stat.S_ISDIR(status.st_mode)
    return stat.S_IMODE(status.st_mode), status.st_uid, status.st_gid
