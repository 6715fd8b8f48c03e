"""The retry policy: growing, capped, jittered delays; permanent failures wait for a change."""

from __future__ import annotations

import datetime as dt
import itertools
import random

from vcs_acme.retry import LONGEST_DELAY, RetryState, after_failure, backoff, blocked

NOW = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)


def fail(previous: RetryState | None, *, transient: bool = True, identity: str = "a",
         retry_after: dt.datetime | None = None) -> RetryState:  # fmt: skip
    return after_failure(previous, now=NOW, error="boom", transient=transient, identity=identity,
                         retry_after=retry_after, rng=random.Random(7))  # fmt: skip


def test_delays_grow_from_a_minute_and_stop_at_six_hours() -> None:
    rng = random.Random(1)
    delays = [backoff(n, rng).total_seconds() for n in range(1, 14)]
    assert 48 <= delays[0] <= 72
    assert all(b > a for a, b in itertools.pairwise(delays[:7]))
    assert max(delays) <= LONGEST_DELAY.total_seconds() * 1.2
    assert delays[-1] >= LONGEST_DELAY.total_seconds() * 0.8


def test_jitter_spreads_a_fleet() -> None:
    rng = random.Random(3)
    assert len({backoff(3, rng) for _ in range(20)}) == 20


def test_consecutive_failures_count_up_and_schedule_later() -> None:
    first = fail(None)
    second = fail(first)
    assert (first.attempts, second.attempts) == (1, 2)
    assert first.next_try is not None
    assert second.next_try is not None
    assert second.next_try > first.next_try > NOW


def test_a_later_retry_after_wins() -> None:
    later = NOW + dt.timedelta(hours=3)
    assert fail(None, retry_after=later).next_try == later


def test_permanent_failures_are_not_retried_until_the_configuration_changes() -> None:
    state = fail(None, transient=False)
    assert (state.permanent, state.next_try) == (True, None)
    assert blocked(state, "a")
    assert not blocked(state, "b")
    assert not blocked(None, "a")


def test_a_changed_configuration_restarts_the_count() -> None:
    assert fail(fail(fail(None)), identity="b").attempts == 1


def test_round_trip() -> None:
    state = fail(None)
    assert RetryState.from_json(state.to_json()) == state
