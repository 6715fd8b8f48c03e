"""The notification client against a real AF_UNIX datagram socket, as systemd binds it."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vcs_acme.sdnotify import Notifier

RECEIVE_TIMEOUT_SECONDS = 2.0


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[socket.socket]:
    """The service manager's end: a datagram socket bound in a temporary folder."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listening:
        listening.bind(str(tmp_path / "notify"))
        listening.settimeout(RECEIVE_TIMEOUT_SECONDS)
        yield listening


def notifier_for(receiver: socket.socket, **extra: str) -> Notifier:
    return Notifier({"NOTIFY_SOCKET": receiver.getsockname(), **extra})


def received(receiver: socket.socket) -> str:
    return receiver.recv(4096).decode("utf-8")


def nothing_queued(receiver: socket.socket) -> bool:
    # A datagram sent to an AF_UNIX socket is queued before sendto() returns, so an empty
    # queue right after a call means nothing was sent.
    receiver.setblocking(False)
    try:
        receiver.recv(4096)
    except BlockingIOError:
        return True
    return False


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (Notifier.ready, "READY=1"),
        (Notifier.watchdog, "WATCHDOG=1"),
        (Notifier.stopping, "STOPPING=1"),
    ],
)
def test_each_state_is_one_datagram(
    receiver: socket.socket, call: Callable[[Notifier], None], expected: str
) -> None:
    call(notifier_for(receiver))

    assert received(receiver) == expected


def test_status_is_sent_on_one_line(receiver: socket.socket) -> None:
    notifier_for(receiver).status("2 certificate(s)\nnext: edge at 12:00")

    assert received(receiver) == "STATUS=2 certificate(s) next: edge at 12:00"


def test_reloading_carries_the_monotonic_time(receiver: socket.socket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier_for(receiver).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    first, second = received(receiver).split("\n")
    assert first == "RELOADING=1"
    key, value = second.split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_an_abstract_socket_is_reached_by_its_at_sign_name() -> None:
    name = f"vcs-acme-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listening:
        listening.bind("\0" + name)
        listening.settimeout(RECEIVE_TIMEOUT_SECONDS)

        Notifier({"NOTIFY_SOCKET": "@" + name}).ready()

        assert received(listening) == "READY=1"


def test_without_a_socket_nothing_is_sent(receiver: socket.socket) -> None:
    notifier = Notifier({})

    notifier.ready()
    notifier.status("idle")
    notifier.watchdog()
    notifier.reloading()
    notifier.stopping()

    assert not notifier.enabled
    assert notifier.watchdog_interval() is None
    assert nothing_queued(receiver)


def test_the_process_environment_is_read_by_default(
    receiver: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.getsockname())

    Notifier().ready()

    assert received(receiver) == "READY=1"


@pytest.mark.parametrize("address", ["relative/notify", "vsock:2:9999", "@"])
def test_an_address_of_another_kind_disables_notifying(address: str) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": address})

    notifier.ready()

    assert not notifier.enabled


def test_a_socket_nobody_listens_on_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})

    with caplog.at_level(logging.DEBUG, logger="vcs_acme.sdnotify"):
        notifier.ready()

    assert notifier.enabled
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "'READY=1' not sent" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "120000000"}, 120.0),
        ({"WATCHDOG_USEC": "120000000", "NOTIFY_SOCKET": ""}, None),
        ({"WATCHDOG_USEC": "1500000", "WATCHDOG_PID": str(os.getpid())}, 1.5),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "/run/systemd/notify", **environ})

    assert notifier.watchdog_interval() == expected
