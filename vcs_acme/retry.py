"""Retrying failures: transient ones back off exponentially, permanent ones wait for a person.

Policy, as data:

* transient (network, HTTP 5xx, time-outs, ``rateLimited``, a device busy or restarting):
  retried after one minute, then doubling, capped at six hours, each delay spread by ±20 %
  so that a fleet does not retry in step; a CA's ``Retry-After`` later than that wins;
* permanent (a rejected identifier, ``unauthorized``, bad credentials, a bundle the device
  would refuse): not retried until the configuration of that certificate changes or someone
  runs ``vcs-acme renew --force``.

The state lives in ``certificates/<name>/retry.json``; the functions here are pure.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

FIRST_DELAY = dt.timedelta(minutes=1)
LONGEST_DELAY = dt.timedelta(hours=6)
JITTER = 0.2


@dataclass(frozen=True)
class RetryState:
    """Consecutive failures of one certificate and what happens next."""

    attempts: int
    last_error: str
    permanent: bool
    next_try: dt.datetime | None
    identity: str

    def to_json(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "last_error": self.last_error,
            "permanent": self.permanent,
            "next_try": self.next_try.isoformat() if self.next_try else None,
            "identity": self.identity,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RetryState:
        next_try = data.get("next_try")
        return cls(
            attempts=int(data.get("attempts", 0)),
            last_error=str(data.get("last_error", "")),
            permanent=bool(data.get("permanent", False)),
            next_try=dt.datetime.fromisoformat(next_try) if next_try else None,
            identity=str(data.get("identity", "")),
        )


def backoff(attempts: int, rng: random.Random) -> dt.timedelta:
    """The delay after the ``attempts``-th consecutive failure (1-based)."""
    base: dt.timedelta = min(FIRST_DELAY * (2 ** max(attempts - 1, 0)), LONGEST_DELAY)
    spread: float = rng.uniform(1 - JITTER, 1 + JITTER)
    return base * spread


def after_failure(
    previous: RetryState | None,
    *,
    now: dt.datetime,
    error: str,
    transient: bool,
    identity: str,
    retry_after: dt.datetime | None = None,
    rng: random.Random,
) -> RetryState:
    """The state after one more failure."""
    same = previous is not None and previous.identity == identity
    attempts = (previous.attempts if same and previous else 0) + 1
    if not transient:
        return RetryState(attempts, error, True, None, identity)
    next_try = now + backoff(attempts, rng)
    if retry_after is not None and retry_after > next_try:
        next_try = retry_after
    return RetryState(attempts, error, False, next_try, identity)


def blocked(state: RetryState | None, identity: str) -> bool:
    """Whether a permanent failure still holds for this configuration."""
    return state is not None and state.permanent and state.identity == identity
