"""When a certificate next needs attention: the daemon's plan, and what ``status`` shows.

The earliest of: a retry after a transient failure; the renewal decision's moment; the time
to ask the CA's renewal information again (at once for a version never asked about); the
opening of a maintenance window that a device waits for. Nothing, while a permanent failure
holds. Read from the state folder alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from vcs_acme import lineages, retry
from vcs_acme.config import CertificateSettings, Settings
from vcs_acme.deploy import in_window
from vcs_acme.store import Lineage


@dataclass(frozen=True)
class Plan:
    """The next moment a certificate needs attention, and why then."""

    at: dt.datetime
    why: str


def plan(
    settings: Settings, certificate: CertificateSettings, lineage: Lineage, now: dt.datetime
) -> Plan | None:
    held = lineage.retry()
    identity = lineages.identity(settings, certificate)
    if retry.blocked(held, identity):
        return None  # a person must act: configuration change or renew --force
    if held is not None and held.next_try is not None and held.identity == identity:
        return Plan(max(now, held.next_try), f"retry {held.attempts + 1} after a failure")
    view = lineages.view(certificate, lineage, now)
    candidates = [Plan(view.decision.at, "renewal" if view.version else "first issuance")]
    info = lineage.renewal_info()
    if view.version and info and info.get("fingerprint") == view.version.meta["fingerprint"]:
        asked = lineages.parse_time(info["retry_after"])
        candidates.append(Plan(asked, "ask the CA's renewal information again"))
    elif view.version:
        candidates.append(Plan(now, "ask the CA's renewal information for this version"))
    candidates += [
        Plan(opening, "a maintenance window opens for a pending restart")
        for opening in window_openings(settings, certificate, lineage, now)
    ]
    first = min(candidates, key=lambda candidate: candidate.at)
    return Plan(max(now, first.at), first.why)


def window_openings(
    settings: Settings, certificate: CertificateSettings, lineage: Lineage, now: dt.datetime
) -> list[dt.datetime]:
    """When devices waiting for a maintenance window may next be restarted."""
    from apscheduler.triggers.cron import CronTrigger

    openings = []
    for name in certificate.devices:
        state = lineage.device_state(name) or {}
        device = settings.device(name)
        if state.get("state") != "pending-restart" or device.restart.mode != "window":
            continue
        if in_window(device.restart, now):
            openings.append(now)
            continue
        trigger = CronTrigger.from_crontab(str(device.restart.window))
        opening = trigger.get_next_fire_time(None, now.astimezone())
        if opening is not None:
            openings.append(opening.astimezone(dt.UTC))
    return openings
