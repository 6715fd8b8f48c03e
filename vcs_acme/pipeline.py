"""One pass over the configured certificates: decide, obtain, store.

``vcs-acme renew`` runs one pass; the daemon will run the same pass per certificate and only
decide when. Each certificate is worked under its lock; one certificate's failure never stops
the others.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509

from vcs_acme import history, lineages, pki, retry
from vcs_acme.config import DEVICE_KEY_BITS, CertificateSettings, Settings
from vcs_acme.deploy import Deployer, DeviceOutcome, open_access
from vcs_acme.devices.access import DeviceError
from vcs_acme.errors import AcmeError, LockedError, ProblemError, StoreError, VcsAcmeError
from vcs_acme.issuance.account import Account, open_account
from vcs_acme.issuance.http01 import Responders
from vcs_acme.issuance.order import OrderRequest, place_order
from vcs_acme.issuance.solvers import solvers_for
from vcs_acme.renewal import Decision
from vcs_acme.store import Lineage, Store, StoredVersion

logger = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Result:
    """What happened to one certificate in a pass."""

    name: str
    outcome: str  # "renewed", "not-due", "failed", "checked" (dry run)
    reason: str
    version: int | None = None
    not_after: dt.datetime | None = None
    fingerprint: str | None = None
    error: VcsAcmeError | None = None
    seconds: float = 0.0
    devices: list[DeviceOutcome] = field(default_factory=list)
    drift: dict[str, str] = field(default_factory=dict)  # device -> what it presented instead

    @property
    def ok(self) -> bool:
        return self.outcome not in ("failed", "held") and all(d.ok for d in self.devices)

    def failure(self) -> tuple[str, bool, dt.datetime | None] | None:
        """(what failed, whether a retry may help, the CA's Retry-After) or None on success."""
        if self.outcome == "failed":
            error = self.error
            retry_after = getattr(error, "retry_after", None)
            return self.reason, bool(error and error.transient), retry_after
        broken = [d for d in self.devices if not d.ok]
        if not broken:
            return None
        text = "; ".join(f"device {d.device}: {d.state}: {d.error}" for d in broken)
        return text, all(d.transient for d in broken), None


@dataclass
class Pass:
    """One renewal pass; ``run`` returns a result per certificate."""

    settings: Settings
    force: bool = False
    dry_run: bool = False
    clock: Clock = utc_now
    rng: random.Random = field(default_factory=random.Random)

    only_devices: tuple[str, ...] = ()
    responders: Responders | None = None  # shared by the daemon's workers; else our own

    def __post_init__(self) -> None:
        self.store = Store(self.settings.state_dir)
        self._account: Account | None = None
        self._responders = self.responders or Responders()
        self._history: history.History | None = None
        self.deployer = Deployer(self.settings, clock=self.clock)

    def run(self, certificates: list[CertificateSettings]) -> list[Result]:
        if not self.dry_run:
            self.store.ensure()
        try:
            return [self._one(certificate) for certificate in certificates]
        finally:
            self._close()

    def _close(self) -> None:
        if self.responders is None:  # ours, not the daemon's shared ones
            self._responders.close()
        if self._history is not None:
            self._history.close()
            self._history = None

    def check_devices(self, certificate: CertificateSettings) -> Result:
        """Look for drift and unfinished deploys of the current version (no issuance)."""
        self.store.ensure()
        try:
            return self._one(certificate, self._check_devices)
        finally:
            self._close()

    def _check_devices(self, certificate: CertificateSettings, lineage: Lineage) -> Result:
        version = lineage.current()
        if version is None:
            return Result(certificate.name, "not-due", "no version yet")
        result = Result(certificate.name, "checked-devices", "device check", version.number)
        self.catch_up(certificate, lineage, version, result)
        return result

    def run_one(self, certificate: CertificateSettings) -> Result:
        """One certificate, as the daemon runs it: decide, renew or catch up, remember."""
        self.store.ensure()
        try:
            return self._one(certificate)
        finally:
            self._close()

    def deploy(self, certificates: list[CertificateSettings]) -> list[Result]:
        """Deploy each certificate's current version again (``vcs-acme deploy``)."""
        self.store.ensure()
        try:
            return [self._one(certificate, self._redeploy) for certificate in certificates]
        finally:
            self._close()

    def _redeploy(self, certificate: CertificateSettings, lineage: Lineage) -> Result:
        version = lineage.current()
        if version is None:
            return Result(certificate.name, "failed", "no version to deploy yet; run renew first")
        devices = self.deployer.deploy(certificate, lineage, version, self.only_devices)
        result = Result(certificate.name, "deployed", "deployed again", version.number)
        result.devices = devices
        return result

    def _one(
        self,
        certificate: CertificateSettings,
        work: Callable[[CertificateSettings, Lineage], Result] | None = None,
    ) -> Result:
        started = time.monotonic()
        started_at = self.clock()
        lineage = self.store.lineage(certificate.name)
        try:
            with lineage.lock(create=not self.dry_run):
                result = (work or self._work)(certificate, lineage)
        except VcsAcmeError as error:
            logger.error("%s: %s", certificate.name, error)
            logger.debug("%s: failure details", certificate.name, exc_info=True)
            result = Result(certificate.name, "failed", str(error), error=error)
        result.seconds = time.monotonic() - started
        # Nothing new was learnt from an idle device check, a held certificate or a lock.
        idle = result.outcome == "held" or (
            result.outcome == "checked-devices" and not result.devices
        )
        if not self.dry_run and not idle and not isinstance(result.error, LockedError):
            self._remember(certificate, lineage, result)
            self._record(result, lineage, started_at, "check" if work == self._check_devices
                         else "deploy" if work == self._redeploy else "renewal")  # fmt: skip
        return result

    def _record(
        self, result: Result, lineage: Lineage, started_at: dt.datetime, kind: history.Kind
    ) -> None:
        """Add the pass to the history; a history that cannot be written never stops work."""
        state = lineage.retry()
        finished = self.clock()
        entries = [
            history.Entry(
                started_at=started_at,
                finished_at=finished,
                certificate=result.name,
                kind=kind,
                outcome=result.outcome,
                reason=result.reason,
                version=result.version,
                duration_seconds=result.seconds,
                attempt_number=state.attempts if state else 1,
                transient=None if state is None else not state.permanent,
                next_try=state.next_try if state else None,
            )
        ]
        entries += [
            history.Entry(
                started_at=started_at,
                finished_at=finished,
                certificate=result.name,
                kind="deploy",
                device=device.device,
                outcome=device.state,
                reason=device.error or "",
                version=device.version,
                duration_seconds=0.0,
                transient=device.transient if device.state == "failed" else None,
            )
            for device in result.devices
        ]
        try:
            if self._history is None:
                self._history = history.History.open(self.settings.state_dir)
            for entry in entries:
                self._history.record(entry)
        except StoreError as error:
            logger.warning("history not written: %s", error)

    def _remember(self, certificate: CertificateSettings, lineage: Lineage, result: Result) -> None:
        """Keep the retry state: cleared on success, counted up on failure."""
        failure = result.failure()
        if failure is None:
            lineage.save_retry(None)
            return
        text, transient, retry_after = failure
        state = retry.after_failure(
            lineage.retry(),
            now=self.clock(),
            error=text,
            transient=transient,
            identity=lineages.identity(self.settings, certificate, create=True),
            retry_after=retry_after,
            rng=self.rng,
        )
        lineage.save_retry(state)
        if state.permanent:
            logger.error(
                "%s: permanent failure (attempt %d), not retried until its configuration "
                "changes or `vcs-acme renew --force`: %s",
                certificate.name, state.attempts, text,
            )  # fmt: skip
        else:
            assert state.next_try is not None
            next_try = state.next_try.isoformat(timespec="seconds")
            logger.error(
                "%s: failed (attempt %d), next try at %s: %s",
                certificate.name, state.attempts, next_try, text,
            )  # fmt: skip

    def _work(self, certificate: CertificateSettings, lineage: Lineage) -> Result:
        held = lineage.retry()
        if not self.force and retry.blocked(held, lineages.identity(self.settings, certificate)):
            assert held is not None
            reason = (
                f"held after a permanent failure: {held.last_error}; fix the configuration "
                "or run `vcs-acme renew --force`"
            )
            return Result(certificate.name, "held", reason, error=None)
        decision = self._decide(certificate, lineage)
        if not decision.due and not self.force:
            logger.info("%s: not due: %s", certificate.name, decision.reason)
            current = lineage.current()
            number = current.number if current else None
            result = Result(certificate.name, "not-due", decision.reason, number)
            if current is not None and not self.dry_run:
                self.catch_up(certificate, lineage, current, result)
            return result
        reason = "forced by --force" if self.force and not decision.due else decision.reason
        logger.info("%s: renewing: %s", certificate.name, reason)
        result = self._issue(certificate, lineage, reason)
        if result.outcome == "renewed" and certificate.devices:
            version = lineage.current()
            assert version is not None
            result.devices = self.deployer.deploy(certificate, lineage, version, self.only_devices)
        return result

    def catch_up(
        self,
        certificate: CertificateSettings,
        lineage: Lineage,
        version: StoredVersion,
        result: Result,
    ) -> None:
        """Finish what an earlier pass left: devices not yet on this version, and drift.

        A device is worked again when its last deploy was not of this version, or failed, or
        waits for a restart, or when it was verified but now presents something else.
        """
        stale = [
            name
            for name in certificate.devices
            if (not self.only_devices or name in self.only_devices)
            and self._needs_work(name, lineage, version, result.drift)
        ]
        if stale:
            result.devices = self.deployer.deploy(certificate, lineage, version, stale)

    def _needs_work(
        self, device: str, lineage: Lineage, version: StoredVersion, drifted: dict[str, str]
    ) -> bool:
        state = lineage.device_state(device)
        if state is None or state.get("version") != version.number:
            return True
        if state.get("state") == "refused":
            return False  # the same bundle would be refused again; a new version may not
        if state.get("state") != "verified":
            return True
        drift = self.deployer.drift(self.settings.device(device), version)
        if drift:
            drifted[device] = drift
            logger.warning(
                "device %s: %s; deploying version %d again", device, drift, version.number
            )
        return drift is not None

    def _decide(self, certificate: CertificateSettings, lineage: Lineage) -> Decision:
        # ARI first: the CA's window is asked for (when stale) before the lifetime rule
        # decides; not when a new certificate is due anyway (none yet, changed, forced).
        view = lineages.view(certificate, lineage, self.clock())
        changed = lineages.what_changed(certificate, view.version)
        if view.version is not None and not changed and not self.force:
            self._refresh_window(lineage, view.version)
            view = lineages.view(certificate, lineage, self.clock())
        return view.decision

    def _refresh_window(self, lineage: Lineage, version: StoredVersion) -> None:
        """Ask the CA's renewalInfo when the stored answer is missing or stale.

        The answer is kept with the time to ask again, also when the CA offers no ARI or
        the request failed, so that the daemon knows when to look next. A failing ARI
        endpoint never blocks renewal: the kept window, or the lifetime rule, decides.
        """
        info = lineage.renewal_info()
        now = self.clock()
        fresh = info is not None and info.get("fingerprint") == version.meta.get("fingerprint")
        if fresh and info and lineages.parse_time(info["retry_after"]) > now:
            return
        kept = dict(info) if fresh and info else {}
        record: dict[str, object] = {**kept, "fingerprint": version.meta["fingerprint"]}
        try:
            account = self._connect()
            if not account.client.has("renewalInfo"):
                record.update(
                    offered=False, retry_after=_ask_again(now + NO_ARI_RECHECK, version, now)
                )
            else:
                leaf = x509.load_pem_x509_certificate(version.cert_pem)
                window = account.client.renewal_window(leaf)
                record.update(
                    offered=True,
                    start=window.start.isoformat(),
                    end=window.end.isoformat(),
                    retry_after=_ask_again(window.retry_after, version, now),
                    explanation_url=window.explanation_url,
                    error=None,
                )
                if window.explanation_url:
                    logger.info("%s: the CA explains its renewal window at %s",
                                lineage.name, window.explanation_url)  # fmt: skip
        except AcmeError as error:
            fallback = "the window known before" if "start" in kept else "the lifetime rule"
            logger.warning(
                "%s: no renewal information (%s); using %s", lineage.name, error, fallback
            )
            record.update(
                error=str(error), retry_after=_ask_again(now + ARI_ERROR_RECHECK, version, now)
            )
        record.update(fetched=now.isoformat(), retry_after=_iso(record["retry_after"]))
        if not self.dry_run:
            lineage.save_renewal_info(record)

    def _connect(self, *, register: bool = False) -> Account:
        if self._account is None or register:
            self._account = open_account(
                self.settings.acme, self.store, save=not self.dry_run, register=register
            )
        return self._account

    def _issue(self, certificate: CertificateSettings, lineage: Lineage, reason: str) -> Result:
        current = lineage.current()
        key, csr_pem = self._key_and_csr(certificate, lineage, current)
        account = self._connect()
        solvers = solvers_for(certificate.challenge, certificate.domains, self._responders)
        request = OrderRequest(
            names=certificate.domains,
            csr_pem=csr_pem,
            profile=certificate.profile,
            replaces=current.meta.get("ari_id") if current else None,
            preferred_chain=certificate.preferred_chain,
        )
        try:
            outcome = place_order(account.client, request, solvers)
        except ProblemError as error:
            if error.code != "accountDoesNotExist":
                raise
            logger.warning(
                "%s: the CA no longer knows the stored account; registering again", certificate.name
            )
            self._account = account = self._connect(register=True)
            outcome = place_order(account.client, request, solvers)
        parts = pki.split_pem_chain(outcome.fullchain_pem)
        leaf = x509.load_pem_x509_certificate(parts[0])
        _check_leaf(leaf, csr_pem, certificate.domains)
        facts = pki.CertificateFacts.of(leaf)
        meta = self._meta(certificate, leaf, facts, outcome.profile, outcome.replaces_sent, request)
        if self.dry_run:
            logger.info(
                "%s: dry run: obtained %s, stored nothing", certificate.name, facts.fingerprint
            )
            return Result(
                certificate.name, "checked", reason, None, facts.not_after, facts.fingerprint
            )
        files = {
            "cert.pem": parts[0],
            "chain.pem": b"".join(parts[1:]),
            "fullchain.pem": b"".join(parts),
            **({"privkey.pem": pki.key_to_pem(key)} if key is not None else {}),
            **_roots(outcome.all_chains),
        }
        stored = lineage.add_version(files, meta)
        logger.info(
            "%s: stored version %d, valid until %s (%s)",
            certificate.name,
            stored.number,
            facts.not_after.isoformat(timespec="seconds"),
            facts.fingerprint,
        )
        return Result(
            certificate.name, "renewed", reason, stored.number, facts.not_after, facts.fingerprint
        )

    def _key_and_csr(
        self, certificate: CertificateSettings, lineage: Lineage, current: StoredVersion | None
    ) -> tuple[pki.PrivateKey | None, bytes]:
        """A key made here and its CSR, or the CSR of a device that keeps its key to itself."""
        maker = next(
            (
                d
                for d in self.settings.devices
                if d.name in certificate.devices and d.access == "rest"
            ),
            None,
        )
        if maker is None:
            key = self._key_for(certificate, current)
            return key, pki.make_csr(key, certificate.domains)
        access = open_access(maker, lineage.fingerprints())
        try:
            others = tuple(n for n in certificate.domains if n != certificate.domains[0])
            csr_pem = access.certificate_signing_request(
                others, DEVICE_KEY_BITS[certificate.key_type]
            )
        finally:
            access.close()
        asked = set(pki.csr_names(csr_pem))
        if asked != set(certificate.domains):
            raise DeviceError(
                maker.name,
                f"its CSR names {', '.join(sorted(asked))}, the configuration "
                f"{', '.join(sorted(certificate.domains))}; the device's own host name is always "
                "in its CSR, so list it first in domains",
            )
        logger.info(
            "%s: the key stays on device %s; its CSR is signed", certificate.name, maker.name
        )
        return None, csr_pem

    def _key_for(
        self, certificate: CertificateSettings, current: StoredVersion | None
    ) -> pki.PrivateKey:
        if certificate.reuse_key and current is not None:
            key = pki.load_key(current.key_pem)
            if pki.key_type_of(key) == certificate.key_type:
                logger.debug("%s: reusing the key of version %d", certificate.name, current.number)
                return key
        return pki.generate_key(certificate.key_type)

    def _meta(
        self,
        certificate: CertificateSettings,
        leaf: x509.Certificate,
        facts: pki.CertificateFacts,
        profile: str | None,
        replaces_sent: bool,
        request: OrderRequest,
    ) -> dict[str, object]:
        return {
            "issued": self.clock().isoformat(timespec="seconds"),
            "domains": list(certificate.domains),
            "key_type": certificate.key_type,
            "profile": profile,
            "identity": certificate.identity,
            "fingerprint": facts.fingerprint,
            "serial": facts.serial,
            "issuer": facts.issuer,
            "not_before": facts.not_before.isoformat(),
            "not_after": facts.not_after.isoformat(),
            "ari_id": _ari_id(leaf),
            "replaced": request.replaces if replaces_sent else None,
            # Fixed once per version, so the moment inside an ARI window stays put across runs.
            "jitter": round(self.rng.random(), 6),
        }


NO_ARI_RECHECK = dt.timedelta(hours=24)
ARI_ERROR_RECHECK = dt.timedelta(hours=1)


def _iso(moment: object) -> str:
    return moment.isoformat() if isinstance(moment, dt.datetime) else str(moment)


def _ask_again(retry_after: dt.datetime, version: StoredVersion, now: dt.datetime) -> dt.datetime:
    """When to ask renewalInfo again: the CA's Retry-After, but at least ten times a lifetime.

    A CA's six-hour default makes sense for 90-day certificates and none for a certificate
    that lives minutes; the CA may move the window at any time (draft-ietf-acme-ari 4.3).
    """
    validity = lineages.validity_of(version)
    if validity is None:
        return retry_after
    return min(retry_after, now + validity.lifetime / 10)


def _ari_id(leaf: x509.Certificate) -> str | None:
    try:
        return pki.ari_certificate_id(leaf)
    except (ValueError, x509.ExtensionNotFound):
        return None


def _roots(chains: tuple[bytes, ...]) -> dict[str, bytes]:
    """Self-signed certificates any offered chain carried: candidates for the device's root."""
    from cryptography.hazmat.primitives import serialization

    from vcs_acme.bundle import is_self_signed

    roots: dict[bytes, bytes] = {}
    for chain in chains:
        for certificate in pki.load_certificates(chain):
            if is_self_signed(certificate):
                der = certificate.public_bytes(serialization.Encoding.DER)
                roots[der] = certificate.public_bytes(serialization.Encoding.PEM)
    return {"roots.pem": b"".join(roots.values())} if roots else {}


def _check_leaf(leaf: x509.Certificate, csr_pem: bytes, domains: tuple[str, ...]) -> None:
    """Refuse what the CA sent if it is not the certificate that was asked for."""
    if leaf.public_key() != x509.load_pem_x509_csr(csr_pem).public_key():
        raise AcmeError("the CA returned a certificate for another key; nothing was stored")
    missing = sorted(set(domains) - set(pki.dns_names(leaf)))
    if missing:
        raise AcmeError(f"the CA's certificate lacks {', '.join(missing)}; nothing was stored")
