"""The history database: what is recorded comes back, in order, from any thread or process."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vcs_acme.errors import StoreError
from vcs_acme.history import SCHEMA_VERSION, Entry, History

START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def entry(minute: int = 0, certificate: str = "exp", **changes: object) -> Entry:
    started = START + dt.timedelta(minutes=minute)
    base = Entry(
        certificate=certificate,
        kind="renewal",
        outcome="renewed",
        started_at=started,
        finished_at=started + dt.timedelta(seconds=3),
        duration_seconds=2.75,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run_together(workers: list[Callable[[], None]]) -> None:
    """Start every worker at the same moment and re-raise the first failure."""
    barrier = threading.Barrier(len(workers))
    failures: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        barrier.wait()
        try:
            work()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not [thread for thread in threads if thread.is_alive()], "a writer is stuck"
    if failures:
        raise failures[0]


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    with History.open(tmp_path / "state") as opened:
        yield opened


def test_an_entry_comes_back_whole_with_its_id(history: History) -> None:
    recorded = entry(
        kind="deploy",
        outcome="failed",
        device="vcs-1",
        reason="device refused the certificate: chain incomplete",
        version=3,
        attempt_number=2,
        transient=True,
        next_try=START + dt.timedelta(hours=1),
    )

    number = history.record(recorded)

    assert history.entries() == [dataclasses.replace(recorded, id=number)]


def test_unset_optional_columns_come_back_as_none(history: History) -> None:
    number = history.record(entry())

    (found,) = history.entries()
    assert found == dataclasses.replace(entry(), id=number)
    assert (found.device, found.version, found.transient, found.next_try) == (None,) * 4


def test_times_come_back_aware_in_utc_whatever_zone_they_were_given_in(history: History) -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    given = dt.datetime(2026, 3, 1, 14, 0, 0, 123456, tzinfo=paris)
    history.record(entry(started_at=given, finished_at=given, next_try=given))

    (found,) = history.entries()

    for value in (found.started_at, found.finished_at, found.next_try):
        assert value is not None
        assert value.utcoffset() == dt.timedelta(0)
        assert value == dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="started_at must be timezone-aware"):
        entry(started_at=dt.datetime(2026, 3, 1, 12, 0))
    with pytest.raises(ValueError, match="next_try must be timezone-aware"):
        entry(next_try=dt.datetime(2026, 3, 1, 12, 0))


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="renewal, deploy, check"):
        entry(kind="install")


def test_entries_are_newest_first_whatever_the_order_of_recording(history: History) -> None:
    for minute in (5, 1, 9, 3):
        history.record(entry(minute))

    started = [found.started_at for found in history.entries()]

    assert started == [START + dt.timedelta(minutes=m) for m in (9, 5, 3, 1)]


def test_entries_started_at_the_same_moment_come_newest_recorded_first(history: History) -> None:
    first = history.record(entry(outcome="failed"))
    second = history.record(entry(outcome="renewed"))

    assert [found.id for found in history.entries()] == [second, first]


def test_entries_can_be_limited_to_one_certificate(history: History) -> None:
    history.record(entry(1, certificate="exp"))
    history.record(entry(2, certificate="core"))
    history.record(entry(3, certificate="exp"))

    assert [found.started_at.minute for found in history.entries("exp")] == [3, 1]
    assert [found.certificate for found in history.entries("core")] == ["core"]
    assert history.entries("absent") == []


def test_entries_are_limited_to_the_newest(history: History) -> None:
    for minute in range(60):
        history.record(entry(minute))

    assert len(history.entries()) == 50
    assert [found.started_at.minute for found in history.entries(limit=3)] == [59, 58, 57]
    with pytest.raises(ValueError, match="at least 1"):
        history.entries(limit=0)


def test_last_is_the_newest_of_one_kind_for_one_certificate(history: History) -> None:
    history.record(entry(1, outcome="not-due"))
    history.record(entry(2, outcome="failed"))
    history.record(entry(3, kind="deploy", outcome="verified", device="vcs-1"))
    history.record(entry(4, certificate="core", outcome="renewed"))

    renewal = history.last("exp")
    deployment = history.last("exp", kind="deploy")

    assert renewal is not None
    assert (renewal.outcome, renewal.started_at.minute) == ("failed", 2)
    assert deployment is not None
    assert (deployment.outcome, deployment.device) == ("verified", "vcs-1")
    assert history.last("exp", kind="check") is None
    assert history.last("absent") is None


def test_writers_in_many_threads_lose_nothing(history: History) -> None:
    def writer(thread: int) -> Callable[[], None]:
        def work() -> None:
            for number in range(50):
                history.record(entry(certificate=f"c{thread}", attempt_number=number))

        return work

    run_together([writer(thread) for thread in range(8)])

    for thread in range(8):
        found = history.entries(f"c{thread}", limit=100)
        assert sorted(e.attempt_number for e in found) == list(range(50))
    assert len({e.id for e in history.entries(limit=1000)}) == 400


def test_two_histories_on_one_file_both_write(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with History.open(state) as daemon, History.open(state) as manual:

        def writes(history: History, certificate: str) -> Callable[[], None]:
            def work() -> None:
                for _ in range(100):
                    history.record(entry(certificate=certificate))

            return work

        run_together([writes(daemon, "daemon"), writes(manual, "manual")])

        assert len(daemon.entries("manual", limit=200)) == 100
        assert len(manual.entries("daemon", limit=200)) == 100


def test_another_process_writes_while_this_one_does(tmp_path: Path) -> None:
    state = tmp_path / "state"
    script = (
        "import datetime as dt, pathlib, sys\n"
        "from vcs_acme.history import Entry, History\n"
        "now = dt.datetime.now(dt.UTC)\n"
        "with History.open(pathlib.Path(sys.argv[1])) as history:\n"
        "    for _ in range(100):\n"
        "        history.record(Entry(certificate='other', kind='check', outcome='verified',\n"
        "                             started_at=now, finished_at=now, duration_seconds=0.1))\n"
    )
    with History.open(state) as history:
        other = subprocess.Popen([sys.executable, "-c", script, str(state)])
        try:
            for _ in range(100):
                history.record(entry(certificate="this"))
        finally:
            assert other.wait(timeout=60) == 0

        assert len(history.entries("other", limit=200)) == 100
        assert len(history.entries("this", limit=200)) == 100


def test_opening_a_new_file_from_many_threads_at_once_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    opened: list[History] = []

    run_together([lambda: opened.append(History(path)) for _ in range(8)])

    for history in opened:
        history.close()
    with sqlite3.connect(path) as database:
        rows = database.execute("SELECT id, version FROM schema_version").fetchall()
    assert rows == [(1, SCHEMA_VERSION)]


def test_the_files_are_private_and_in_wal_mode(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with History.open(state) as history:
        history.record(entry())
        companions = [state / name for name in ("history.sqlite3-wal", "history.sqlite3-shm")]

        assert mode(state) == 0o700
        assert mode(state / "history.sqlite3") == 0o600
        assert [mode(path) for path in companions] == [0o600, 0o600]
    with sqlite3.connect(state / "history.sqlite3") as database:
        assert database.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_file_readable_by_others_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    History(path).close()
    path.chmod(0o644)

    History(path).close()

    assert mode(path) == 0o600


def test_the_schema_version_row_is_written_once(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    History(path).close()
    History(path).close()

    with sqlite3.connect(path) as database:
        rows = database.execute("SELECT id, version FROM schema_version").fetchall()
    assert rows == [(1, SCHEMA_VERSION)]


def test_a_history_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    History(path).close()
    with sqlite3.connect(path) as database:
        database.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    database.close()

    with pytest.raises(StoreError, match="newer than this vcs-acme understands"):
        History(path)


def test_reopening_keeps_what_was_recorded(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with History.open(state) as history:
        number = history.record(entry(outcome="not-due"))

    with History.open(state) as history:
        assert history.entries() == [dataclasses.replace(entry(outcome="not-due"), id=number)]


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not a database, just text long enough to have a header" * 4)
    path.chmod(0o600)

    with pytest.raises(StoreError, match=r"cannot create history .*: file is not a database$"):
        History(path)


def test_a_closed_history_refuses_to_record(tmp_path: Path) -> None:
    history = History(tmp_path / "history.sqlite3")
    history.close()

    with pytest.raises(StoreError, match="it is closed"):
        history.record(entry())


def test_memory_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="not memory"):
        History("sqlite://")
