"""The daemon as systemd runs it: a real process, real signals, Pebble, an emulated device."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from emulator.device import DeviceEmulator
from support.configs import ConfigFile, for_pebble, http01
from support.devices import bare, device_entry
from support.notify import NotifySocket
from support.pebble import PebbleConfig, PebbleServer, Profile
from support.ports import free_port

from vcs_acme.store import Lineage, Store

pytestmark = pytest.mark.integration

PASSWORD = "Adm1n-secret!"
LIFETIME = 40  # seconds: short enough to see several renewals in one test


def await_true(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll ``check`` until it holds (bounded): the state folder is the daemon's output."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


class DaemonProcess:
    def __init__(self, config: Path, notify: NotifySocket, log: Path) -> None:
        env = {
            **os.environ,
            "NOTIFY_SOCKET": str(notify.path),
            "WATCHDOG_USEC": "1000000",
            "PYTHONUNBUFFERED": "1",
        }
        self.log = log
        command = [sys.executable, "-m", "vcs_acme", "--config", str(config), "run"]
        with log.open("ab") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=out)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="module")
def short_pebble() -> Iterator[PebbleServer]:
    profiles = {
        "short": Profile("forty seconds", LIFETIME),
        "long": Profile("ninety days", 7776000),
    }
    with PebbleServer(PebbleConfig(profiles=profiles)) as server:
        yield server


def sample(exposition: str, series: str) -> float:
    """The value of the one sample whose name and labels match the ``series`` pattern."""
    found = re.search(rf"^{series} (\S+)$", exposition, re.MULTILINE)
    assert found is not None, f"no {series} in:\n{exposition}"
    return float(found.group(1))


def versions(lineage: Lineage) -> list[int]:
    return lineage.numbers()


def device_verified(lineage: Lineage, device: str, number: int) -> bool:
    state = lineage.device_state(device) or {}
    return state.get("state") == "verified" and state.get("version") == number


def test_the_daemon_renews_deploys_reloads_and_stops(
    tmp_path: Path, short_pebble: PebbleServer
) -> None:
    password = tmp_path / "password"
    password.write_text(PASSWORD)
    config: ConfigFile = for_pebble(tmp_path, short_pebble)
    config.acme["root_ca_file"] = str(tmp_path / "root.pem")
    (tmp_path / "root.pem").write_text(short_pebble.roots_pem(0))
    store = Store(config.state)
    a, b = store.lineage("edge"), store.lineage("core")
    with (
        DeviceEmulator("expressway-e", "X15.5", "admin", PASSWORD) as edge,
        NotifySocket(tmp_path) as notify,
    ):
        config.devices = [device_entry("edge-1", edge, tmp_path, password)]
        config.certificate(
            "edge",
            ["edge.example.com"],
            key_type="ec256",
            profile="short",
            challenge=http01(short_pebble),
            devices=["edge-1"],
        )
        metrics_port = free_port()
        config.tables["metrics"] = {"listen": f"127.0.0.1:{metrics_port}"}
        path = config.write()
        # Version 1 from a manual run, which does not ask for its renewal window; Pebble's
        # own window for a 40-second certificate is its whole lifetime, so the window the
        # test sets must be in place before the daemon first asks.
        manual = subprocess.run(
            [sys.executable, "-m", "vcs_acme", "--config", str(path), "renew"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert manual.returncode == 0, manual.stdout + manual.stderr
        assert device_verified(a, "edge-1", 1)

        # The CA sets the renewal window: the daemon follows it.
        now = dt.datetime.now(dt.UTC)
        start, end = now + dt.timedelta(seconds=6), now + dt.timedelta(seconds=10)
        short_pebble.set_renewal_info(a.version(1).cert_pem, start, end)
        daemon = DaemonProcess(path, notify, tmp_path / "daemon.log")
        try:
            notify.wait_for("READY=1", 20)
            await_true("version 2 issued", lambda: versions(a) >= [1, 2], 30)
            issued = dt.datetime.fromisoformat(a.version(2).meta["issued"])
            assert start - dt.timedelta(seconds=1) <= issued <= end + dt.timedelta(seconds=3)
            await_true("version 2 verified", lambda: device_verified(a, "edge-1", 2), 20)
            assert edge.presented_fingerprint() == bare(a.version(2).meta["fingerprint"])

            # Several renewals in a row, on its own.
            await_true("version 4 verified", lambda: device_verified(a, "edge-1", 4), 120)

            # The metrics endpoint, scraped while it runs.
            scraped = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            not_after = dt.datetime.fromisoformat(a.version(4).meta["not_after"]).timestamp()
            expiry = r'vcs_acme_certificate_not_after_timestamp_seconds\{certificate="edge"\}'
            assert sample(scraped, expiry) >= not_after  # version 4, or a later one by now
            # Versions 2, 3 and 4 at least: the daemon's own deploys (version 1 was manual).
            verified = (
                r'vcs_acme_device_deploys_total\{[^}]*device="edge-1"[^}]*'
                r'outcome="verified"[^}]*\}'
            )
            assert sample(scraped, verified) >= 3
            assert sample(scraped, "vcs_acme_acme_request_duration_seconds_count") >= 1

            # SIGHUP: a new certificate in the configuration is picked up.
            config.certificate(
                "core",
                ["core.example.com"],
                key_type="ec256",
                profile="long",
                challenge=http01(short_pebble),
            )
            config.write()
            daemon.signal(signal.SIGHUP)
            await_true("the new certificate issued", lambda: versions(b) == [1], 20)

            # WATCHDOG_USEC is one second: pings come at least every half second.
            notify.wait_for("WATCHDOG=1", 5, count=3)

            # kill -9 and start again: the schedule resumes, nothing is issued twice.
            daemon.signal(signal.SIGKILL)
            daemon.wait(10)
            before = versions(a)
            daemon = DaemonProcess(path, notify, tmp_path / "daemon.log")
            notify.clear()
            notify.wait_for("READY=1", 20)
            await_true(
                "edge renewed again after the restart", lambda: len(versions(a)) > len(before), 60
            )
            assert versions(b) == [1]

            # SIGTERM: a clean stop within the bound.
            started = time.monotonic()
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(35) == 0
            assert time.monotonic() - started < 35
            notify.wait_for("STOPPING=1", 5)
            assert any(m.startswith("STATUS=") for m in notify.messages)
        finally:
            daemon.stop()
    log = (tmp_path / "daemon.log").read_text()
    assert PASSWORD not in log
    assert "Traceback" not in log, log[-3000:]
    assert len(versions(a)) >= 5
