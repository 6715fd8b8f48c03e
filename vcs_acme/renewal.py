"""When is a certificate due? A pure decision: every input, the clock included, is passed in.

The order of the rules, first match wins:

1. no certificate yet, or the configuration asks for other names, key type or profile: now;
2. expired, or inside the emergency margin (a tenth of the lifetime): now, whatever ARI says;
3. the CA's ARI window, when there is one: a fixed random moment inside it;
4. ``renew_before_days``, when the operator set it;
5. the lifetime rule: a third of the lifetime left (half, for lifetimes of ten days or less),
   which fits 90-day, 45-day and 6-day certificates alike.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

SHORT_LIFETIME = dt.timedelta(days=10)
EMERGENCY_FRACTION = 0.1


@dataclass(frozen=True)
class Validity:
    not_before: dt.datetime
    not_after: dt.datetime

    @property
    def lifetime(self) -> dt.timedelta:
        return self.not_after - self.not_before


@dataclass(frozen=True)
class Window:
    """A suggested renewal window from the CA (draft-ietf-acme-ari section 4.2)."""

    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class Decision:
    due: bool
    at: dt.datetime
    reason: str


def decide(
    now: dt.datetime,
    validity: Validity | None,
    *,
    changed: str | None = None,
    window: Window | None = None,
    renew_before_days: float | None = None,
    jitter: float = 0.5,
) -> Decision:
    """Decide for one certificate. ``jitter`` in [0, 1) places the moment inside a window."""
    if validity is None:
        return Decision(True, now, "no certificate has been issued yet")
    if changed:
        return Decision(True, now, f"the configuration changed: {changed}")
    urgent = _urgent(now, validity)
    if urgent:
        return urgent
    if window is not None:
        return _inside_window(now, window, jitter)
    if renew_before_days is not None:
        at = validity.not_after - dt.timedelta(days=renew_before_days)
        return _at(now, at, f"renew_before_days = {renew_before_days:g} before {_day(validity)}")
    return _lifetime_rule(now, validity)


def _urgent(now: dt.datetime, validity: Validity) -> Decision | None:
    if now >= validity.not_after:
        return Decision(True, now, f"expired on {_stamp(validity.not_after)}")
    left = validity.not_after - now
    if left <= validity.lifetime * EMERGENCY_FRACTION:
        return Decision(
            True,
            now,
            f"only {human(left)} left of a lifetime of {human(validity.lifetime)}; renewing "
            "now whatever the CA's renewal information says",
        )
    return None


def _inside_window(now: dt.datetime, window: Window, jitter: float) -> Decision:
    span = f"{_stamp(window.start)} to {_stamp(window.end)}"
    moment = window.start + (window.end - window.start) * min(max(jitter, 0.0), 0.999)
    if now >= window.end:
        return Decision(True, now, f"the CA's renewal window ({span}) has passed")
    if now >= moment:
        return Decision(True, now, f"inside the CA's renewal window ({span})")
    return Decision(False, moment, f"the CA suggests renewing between {span}")


def _lifetime_rule(now: dt.datetime, validity: Validity) -> Decision:
    short = validity.lifetime <= SHORT_LIFETIME
    fraction, words = (0.5, "half") if short else (1 / 3, "a third")
    at = validity.not_after - validity.lifetime * fraction
    return _at(now, at, f"{words} of the lifetime ({human(validity.lifetime)}) left")


def _at(now: dt.datetime, at: dt.datetime, rule: str) -> Decision:
    if now >= at:
        return Decision(True, now, f"due since {_stamp(at)}: {rule}")
    return Decision(False, at, f"due on {_stamp(at)}: {rule}")


def _day(validity: Validity) -> str:
    return f"expiry ({_stamp(validity.not_after)})"


def _stamp(moment: dt.datetime) -> str:
    # Seconds only where they matter: short-lived certificates and windows of minutes.
    form = "%Y-%m-%d %H:%M UTC" if moment.second == 0 else "%Y-%m-%d %H:%M:%S UTC"
    return moment.astimezone(dt.UTC).strftime(form)


def human(span: dt.timedelta) -> str:
    """A duration as people say it: days, else hours, else minutes."""
    seconds = max(span.total_seconds(), 0.0)
    if seconds >= 2 * 86400:
        days = seconds / 86400
        return f"{days:.0f} days" if abs(days - round(days)) < 0.05 else f"{days:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 60:.0f} minutes"
