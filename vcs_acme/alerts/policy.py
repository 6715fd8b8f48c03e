"""The alert policy: who is told what, and when. Pure: the clock is passed in.

The state remembers, per problem and per channel, what that channel was last told and when.
From that alone follow the rules:

* a channel is told once when a problem appears or its event changes (renewal-failed to
  permanent-error, deploy-failed to deploy-refused); a growing attempt count is no change;
* while the problem lasts, a reminder goes out every ``reminder`` (default 24 hours);
* when it is gone, each channel that heard of it is told once that it is over, and the
  problem is forgotten; a single event (drift) is forgotten silently after ``reminder``;
* a channel whose delivery failed keeps its old entry (:meth:`AlertState.restore`), so the
  same decision comes due again on the next pass: retried, never lost, never doubled.

At most one alert per problem and channel per pass, and none without a change or a
reminder due: no storm. Known shortcoming: each certificate alerts on its own, so a CA outage
that fails fifty certificates sends fifty alerts (once each, spread over their schedules);
a digest would need a delay before sending and one message for many problems.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from vcs_acme.alerts.problems import Key, Problem

RECOVERED = "recovered"
REMINDER = dt.timedelta(hours=24)


@dataclass(frozen=True)
class Told:
    """What one channel was last told about a problem."""

    event: str  # the problem's event, or "recovered"
    at: dt.datetime


@dataclass(frozen=True)
class Record:
    """One problem as remembered between passes."""

    problem: Problem
    open: bool  # False: gone, a recovery notice still owed to some channel
    since: dt.datetime  # when the current event was first seen
    last_seen: dt.datetime
    told: Mapping[str, Told] = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    """One message to send on some channels."""

    kind: str  # "problem", "reminder" or "recovery"
    problem: Problem
    channels: tuple[str, ...]
    time: dt.datetime
    since: dt.datetime

    @property
    def event(self) -> str:
        return RECOVERED if self.kind == "recovery" else self.problem.event

    @property
    def severity(self) -> str:
        return "info" if self.kind == "recovery" else self.problem.severity


@dataclass(frozen=True)
class AlertState:
    """Every remembered problem, by key."""

    records: Mapping[Key, Record] = field(default_factory=dict)

    def restore(self, key: Key, channel: str, previous: AlertState) -> AlertState:
        """This state with ``channel``'s entry for ``key`` as in ``previous``: it failed."""
        record = self.records.get(key) or previous.records.get(key)
        if record is None:
            return self
        told = dict(record.told)
        before = previous.records.get(key)
        if before is not None and channel in before.told:
            told[channel] = before.told[channel]
        else:
            told.pop(channel, None)
        return AlertState({**self.records, key: replace(record, told=told)})

    def retain(self, certificates: Collection[str]) -> AlertState:
        """Forget, silently, the problems of certificates no longer configured."""
        return AlertState(
            {k: r for k, r in self.records.items() if r.problem.certificate in certificates}
        )


@dataclass(frozen=True)
class AlertPolicy:
    reminder: dt.timedelta = REMINDER

    def decide(
        self,
        problems_now: Iterable[Problem],
        state: AlertState,
        now: dt.datetime,
        *,
        channels: tuple[str, ...],
        scope: Iterable[Key] | None = None,
    ) -> tuple[list[Alert], AlertState]:
        """The alerts to send now, and the state once they are delivered.

        Problems remembered outside ``scope`` (key prefixes; None: everything) are left as
        they are: the observation did not look at them.
        """
        current = {problem.key: problem for problem in problems_now}
        prefixes = None if scope is None else tuple(scope)
        records: dict[Key, Record] = {}
        alerts: list[Alert] = []
        for key, record in state.records.items():
            if key in current:
                continue
            # A single event needs no look to be over: it is forgotten after a quiet spell.
            covered = prefixes is None or any(key[: len(p)] == p for p in prefixes)
            if not covered and not record.problem.once:
                records[key] = record
                continue
            kept, alert = self._gone(record, now, channels)
            if kept is not None:
                records[key] = kept
            alerts += [alert] if alert else []
        for key, problem in current.items():
            record, found = self._present(problem, state.records.get(key), now, channels)
            records[key] = record
            alerts += found
        return alerts, AlertState(records)

    def _present(
        self, problem: Problem, before: Record | None, now: dt.datetime, channels: tuple[str, ...]
    ) -> tuple[Record, list[Alert]]:
        same = before is not None and before.open and before.problem.event == problem.event
        since = before.since if same and before else now
        told = dict(before.told) if before else {}
        first = [c for c in channels if self._news(told.get(c), problem)]
        again = [c for c in channels if self._reminder_due(told.get(c), problem, now)]
        for channel in first + again:
            told[channel] = Told(problem.event, now)
        alerts = [
            Alert(kind, problem, tuple(group), now, since)
            for kind, group in (("problem", first), ("reminder", again))
            if group
        ]
        return Record(problem, True, since, now, told), alerts

    def _gone(
        self, record: Record, now: dt.datetime, channels: tuple[str, ...]
    ) -> tuple[Record | None, Alert | None]:
        if record.problem.once:
            expired = now - record.last_seen >= self.reminder
            return (None if expired else record), None
        owed = [c for c in channels if c in record.told and record.told[c].event != RECOVERED]
        if not owed:
            return None, None  # every channel that heard of it knows it is over
        told = {**record.told, **{c: Told(RECOVERED, now) for c in owed}}
        closed = replace(record, open=False, told=told)
        return closed, Alert("recovery", record.problem, tuple(owed), now, record.since)

    @staticmethod
    def _news(told: Told | None, problem: Problem) -> bool:
        return told is None or told.event != problem.event

    def _reminder_due(self, told: Told | None, problem: Problem, now: dt.datetime) -> bool:
        return told is not None and told.event == problem.event and now - told.at >= self.reminder


# -- alerts.json ---------------------------------------------------------------------------

STATE_VERSION = 1


def state_to_json(state: AlertState) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "problems": [_record_to_json(record) for record in state.records.values()],
    }


def state_from_json(data: Mapping[str, Any]) -> AlertState:
    """Read ``alerts.json``; raise ValueError (or KeyError, TypeError) when it is damaged."""
    if data.get("version") != STATE_VERSION:
        raise ValueError(f"unknown alerts.json version {data.get('version')!r}")
    records = [_record_from_json(item) for item in data.get("problems", [])]
    return AlertState({record.problem.key: record for record in records})


def _record_to_json(record: Record) -> dict[str, Any]:
    problem = record.problem
    return {
        "key": list(problem.key),
        "event": problem.event,
        "severity": problem.severity,
        "certificate": problem.certificate,
        "device": problem.device,
        "summary": problem.summary,
        "message": problem.message,
        "remedy": problem.remedy,
        "attempt": problem.attempt,
        "next_try": _iso(problem.next_try),
        "once": problem.once,
        "open": record.open,
        "since": _iso(record.since),
        "last_seen": _iso(record.last_seen),
        "told": {c: {"event": t.event, "at": _iso(t.at)} for c, t in record.told.items()},
    }


def _record_from_json(item: Mapping[str, Any]) -> Record:
    problem = Problem(
        key=tuple(str(part) for part in item["key"]),
        event=str(item["event"]),
        severity=str(item["severity"]),
        certificate=str(item["certificate"]),
        summary=str(item["summary"]),
        message=str(item["message"]),
        remedy=str(item["remedy"]),
        device=item.get("device"),
        attempt=item.get("attempt"),
        next_try=_time(item.get("next_try")),
        once=bool(item.get("once", False)),
    )
    told = {
        str(channel): Told(str(entry["event"]), _required_time(entry["at"]))
        for channel, entry in item.get("told", {}).items()
    }
    return Record(
        problem,
        bool(item["open"]),
        _required_time(item["since"]),
        _required_time(item["last_seen"]),
        told,
    )


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _time(text: object) -> dt.datetime | None:
    return None if text is None else _required_time(text)


def _required_time(text: object) -> dt.datetime:
    return dt.datetime.fromisoformat(str(text)).astimezone(dt.UTC)
