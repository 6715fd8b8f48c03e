"""Log output as log shippers and the journal read it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.configs import for_pebble, http01
from support.pebble import PebbleServer

pytestmark = pytest.mark.integration


def run(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "vcs_acme", "--config", str(config), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


@pytest.fixture
def config_path(tmp_path: Path, pebble: PebbleServer) -> Path:
    config = for_pebble(tmp_path, pebble)
    config.certificate("a", ["a.example.com"], key_type="ec256", challenge=http01(pebble))
    return config.write()


def test_json_logs_are_one_object_per_line(config_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    result = run(config_path, env, "--log-level", "debug", "--log-format", "json", "renew")

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert len(records) > 10
    assert all(set(r) >= {"time", "level", "logger", "message"} for r in records)
    assert {"debug", "info"} <= {r["level"] for r in records}
    assert any(r["logger"] == "vcs_acme.pipeline" and "stored version 1" in r["message"]
               for r in records)  # fmt: skip
    assert all(r["time"].endswith("+00:00") for r in records)


def test_under_the_journal_lines_carry_a_priority_and_no_time(config_path: Path) -> None:
    env = {**os.environ, "JOURNAL_STREAM": "8:12345"}
    result = run(config_path, env, "--log-level", "info", "renew")

    lines = [line for line in result.stderr.splitlines() if line]
    assert result.returncode == 0, result.stderr
    assert lines
    assert all(re.match(r"<[0-7]>vcs_acme[.\w]*: ", line) for line in lines), lines
    assert any(line.startswith("<6>vcs_acme.pipeline: a: renewing") for line in lines)
    assert not any(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", line) for line in lines)
