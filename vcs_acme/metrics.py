"""Prometheus metrics of the daemon, served over HTTP (``/metrics``) on loopback by default.

Names follow Prometheus conventions: base units (seconds), ``_timestamp_seconds`` for
moments as Unix time, ``_total`` for counters. They live in a registry of their own, so
nothing else in the process (the client library's own collectors included) leaks into the
endpoint, and tests can make as many as they like. Series (labels in braces):

* ``vcs_acme_certificate_not_after_timestamp_seconds{certificate}``
* ``vcs_acme_certificate_last_renewal_timestamp_seconds{certificate}``
* ``vcs_acme_certificate_next_renewal_timestamp_seconds{certificate}``
* ``vcs_acme_certificate_consecutive_failures{certificate}``
* ``vcs_acme_device_presented_not_after_timestamp_seconds{certificate,device}``
* ``vcs_acme_device_deploys_total{certificate,device,outcome}``
* ``vcs_acme_device_last_verification_timestamp_seconds{certificate,device}``
* ``vcs_acme_acme_request_duration_seconds`` (a histogram)

The help texts below say what each means; ``docs/operations.md`` lists them too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from vcs_acme.errors import StoreError, VcsAcmeError

if TYPE_CHECKING:
    from vcs_acme.pipeline import Result
    from vcs_acme.store import Lineage

logger = logging.getLogger(__name__)

CERTIFICATE = ("certificate",)
DEVICE = ("certificate", "device")
# ACME requests are mostly tens of milliseconds; finalization and a slow CA take seconds.
ACME_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# How often the server looks for a stop request: also how long stopping it may take.
POLL_SECONDS = 0.1


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every 15 seconds is no news


@dataclass(frozen=True)
class MetricsServer:
    """The HTTP server of the endpoint and the thread that runs it."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def host(self) -> str:
        return str(self.server.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Metrics:
    """Every series of vcs-acme, in one registry; updated after each pass."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._server: MetricsServer | None = None
        self._define(self.registry)

    def _define(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, help_text: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(name, help_text, labels, registry=registry)

        self.not_after = gauge(
            "vcs_acme_certificate_not_after_timestamp_seconds",
            "End of validity of the certificate version in use, as Unix time.",
            CERTIFICATE,
        )
        self.last_renewal = gauge(
            "vcs_acme_certificate_last_renewal_timestamp_seconds",
            "When the certificate was last renewed successfully, as Unix time.",
            CERTIFICATE,
        )
        self.next_renewal = gauge(
            "vcs_acme_certificate_next_renewal_timestamp_seconds",
            "When the certificate is next looked at (renewal or retry), as Unix time; "
            "absent while it is held after a permanent failure.",
            CERTIFICATE,
        )
        self.failures = gauge(
            "vcs_acme_certificate_consecutive_failures",
            "Failed attempts (renewal or deploy) since the certificate's last success.",
            CERTIFICATE,
        )
        self.presented_not_after = gauge(
            "vcs_acme_device_presented_not_after_timestamp_seconds",
            "End of validity of the certificate the device was last verified to present.",
            DEVICE,
        )
        self.last_verification = gauge(
            "vcs_acme_device_last_verification_timestamp_seconds",
            "When the device was last verified to present the deployed version, as Unix time.",
            DEVICE,
        )
        self.deploys = Counter(
            "vcs_acme_device_deploys",
            "Deploys to the device, by outcome: verified, deployed, pending-restart, refused, "
            "failed.",
            (*DEVICE, "outcome"),
            registry=registry,
        )
        self.acme_requests = Histogram(
            "vcs_acme_acme_request_duration_seconds",
            "Duration of requests to the ACME server.",
            buckets=ACME_BUCKETS,
            registry=registry,
        )

    # -- after each pass ------------------------------------------------------------------

    def observe_result(self, result: Result, *, now: dt.datetime | None = None) -> None:
        """Count what one pass of one certificate did (``now``: when it ended).

        The failure count is not in a result: :meth:`observe_lineage` sets it.
        """
        name = result.name
        if result.outcome == "renewed":
            self.last_renewal.labels(name).set(_unix(now) if now else time.time())
        if result.not_after is not None:
            self.not_after.labels(name).set(_unix(result.not_after))
        for device in result.devices:
            self.deploys.labels(name, device.device, device.state).inc()
            if device.verified_at is not None:
                self.last_verification.labels(name, device.device).set(_unix(device.verified_at))
            if device.state == "verified" and result.not_after is not None:
                self.presented_not_after.labels(name, device.device).set(_unix(result.not_after))

    def observe_lineage(self, lineage: Lineage, devices: Iterable[str]) -> None:
        """Set the gauges from the state folder: at start, and after each pass.

        The state folder knows what a result may not: the failure count, when the version in
        use was issued, and what each device was last verified to present.
        """
        name = lineage.name
        try:
            retry = lineage.retry()
            self.failures.labels(name).set(retry.attempts if retry else 0)
            version = lineage.current()
            if version is not None:
                self.not_after.labels(name).set(_unix_text(version.meta["not_after"]))
                if version.meta.get("issued"):
                    self.last_renewal.labels(name).set(_unix_text(version.meta["issued"]))
            for device in devices:
                self._observe_device(lineage, device)
        except (StoreError, KeyError, ValueError) as error:
            logger.warning("%s: metrics not updated from the state folder: %s", name, error)

    def _observe_device(self, lineage: Lineage, device: str) -> None:
        state = lineage.device_state(device)
        if state is None:
            return
        if state.get("verified_at"):
            moment = _unix_text(state["verified_at"])
            self.last_verification.labels(lineage.name, device).set(moment)
        if state.get("state") == "verified":
            version = lineage.version(int(state["version"]))
            moment = _unix_text(version.meta["not_after"])
            self.presented_not_after.labels(lineage.name, device).set(moment)

    def set_next_run(self, name: str, when: dt.datetime | None) -> None:
        """The certificate's next scheduled run; None while it is held."""
        if when is None:
            _remove(self.next_renewal, name)
        else:
            self.next_renewal.labels(name).set(_unix(when))

    def observe_acme_request(self, seconds: float) -> None:
        self.acme_requests.observe(seconds)

    def forget(self, name: str) -> None:
        """Drop every series of a certificate no longer configured."""
        for gauge in (self.not_after, self.last_renewal, self.next_renewal, self.failures):
            _remove(gauge, name)
        for labelled in (self.presented_not_after, self.last_verification, self.deploys):
            for labels in _label_sets(labelled):
                if labels[0] == name:
                    labelled.remove(*labels)

    # -- the endpoint ---------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 9464) -> MetricsServer:
        """Serve ``/metrics`` in a background thread; port 0 picks a free one."""
        if self._server is not None:
            return self._server
        kind = _Server6 if ":" in host else _Server
        try:
            app = make_wsgi_app(self.registry)
            server = make_server(host, port, app, kind, handler_class=_QuietHandler)
        except OSError as error:
            raise VcsAcmeError(
                f"metrics: cannot listen on {host}:{port}: {error.strerror}; change "
                "[metrics] listen, or set enabled = false"
            ) from None
        thread = threading.Thread(
            target=server.serve_forever, args=(POLL_SECONDS,), name="metrics", daemon=True
        )
        thread.start()
        self._server = MetricsServer(server, thread)
        logger.info("metrics served at http://%s:%d/metrics", host, self._server.port)
        return self._server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def _unix(moment: dt.datetime) -> float:
    return moment.timestamp()


def _unix_text(text: object) -> float:
    moment = dt.datetime.fromisoformat(str(text))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)  # the state folder writes UTC
    return moment.timestamp()


def _remove(gauge: Gauge, name: str) -> None:
    with contextlib.suppress(KeyError):  # never set (clients before 0.22 raise)
        gauge.remove(name)


def _label_sets(metric: Gauge | Counter) -> list[tuple[str, ...]]:
    # The client library offers no public listing of a metric's children; collect() shows
    # each sample with its labels, from which the label values are read back.
    names = ("certificate", "device", "outcome")
    found: set[tuple[str, ...]] = set()
    for family in metric.collect():
        for sample in family.samples:
            found.add(tuple(sample.labels[n] for n in names if n in sample.labels))
    return sorted(found)
