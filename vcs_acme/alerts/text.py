"""What an alert says: the e-mail's subject and body, and the webhook's JSON body.

The webhook body is a stable interface, documented in ``docs/operations.md``: fields are
only ever added, and ``version`` changes if one is removed or changes meaning.
"""

from __future__ import annotations

import datetime as dt
import socket
import textwrap
from typing import Any

from vcs_acme.alerts.policy import Alert
from vcs_acme.renewal import human

WEBHOOK_VERSION = 1

TAGS = {
    "renewal-failed": "FAILED",
    "permanent-error": "FAILED",
    "deploy-failed": "FAILED",
    "deploy-refused": "REFUSED",
    "drift": "DRIFT",
    "expiry-near": "EXPIRING",
    "expired": "EXPIRED",
    "recovered": "RECOVERED",
}


def subject(alert: Alert) -> str:
    """``[vcs-acme] FAILED: certificate expressway-e: renewal failed (attempt 3)``."""
    tag = TAGS.get(alert.event, alert.event.upper())
    if alert.kind == "reminder":
        tag = f"STILL {tag}"
    return f"[vcs-acme] {tag}: {headline(alert)}"


def headline(alert: Alert) -> str:
    problem = alert.problem
    if alert.kind != "recovery":
        return problem.summary
    subject = f"device {problem.device}" if problem.device else f"certificate {problem.certificate}"
    return f"{subject}: healthy again"


def body(alert: Alert, reminder: dt.timedelta) -> str:
    """The plain-text e-mail: what, why, what next, then the facts in fixed fields."""
    problem = alert.problem
    if alert.kind == "recovery":
        what, why, then = (
            f"{headline(alert)}. Over: {problem.summary} (seen since {_stamp(alert.since)}).",
            f"The last look found it no longer so. Its reason was: {problem.message}",
            "Nothing to do.",
        )
    else:
        still = f"Still so, since {_stamp(alert.since)}. " if alert.kind == "reminder" else ""
        what, why, then = f"{still}{problem.summary}.", problem.message, problem.remedy
    facts = [
        ("Certificate", problem.certificate),
        ("Device", problem.device or "-"),
        ("Event", alert.event),
        ("Severity", alert.severity),
        ("Attempt", _text(problem.attempt if alert.kind != "recovery" else None)),
        ("Next try", _stamp(problem.next_try) if alert.kind != "recovery" else "-"),
        ("Since", _stamp(alert.since)),
        ("Sent", _stamp(alert.time)),
        ("Problem", problem.key_text),
    ]
    lines = ["What happened", _indent(what), "", "Why", _indent(why), "", "What next"]
    lines += [_indent(then), ""]
    lines += [f"{name + ':':<13}{value}" for name, value in facts]
    lines += [
        "",
        "-- ",
        f"vcs-acme on {socket.gethostname()}. One message when a problem appears or changes,",
        f"a reminder every {human(reminder)} while it lasts, and one when it is over.",
    ]
    return "\n".join(lines) + "\n"


def webhook_body(alert: Alert) -> dict[str, Any]:
    problem = alert.problem
    recovery = alert.kind == "recovery"
    return {
        "version": WEBHOOK_VERSION,
        "event": alert.event,
        "reminder": alert.kind == "reminder",
        "problem": problem.key_text,
        "certificate": problem.certificate,
        "device": problem.device,
        "severity": alert.severity,
        "summary": headline(alert),
        "message": problem.message,
        "remedy": "Nothing to do." if recovery else problem.remedy,
        "attempt": None if recovery else problem.attempt,
        "next_try": None if recovery else _iso(problem.next_try),
        "since": _iso(alert.since),
        "time": _iso(alert.time),
        "recovered_from": problem.event if recovery else None,
    }


# Wrapped for mail readers; long words (URLs, fingerprints) are never broken.
_WRAPPER = textwrap.TextWrapper(
    76, initial_indent="  ", subsequent_indent="  ", break_long_words=False, break_on_hyphens=False
)


def _indent(text: str) -> str:
    return "\n".join(_WRAPPER.fill(line) for line in text.splitlines() or [""])


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def _stamp(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds") if moment else None
