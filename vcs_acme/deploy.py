"""Deploy: upload, restart when allowed, and verify over TLS, one device at a time.

The peers of one certificate are worked one after another, so a cluster never loses all its
peers to restarts at once, and one device's failure never stops the others. Before anything
is uploaded the bundle is checked against the device's rules; a refused bundle never leaves
the agent. Nothing is removed from a device: the trusted CA list only grows.

Device states, kept in ``certificates/<name>/devices/<device>.json``:

``deployed``          uploaded; not verified yet
``verified``          every verify port presents the new certificate
``pending-restart``   uploaded; waiting for a restart (policy ``never`` or outside the window)
``refused``           the device would reject the bundle; nothing was uploaded
``failed``            the upload, restart or verification failed (``transient``: a retry
                      may help)
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from vcs_acme import bundle as bundles
from vcs_acme import pki
from vcs_acme.config import CertificateSettings, Settings
from vcs_acme.config_devices import DeviceSettings, RestartPolicy
from vcs_acme.devices.access import Bundle, DeviceAccess, DeviceError
from vcs_acme.devices.release import Release
from vcs_acme.devices.rules import DeviceProfile, Verdict, check_bundle
from vcs_acme.devices.tls import presented_fingerprint
from vcs_acme.store import Lineage, StoredVersion

logger = logging.getLogger(__name__)

AccessFactory = Callable[[DeviceSettings, Collection[str]], DeviceAccess]
Clock = Callable[[], dt.datetime]


def open_access(device: DeviceSettings, known: Collection[str]) -> DeviceAccess:
    """The way in configured for ``device``."""
    if device.access == "web":
        from vcs_acme.devices.web import WebAccess

        return WebAccess(device, known)
    if device.access == "rest":
        from vcs_acme.devices.rest import RestAccess

        return RestAccess(device, known)
    if device.access == "ssh":
        from vcs_acme.devices.ssh import SshAccess

        return SshAccess(device)
    from vcs_acme.devices.folder import FolderAccess

    return FolderAccess(device, known)


@dataclass
class DeviceOutcome:
    device: str
    state: str
    version: int
    fingerprint: str | None = None  # what the device presented when last looked at
    verified_at: dt.datetime | None = None
    error: str | None = None
    transient: bool = False

    @property
    def ok(self) -> bool:
        return self.state in ("verified", "pending-restart", "deployed")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.device,
            "state": self.state,
            "version": self.version,
            "fingerprint": self.fingerprint,
            "verified_at": self.verified_at.isoformat(timespec="seconds")
            if self.verified_at
            else None,
            "error": self.error,
            "transient": self.transient,
        }


_DEVICE_LOCKS: dict[str, threading.Lock] = {}
_DEVICE_LOCKS_GUARD = threading.Lock()


def device_lock(name: str) -> threading.Lock:
    """One operation at a time per device, across the daemon's workers.

    Two certificates can go to the same device; their deploys must not interleave (the
    web interface's sessionid is per page, and a restart would cut the other upload).
    """
    with _DEVICE_LOCKS_GUARD:
        return _DEVICE_LOCKS.setdefault(name, threading.Lock())


def in_window(policy: RestartPolicy, now: dt.datetime) -> bool:
    """Whether ``now`` falls inside the restart policy's maintenance window."""
    if policy.mode != "window" or policy.window is None:
        return policy.mode == "immediately"
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(policy.window)
    local = now.astimezone()
    opened = trigger.get_next_fire_time(None, local - dt.timedelta(minutes=policy.window_minutes))
    return opened is not None and opened <= local


class Deployer:
    """Deploys one version of one lineage to its devices."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        sleep: Callable[[float], None] = time.sleep,
        access_factory: AccessFactory = open_access,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.access_factory = access_factory
        # Warnings already given in full: peers of one certificate share their CAs.
        self._warned: set[str] = set()

    def deploy(
        self,
        certificate: CertificateSettings,
        lineage: Lineage,
        version: StoredVersion,
        only: Collection[str] = (),
        *,
        force: bool = False,
    ) -> list[DeviceOutcome]:
        outcomes = []
        for name in certificate.devices:
            if only and name not in only:
                continue
            device = self.settings.device(name)
            with device_lock(name):
                previous = lineage.device_state(name)
                outcome = self._one(device, lineage, version, previous, force)
            lineage.save_device_state(name, outcome.to_json())
            _log(outcome)
            outcomes.append(outcome)
        return outcomes

    def _one(
        self,
        device: DeviceSettings,
        lineage: Lineage,
        version: StoredVersion,
        previous: dict[str, Any] | None,
        force: bool,
    ) -> DeviceOutcome:
        access = self.access_factory(device, lineage.fingerprints())
        try:
            uploaded = (
                not force
                and previous is not None
                and previous.get("version") == version.number
                and previous.get("state") in ("pending-restart", "deployed")
            )
            if not uploaded:
                refused = self._upload(access, device, version)
                if refused is not None:
                    return refused
            return self._restart_and_verify(access, device, version)
        except DeviceError as error:
            return DeviceOutcome(
                device.name, "failed", version.number, error=str(error), transient=error.transient
            )
        finally:
            access.close()

    def _upload(
        self, access: DeviceAccess, device: DeviceSettings, version: StoredVersion
    ) -> DeviceOutcome | None:
        release = self._release(access, device)
        bundle = bundles.build(version, device.key_format, self.settings.acme.root_ca_file)
        verdict = self._check(device, release, bundle)
        if not verdict.accepted:
            reasons = "; ".join(f"{f.reason} (remedy: {f.remedy})" for f in verdict.violations)
            return DeviceOutcome(device.name, "refused", version.number, error=reasons)
        bundles.save(version, device.name, bundle)
        access.upload_server_certificate(bundle)
        self._append_missing_cas(access, bundle)
        return None

    def _release(self, access: DeviceAccess, device: DeviceSettings) -> Release:
        if device.release is not None:
            return device.release
        text = access.software_release()
        if not text:
            raise DeviceError(device.name, "its software release is unknown; set release")
        try:
            return Release.parse(text)
        except ValueError as problem:
            raise DeviceError(device.name, f"reports release {text!r}: {problem}") from None

    def _check(self, device: DeviceSettings, release: Release, bundle: Bundle) -> Verdict:
        profile = DeviceProfile(
            device.role, release, device.server_eku_upload, device.required_names
        )
        leaf = x509.load_pem_x509_certificate(bundle.leaf_pem)
        key = pki.load_key(bundle.key_pem) if bundle.key_pem else None
        cas = [x509.load_pem_x509_certificate(pem) for pem in bundle.ca_pems]
        verdict = check_bundle(profile, leaf, key, cas, self.clock())
        for warning in verdict.warnings:
            if warning.reason in self._warned:
                logger.info("device %s: also: %s", device.name, warning.reason)
                continue
            self._warned.add(warning.reason)
            logger.warning("device %s: %s; %s", device.name, warning.reason, warning.remedy)
        return verdict

    def _append_missing_cas(self, access: DeviceAccess, bundle: Bundle) -> None:
        present = {_der(pem) for pem in access.trusted_cas()}
        missing = [pem for pem in bundle.ca_pems if _der(pem) not in present]
        access.append_trusted_cas(missing)

    def _restart_and_verify(
        self, access: DeviceAccess, device: DeviceSettings, version: StoredVersion
    ) -> DeviceOutcome:
        wanted = str(version.meta["fingerprint"])
        if not in_window(device.restart, self.clock()):
            seen = self._presented(device)
            if seen == {wanted}:
                return self._verified(device, version, wanted)
            return DeviceOutcome(
                device.name, "pending-restart", version.number, fingerprint=_one_of(seen)
            )
        access.restart()
        return self._await_verification(device, version, wanted)

    def _await_verification(
        self, device: DeviceSettings, version: StoredVersion, wanted: str
    ) -> DeviceOutcome:
        deadline = time.monotonic() + device.verify_timeout_seconds
        delay = 0.2
        seen: set[str] = set()
        while True:
            seen = self._presented(device)
            if seen == {wanted}:
                return self._verified(device, version, wanted)
            if time.monotonic() + delay > deadline:
                break
            self.sleep(delay)
            delay = min(delay * 2, 5.0)
        others = ", ".join(sorted(s for s in seen if s != wanted)) or "nothing"
        return DeviceOutcome(
            device.name,
            "failed",
            version.number,
            fingerprint=_one_of(seen),
            error=f"after the restart it still presents {others}, not version {version.number} "
            f"(waited {device.verify_timeout_seconds:g} s)",
            transient=True,
        )

    def drift(self, device: DeviceSettings, version: StoredVersion) -> str | None:
        """Why ``device`` no longer presents ``version``, or None when it still does."""
        seen = self._presented(device)
        wanted = str(version.meta["fingerprint"])
        if seen == {wanted}:
            return None
        others = ", ".join(sorted(s for s in seen if s != wanted))
        return f"drift: presents {others} instead of version {version.number}"

    def _presented(self, device: DeviceSettings) -> set[str]:
        seen = set()
        for port in device.verify_ports:
            try:
                seen.add(presented_fingerprint(device.host, port))
            except OSError as error:
                logger.debug("device %s: port %d not answering: %s", device.name, port, error)
                seen.add(f"unreachable:{port}")
        return seen

    def _verified(self, device: DeviceSettings, version: StoredVersion, fp: str) -> DeviceOutcome:
        return DeviceOutcome(
            device.name, "verified", version.number, fingerprint=fp, verified_at=self.clock()
        )


def _der(pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def _one_of(seen: set[str]) -> str | None:
    real = sorted(s for s in seen if not s.startswith("unreachable:"))
    return real[0] if real else None


def _log(outcome: DeviceOutcome) -> None:
    if outcome.state == "verified":
        logger.info("device %s: verified version %d", outcome.device, outcome.version)
    elif outcome.state == "pending-restart":
        logger.info(
            "device %s: version %d uploaded, waiting for a restart", outcome.device, outcome.version
        )
    else:
        logger.error("device %s: %s: %s", outcome.device, outcome.state, outcome.error)
