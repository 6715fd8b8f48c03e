"""What is wrong right now: a pass result and the state folder turned into problems.

A problem has a stable key that names *what* is affected, and an event that names *how*;
the policy alerts once per key and event. Keys and events::

    ("certificate", NAME, "renewal")          renewal-failed, permanent-error
    ("certificate", NAME, "expiry")           expiry-near, expired
    ("device", NAME, DEVICE, "deploy")        deploy-failed, deploy-refused
    ("device", NAME, DEVICE, "drift")         drift (a single event: no recovery notice)

An observation also says which keys it *covers*: a device check says nothing about renewal,
so an open renewal problem must not look recovered after one. Everything here is pure
except :func:`observe`, which reads the lineage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vcs_acme.errors import LockedError
from vcs_acme.renewal import Validity, human
from vcs_acme.retry import RetryState

if TYPE_CHECKING:
    from vcs_acme.deploy import DeviceOutcome
    from vcs_acme.pipeline import Result
    from vcs_acme.store import Lineage

Key = tuple[str, ...]

EXPIRY_WARNING = dt.timedelta(days=7)
# Short-lived certificates (six days) would warn from birth with a fixed margin; a fifth of
# the lifetime is past the renewal rule's emergency margin (a tenth) and still early enough.
EXPIRY_FRACTION = 0.2

# Outcomes after which the renewal of a certificate is known to work or to fail.
RENEWAL_OUTCOMES = ("renewed", "not-due", "failed", "held")


@dataclass(frozen=True)
class Problem:
    """One thing that is wrong, told in three parts: what, why, and what next."""

    key: Key
    event: str
    severity: str  # "warning", "error" or "critical"
    certificate: str
    summary: str  # what, in one line
    message: str  # why
    remedy: str  # what next
    device: str | None = None
    attempt: int | None = None
    next_try: dt.datetime | None = None
    once: bool = False  # a single event, such as drift: no recovery notice follows

    @property
    def key_text(self) -> str:
        return "/".join(self.key)


@dataclass(frozen=True)
class Observation:
    """The problems of one certificate now, and the key prefixes the observation covers."""

    problems: frozenset[Problem]
    scope: tuple[Key, ...]


def problems_from(
    result: Result,
    *,
    now: dt.datetime,
    retry: RetryState | None = None,
    validity: Validity | None = None,
    devices: Iterable[DeviceOutcome] | None = None,
    drift: Mapping[str, str] | None = None,
    expiry_warning: dt.timedelta = EXPIRY_WARNING,
) -> Observation:
    """The problems a pass left for one certificate.

    ``retry`` is the lineage's retry state after the pass, ``validity`` that of its current
    version. ``devices`` is the last known outcome of *every* configured device (from the
    state folder); without it only the devices in ``result`` are judged. ``drift`` maps a
    device to what it presented instead of the current version.
    """
    name = result.name
    if isinstance(result.error, LockedError):
        return Observation(frozenset(), ())  # another process worked on it: nothing learnt
    found: list[Problem] = []
    scope: list[Key] = [("certificate", name, "expiry")]
    renewal = _renewal(result, retry)
    if renewal is not None:
        found.append(renewal)
    if renewal is not None or result.outcome in RENEWAL_OUTCOMES:
        scope.append(("certificate", name, "renewal"))
    expiry = _expiry(name, validity, now, expiry_warning)
    if expiry is not None:
        found.append(expiry)
    known = list(result.devices if devices is None else devices)
    scope += (
        [("device", name)] if devices is not None else [("device", name, d.device) for d in known]
    )
    found += [p for p in (_device(name, d, retry) for d in known) if p is not None]
    found += [drift_problem(name, device, seen) for device, seen in (drift or {}).items()]
    return Observation(frozenset(found), tuple(scope))


def observe(
    result: Result,
    lineage: Lineage,
    devices: Collection[str],
    *,
    now: dt.datetime,
    drift: Mapping[str, str] | None = None,
    expiry_warning: dt.timedelta = EXPIRY_WARNING,
) -> Observation:
    """:func:`problems_from`, with retry state, validity and device states read from ``lineage``.

    ``devices`` are the certificate's configured devices. The state folder is complete where
    a result is not: a device refused earlier is not worked again, so no result mentions it.
    """
    from vcs_acme.lineages import validity_of

    outcomes = [o for o in (_stored_outcome(lineage, d) for d in devices) if o is not None]
    return problems_from(
        result,
        now=now,
        retry=lineage.retry(),
        validity=validity_of(lineage.current()),
        devices=outcomes,
        drift=drift,
        expiry_warning=expiry_warning,
    )


def _stored_outcome(lineage: Lineage, device: str) -> DeviceOutcome | None:
    from vcs_acme.deploy import DeviceOutcome

    data = lineage.device_state(device)
    if data is None:
        return None
    return DeviceOutcome(
        device=device,
        state=str(data.get("state", "")),
        version=int(data.get("version", 0)),
        fingerprint=data.get("fingerprint"),
        error=data.get("error"),
        transient=bool(data.get("transient", False)),
    )


def _renewal(result: Result, retry: RetryState | None) -> Problem | None:
    name = result.name
    key = ("certificate", name, "renewal")
    if retry is not None and retry.permanent:
        return Problem(
            key, "permanent-error", "critical", name,
            summary=f"certificate {name}: held after a permanent error",
            message=retry.last_error,
            remedy="vcs-acme does not try again on its own. Fix the cause above (most often "
            "the configuration or a password: a changed setting or secret lifts the hold, "
            "for the daemon after `systemctl reload vcs-acme`), or run "
            "`vcs-acme renew --force` once it is fixed.",
            attempt=retry.attempts,
        )  # fmt: skip
    if result.outcome != "failed" or retry is None:
        return None
    return Problem(
        key, "renewal-failed", "error", name,
        summary=f"certificate {name}: renewal failed (attempt {retry.attempts})",
        message=result.reason,
        remedy=f"{_next_try(retry.next_try)} Nothing to do while it is an outage; if it keeps "
        "failing, follow the reason above and see `vcs-acme status` and `vcs-acme history`.",
        attempt=retry.attempts,
        next_try=retry.next_try,
    )  # fmt: skip


def _expiry(
    name: str, validity: Validity | None, now: dt.datetime, warning: dt.timedelta
) -> Problem | None:
    if validity is None:
        return None
    key = ("certificate", name, "expiry")
    left = validity.not_after - now
    when = _stamp(validity.not_after)
    remedy = (
        "No renewal has succeeded in time. Look at the renewal alerts for the reason, run "
        "`vcs-acme status`, and renew by hand with `vcs-acme renew --force` once it is fixed."
    )
    if left <= dt.timedelta():
        return Problem(key, "expired", "critical", name, f"certificate {name}: expired",
                       f"the certificate expired at {when}", remedy)  # fmt: skip
    if left > min(warning, validity.lifetime * EXPIRY_FRACTION):
        return None
    return Problem(
        key, "expiry-near", "critical", name,
        summary=f"certificate {name}: expires in {human(left)} and is not renewed",
        message=f"the certificate in use expires at {when} and no renewal has replaced it",
        remedy=remedy,
    )  # fmt: skip


def _device(name: str, outcome: DeviceOutcome, retry: RetryState | None) -> Problem | None:
    key = ("device", name, outcome.device, "deploy")
    reason = outcome.error or "no reason given"
    if outcome.state == "refused":
        return Problem(
            key, "deploy-refused", "error", name,
            summary=f"device {outcome.device}: would reject certificate {name} "
            f"version {outcome.version}",
            message=reason,
            remedy="Nothing was uploaded. Follow the remedy in the reason above; the next "
            "version of the certificate is checked again.",
            device=outcome.device,
        )  # fmt: skip
    if outcome.state != "failed":
        return None
    waiting = retry is not None and not retry.permanent and outcome.transient
    next_try = retry.next_try if waiting and retry else None
    remedy = (
        f"{_next_try(next_try)} Nothing to do if the device was only busy or restarting."
        if waiting
        else "vcs-acme does not try again on its own: fix the cause above, then run "
        "`vcs-acme deploy`."
    )
    return Problem(
        key, "deploy-failed", "error", name,
        summary=f"device {outcome.device}: deploy of certificate {name} failed",
        message=reason, remedy=remedy, device=outcome.device,
        attempt=retry.attempts if retry else None, next_try=next_try,
    )  # fmt: skip


def drift_problem(certificate: str, device: str, seen: str) -> Problem:
    """A device found presenting something other than the version deployed to it."""
    return Problem(
        ("device", certificate, device, "drift"), "drift", "warning", certificate,
        summary=f"device {device}: presents another certificate than {certificate}",
        message=seen,
        remedy="vcs-acme deploys the current version again. If someone replaces the "
        "certificate by hand on purpose, take the device out of this certificate's devices.",
        device=device, once=True,
    )  # fmt: skip


def _next_try(moment: dt.datetime | None) -> str:
    return f"vcs-acme tries again at {_stamp(moment)}." if moment else "vcs-acme tries again."


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
