"""What the state folder says about a lineage, and the decision drawn from it (no network)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from vcs_acme import renewal
from vcs_acme.config import CertificateSettings, Settings
from vcs_acme.store import Lineage, StoredVersion


def identity(settings: Settings, certificate: CertificateSettings) -> str:
    """A digest of everything configured for a certificate and its devices.

    A permanent failure holds until this changes. Secrets show as ``[secure]`` in reprs, so
    a changed password alone does not count: after fixing one, run ``renew --force``.
    """
    devices = [settings.device(name) for name in certificate.devices]
    text = repr((certificate, devices, settings.acme.directory_url))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def validity_of(version: StoredVersion | None) -> renewal.Validity | None:
    if version is None:
        return None
    meta = version.meta
    return renewal.Validity(parse_time(meta["not_before"]), parse_time(meta["not_after"]))


def what_changed(settings: CertificateSettings, version: StoredVersion | None) -> str | None:
    """The configured identity against the one the current version was issued for."""
    if version is None:
        return None
    issued: dict[str, Any] = version.meta.get("identity", {})
    wanted = settings.identity
    changes = [
        f"{key} {issued.get(key)!r} -> {value!r}"
        for key, value in wanted.items()
        if issued.get(key) != value
    ]
    return "; ".join(changes) or None


def cached_window(lineage: Lineage, version: StoredVersion | None) -> renewal.Window | None:
    """The last ARI window stored for the current version, if it is about that version."""
    if version is None:
        return None
    info = lineage.renewal_info()
    if not info or info.get("fingerprint") != version.meta.get("fingerprint"):
        return None
    if "start" not in info or "end" not in info:
        return None  # the CA offers no ARI, or has not answered yet
    return renewal.Window(parse_time(info["start"]), parse_time(info["end"]))


@dataclass(frozen=True)
class LineageView:
    settings: CertificateSettings
    version: StoredVersion | None
    decision: renewal.Decision


def view(settings: CertificateSettings, lineage: Lineage, now: dt.datetime) -> LineageView:
    """Read a lineage and decide, from local state alone."""
    version = lineage.current()
    decision = renewal.decide(
        now,
        validity_of(version),
        changed=what_changed(settings, version),
        window=cached_window(lineage, version),
        renew_before_days=settings.renew_before_days,
        jitter=float(version.meta.get("jitter", 0.5)) if version else 0.5,
    )
    return LineageView(settings, version, decision)
