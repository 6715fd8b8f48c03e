"""What the commands print: results of a pass, the status table. CLI output only."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import Any

from vcs_acme import history, lineages, schedule
from vcs_acme.config import CertificateSettings, Settings
from vcs_acme.deploy import DeviceOutcome
from vcs_acme.pipeline import Result, utc_now
from vcs_acme.store import Lineage, Store

OUTCOME_WORDS = {
    "renewed": "renewed",
    "not-due": "not due",
    "failed": "FAILED",
    "checked": "dry run ok",
    "deployed": "deployed",
    "held": "HELD",
    "checked-devices": "devices checked",
}


def result_lines(result: Result) -> list[str]:
    """What one certificate's pass comes to: a line, and one per device worked."""
    return [_result_line(result), *("  " + _device_line(d) for d in result.devices)]


class Progress:
    """What ``renew`` and ``deploy`` print as each certificate finishes.

    On a terminal each line is numbered (``[2/7]``) so a long run shows how far it is; to
    a pipe or a file the same lines come without numbers, one per certificate and device,
    then the summary. ``--json`` prints one document at the end instead.
    """

    def __init__(self, total: int, *, as_json: bool, dry_run: bool = False) -> None:
        self.total = total
        self.as_json = as_json
        self.dry_run = dry_run
        self.done = 0
        self.terminal = sys.stdout.isatty()

    def show(self, result: Result) -> Result:
        self.done += 1
        if not self.as_json:
            lines = result_lines(result)
            if self.terminal:
                lines[0] = f"[{self.done}/{self.total}] {lines[0]}"
            print("\n".join(lines), flush=True)
        return result

    def finish(self, results: Sequence[Result]) -> None:
        if self.as_json:
            print(json.dumps({"certificates": [result_json(r) for r in results]}, indent=2))
            return
        failed = sum(1 for r in results if not r.ok)
        renewed = sum(1 for r in results if r.outcome in ("renewed", "checked"))
        verb = "obtained (dry run, nothing stored)" if self.dry_run else "renewed"
        summary = f"{len(results)} certificate(s): {renewed} {verb}, {failed} failed"
        print(summary, file=sys.stderr if failed else sys.stdout)


def result_json(result: Result) -> dict[str, Any]:
    return {
        "name": result.name,
        "outcome": result.outcome,
        "ok": result.ok,
        "reason": result.reason,
        "version": result.version,
        "not_after": result.not_after.isoformat() if result.not_after else None,
        "fingerprint": result.fingerprint,
        "seconds": round(result.seconds, 3),
        "devices": [d.to_json() for d in result.devices],
    }


def _device_line(device: DeviceOutcome) -> str:
    head = f"device {device.device}: {device.state}"
    if device.state == "verified":
        return f"{head} (presents {device.fingerprint})"
    if device.state == "pending-restart":
        return f"{head}: version {device.version} uploaded; it takes effect after a restart"
    return f"{head}: {device.error}"


def _result_line(result: Result) -> str:
    head = f"{result.name}: {OUTCOME_WORDS.get(result.outcome, result.outcome)}"
    if result.outcome == "renewed" and result.not_after:
        until = result.not_after.strftime("%Y-%m-%d %H:%M UTC")
        return f"{head}: version {result.version}, valid until {until} ({result.seconds:.2f} s)"
    if result.outcome == "checked" and result.not_after:
        return f"{head}: the CA issued a certificate ({result.seconds:.2f} s); nothing stored"
    return f"{head}: {result.reason}"


def status_rows(settings: Settings, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Per certificate: name, domains, version, not_after, days_left, next_renewal, reason."""
    now = now or utc_now()
    store = Store(settings.state_dir)
    recorded = _history(settings)
    rows = []
    for certificate in settings.certificates:
        lineage = store.lineage(certificate.name)
        view = lineages.view(certificate, lineage, now)
        validity = lineages.validity_of(view.version)
        rows.append(
            {
                "name": certificate.name,
                "domains": list(certificate.domains),
                "version": view.version.number if view.version else None,
                "not_after": validity.not_after.isoformat() if validity else None,
                "days_left": round((validity.not_after - now).total_seconds() / 86400, 2)
                if validity
                else None,
                "next_renewal": view.decision.at.isoformat(timespec="seconds"),
                "due": view.decision.due,
                "reason": view.decision.reason,
                "devices": _device_rows(certificate.devices, lineage),
                **_run_state(settings, certificate, lineage, now, recorded),
            }
        )
    if recorded is not None:
        recorded.close()
    return rows


def _history(settings: Settings) -> history.History | None:
    """The history, if there is one: ``status`` creates nothing."""
    path = settings.state_dir / history.FILE_NAME
    return history.History(path) if path.exists() else None


def _run_state(
    settings: Settings,
    certificate: CertificateSettings,
    lineage: Lineage,
    now: dt.datetime,
    recorded: history.History | None,
) -> dict[str, Any]:
    planned = schedule.plan(settings, certificate, lineage, now)
    last = recorded.last(certificate.name) if recorded else None
    held = lineage.retry()
    return {
        "next_run": planned.at.isoformat(timespec="seconds") if planned else None,
        "next_run_reason": planned.why if planned else None,
        "last_outcome": last.outcome if last else None,
        "last_attempt": last.started_at.isoformat(timespec="seconds") if last else None,
        "retry": None
        if held is None
        else {
            "attempts": held.attempts,
            "permanent": held.permanent,
            "next_try": held.next_try.isoformat(timespec="seconds") if held.next_try else None,
            "last_error": held.last_error,
        },
    }


def _device_rows(names: Sequence[str], lineage: Lineage) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        state = lineage.device_state(name) or {}
        rows.append(
            {
                "name": name,
                "state": state.get("state", "not-deployed"),
                "version": state.get("version"),
                "fingerprint": state.get("fingerprint"),
                "verified_at": state.get("verified_at"),
                "error": state.get("error"),
            }
        )
    return rows


def status_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no certificates configured"
    header = ("NAME", "VERSION", "NOT AFTER", "DAYS LEFT", "NEXT RENEWAL", "REASON")
    lines = [header]
    for row in rows:
        lines.append(
            (
                row["name"],
                str(row["version"] or "-"),
                _short(row["not_after"]),
                "-" if row["days_left"] is None else f"{row['days_left']:.1f}",
                "now" if row["due"] else _short(row["next_renewal"]),
                row["reason"],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True))
        + "  "
        + line[-1]
        for line in lines
    ]
    devices = [_device_status(row["name"], d) for row in rows for d in row["devices"]]
    if devices:
        text += ["", "DEVICES", *devices]
    runs = [_run_line(row) for row in rows]
    text += ["", "RUNS", *runs]
    return "\n".join(text)


def _run_line(row: dict[str, Any]) -> str:
    if row["next_run"]:
        line = f"{row['name']}: next run {_short(row['next_run'])} ({row['next_run_reason']})"
    else:
        line = f"{row['name']}: no run planned"
    if row["last_outcome"]:
        line += f"; last {row['last_outcome']} at {_short(row['last_attempt'])}"
    retry = row["retry"]
    if retry and retry["permanent"]:
        line += f"; HELD after {retry['attempts']} failure(s): {retry['last_error']}"
    elif retry:
        line += f"; retry {retry['attempts']} at {_short(retry['next_try'])}: {retry['last_error']}"
    return line


def _device_status(certificate: str, device: dict[str, Any]) -> str:
    line = f"{certificate} -> {device['name']}: {device['state']}"
    if device["version"] is not None:
        line += f" (version {device['version']})"
    if device["fingerprint"]:
        line += f" presents {device['fingerprint']}"
    if device["verified_at"]:
        line += f", verified {_short(device['verified_at'])}"
    if device["error"]:
        line += f"; {device['error']}"
    return line


def _short(stamp: str | None) -> str:
    if stamp is None:
        return "-"
    return dt.datetime.fromisoformat(stamp).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")


def history_rows(settings: Settings, names: Sequence[str], limit: int) -> list[dict[str, Any]]:
    recorded = _history(settings)
    if recorded is None:
        return []
    try:
        wanted: list[str | None] = [*names] or [None]
        found = [entry for name in wanted for entry in recorded.entries(name, limit)]
    finally:
        recorded.close()
    found.sort(key=lambda e: e.started_at, reverse=True)
    return [
        {
            "time": e.started_at.isoformat(timespec="seconds"),
            "certificate": e.certificate,
            "kind": e.kind,
            "device": e.device,
            "outcome": e.outcome,
            "version": e.version,
            "seconds": round(e.duration_seconds, 3),
            "attempt": e.attempt_number,
            "next_try": e.next_try.isoformat(timespec="seconds") if e.next_try else None,
            "reason": e.reason,
        }
        for e in found[:limit]
    ]


def history_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no history yet"
    lines = []
    for row in rows:
        who = row["certificate"] + (f" -> {row['device']}" if row["device"] else "")
        version = f" v{row['version']}" if row["version"] else ""
        lines.append(
            f"{_short(row['time'])}  {row['kind']:<7}  {who}{version}: {row['outcome']}"
            + (f": {row['reason']}" if row["reason"] else "")
        )
    return "\n".join(lines)
