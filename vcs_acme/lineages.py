"""What the state folder says about a lineage, and the decision drawn from it (no network)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from vcs_acme import renewal
from vcs_acme.config import CertificateSettings, Settings
from vcs_acme.secrets import Secret
from vcs_acme.store import Lineage, Store, StoredVersion


def identity(settings: Settings, certificate: CertificateSettings, *, create: bool = False) -> str:
    """A digest of everything configured for a certificate and its devices, secrets included.

    A permanent failure holds until this changes, so a fixed password or TSIG key lifts the
    hold just as an edited setting does. Secrets enter through an HMAC whose key is the
    state folder's own (see :meth:`Store.digest_key`): the digest cannot be inverted, nor
    tried against guesses, without that key. ``create`` makes the key when it is missing.
    """
    devices = [settings.device(name) for name in certificate.devices]
    text = repr((certificate, devices, settings.acme.directory_url, settings.acme.eab))
    digest = hashlib.sha256(text.encode())
    key = Store(settings.state_dir).digest_key(create=create)
    if key is not None:
        found = _secrets_in((certificate, devices, settings.acme.eab))
        values = "\0".join(secret.reveal() for secret in found).encode()
        digest.update(hmac.new(key, values, hashlib.sha256).digest())
    return digest.hexdigest()[:16]


def _secrets_in(thing: object) -> list[Secret]:
    """Every secret inside settings, in a stable order (dataclasses, tuples and lists)."""
    if isinstance(thing, Secret):
        return [thing]
    if isinstance(thing, (tuple, list)):
        return [secret for item in thing for secret in _secrets_in(item)]
    if dataclasses.is_dataclass(thing) and not isinstance(thing, type):
        fields = dataclasses.fields(thing)
        return [secret for f in fields for secret in _secrets_in(getattr(thing, f.name))]
    return []


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
