"""Failures in a pass: transient ones come back later and later, permanent ones stop."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator.device import DeviceEmulator
from support.cli import Cli
from support.configs import for_pebble, http01
from support.devices import device_entry
from support.pebble import PebbleConfig, PebbleServer

from vcs_acme import config as config_module
from vcs_acme.daemon import Daemon
from vcs_acme.pipeline import Pass
from vcs_acme.store import Store

pytestmark = pytest.mark.integration

PASSWORD = "Adm1n-secret!"


@pytest.fixture(scope="module")
def pebble24() -> Iterator[PebbleServer]:
    with PebbleServer(PebbleConfig(version="2.4")) as server:
        yield server


class Clock:
    """Real time moved forward by hand, so that retries come due without waiting."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


def settings_for(tmp_path: Path, pebble: PebbleServer, emulator: DeviceEmulator) -> Path:
    password = tmp_path / "password"
    password.write_text(PASSWORD)
    config = for_pebble(tmp_path, pebble)
    config.devices = [device_entry("vcs-1", emulator, tmp_path, password)]
    config.certificate("video", ["vcs.example.com"], challenge=http01(pebble), devices=["vcs-1"])
    return config.write()


def test_a_transient_device_fault_is_retried_with_growing_delays(
    tmp_path: Path, pebble24: PebbleServer
) -> None:
    with DeviceEmulator("vcs", "X14.3", "admin", PASSWORD) as vcs:
        settings = config_module.load(settings_for(tmp_path, pebble24, vcs))
        lineage = Store(settings.state_dir).lineage("video")
        clock = Clock()
        vcs.fail_next_requests(1000, status=503)
        delays = []
        for _ in range(4):
            result = Pass(settings, clock=clock).run_one(settings.certificate("video"))
            state = lineage.retry()
            assert state is not None
            assert state.next_try is not None
            assert not state.permanent
            delays.append((state.next_try - clock()).total_seconds())
            clock.offset += state.next_try - clock()  # the daemon would wake up then

        assert [d.state for d in result.devices] == ["failed"]
        assert state is not None
        assert state.attempts == 4
        assert 45 < delays[0] < 75
        assert all(later > earlier * 1.3 for earlier, later in itertools.pairwise(delays))
        assert lineage.numbers() == [1]  # retried the deploy, never reissued

        vcs.fail_next_requests(0)
        healed = Pass(settings, clock=clock).run_one(settings.certificate("video"))
        assert [d.state for d in healed.devices] == ["verified"]
        assert lineage.retry() is None


def test_a_permanent_fault_is_not_retried_until_forced(
    tmp_path: Path, pebble24: PebbleServer, cli: Cli
) -> None:
    with DeviceEmulator("vcs", "X14.3", "admin", PASSWORD) as vcs:
        path = settings_for(tmp_path, pebble24, vcs)
        settings = config_module.load(path)
        lineage = Store(settings.state_dir).lineage("video")
        vcs.refuse_logins()

        first = Pass(settings).run_one(settings.certificate("video"))
        logins = len(vcs.events_of("login"))
        second = Pass(settings).run_one(settings.certificate("video"))

        assert "login refused" in str(first.devices[0].error)
        state = lineage.retry()
        assert state is not None
        assert (state.permanent, state.next_try) == (True, None)
        assert second.outcome == "held"
        assert "renew --force" in second.reason
        assert len(vcs.events_of("login")) == logins  # nobody knocked again

        assert Daemon(path, settings).next_run(settings.certificate("video")) is None

        held = cli("--config", str(path), "renew")
        assert held.code == 1
        assert "video: HELD: held after a permanent failure" in held.out


def test_every_job_coalesces_missed_runs_and_never_overlaps_itself(
    tmp_path: Path, pebble24: PebbleServer
) -> None:
    with DeviceEmulator("vcs", "X14.3", "admin", PASSWORD) as vcs:
        path = settings_for(tmp_path, pebble24, vcs)
        settings = config_module.load(path)
        daemon = Daemon(path, settings)
        daemon.scheduler.start(paused=True)
        try:
            daemon.schedule_all()
            jobs = daemon.scheduler.get_jobs()
        finally:
            daemon.scheduler.shutdown(wait=False)

    assert sorted(job.id for job in jobs) == ["certificate:video", "device-check"]
    for job in jobs:
        # Late runs are neither dropped (no grace limit) nor repeated (coalesced), and a
        # job never overlaps itself.
        assert (job.coalesce, job.misfire_grace_time, job.max_instances) == (True, None, 1)


def test_a_fixed_password_lifts_the_hold_of_a_refused_login(
    tmp_path: Path, pebble24: PebbleServer, cli: Cli
) -> None:
    with DeviceEmulator("vcs", "X14.3", "admin", PASSWORD) as vcs:
        path = settings_for(tmp_path, pebble24, vcs)
        (tmp_path / "password").write_text("last-years-password")
        refused = cli("--config", str(path), "renew")
        held = cli("--config", str(path), "renew")
        logins = len(vcs.events_of("login"))

        (tmp_path / "password").write_text(PASSWORD)  # what the administrator does next
        fixed = cli("--config", str(path), "renew")

    assert refused.code == 1
    assert "video: HELD" in held.out
    assert len(vcs.events_of("login")) > logins
    assert fixed.code == 0, fixed.out + fixed.err
    assert "device vcs-1: verified" in fixed.out
    assert Store(tmp_path / "state").lineage("video").retry() is None
    key = tmp_path / "state" / "digest.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert PASSWORD.encode() not in b"".join(
        f.read_bytes() for f in (tmp_path / "state").rglob("*") if f.is_file()
    )


def test_status_and_history_show_the_retry_state(
    tmp_path: Path, pebble24: PebbleServer, cli: Cli
) -> None:
    with DeviceEmulator("vcs", "X14.3", "admin", PASSWORD) as vcs:
        path = str(settings_for(tmp_path, pebble24, vcs))
        vcs.fail_next_requests(1000, status=500)
        assert cli("--config", path, "renew").code == 1

        status = json.loads(cli("--config", path, "status", "--json").out)["certificates"][0]
        recorded = json.loads(cli("--config", path, "history", "--json").out)["entries"]
        table = cli("--config", path, "status").out

    assert status["retry"]["attempts"] == 1
    assert status["retry"]["permanent"] is False
    assert status["next_run"] == status["retry"]["next_try"]
    assert status["next_run_reason"] == "retry 2 after a failure"
    assert status["last_outcome"] == "renewed"
    # Both recorded at the end of the same pass: the device's outcome is listed first.
    assert [(e["kind"], e["device"], e["outcome"]) for e in recorded] == [
        ("deploy", "vcs-1", "failed"),
        ("renewal", None, "renewed"),
    ]
    assert "video: next run" in table
    assert "(retry 2 after a failure)" in table
    assert "retry 1 at" in table
