"""``vcs-acme run``: the long-running agent. It runs the same pipeline as ``renew`` and only
decides *when*.

Scheduling (APScheduler 3.11, in memory, nothing pickled): one job per certificate at its
next decision time, rebuilt from the state folder at every start, so a restart resumes the
schedule; a periodic device check for drift and unfinished deploys; a bounded pool of
workers, so certificates are worked in parallel while each device sees one operation at a
time (``deploy.device_lock``). A job whose time passed during a suspend or downtime runs once
when the agent is back (coalesced), never once per missed moment.

Lifecycle: ``SIGHUP`` reloads the configuration (a broken one is reported and the old one
kept); the first ``SIGTERM``/``SIGINT`` stops gracefully within ``stop_timeout_seconds``,
letting work in flight finish; a second one exits at once. Under systemd (``NOTIFY_SOCKET``)
``READY=1``, ``STATUS=`` and ``WATCHDOG=1`` are sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from vcs_acme import config as config_module
from vcs_acme import schedule
from vcs_acme.aftermath import after_pass
from vcs_acme.alerts import Alerter
from vcs_acme.config import CertificateSettings, Settings
from vcs_acme.errors import ConfigError
from vcs_acme.issuance.http01 import Responders
from vcs_acme.issuance.network import REQUEST_OBSERVERS
from vcs_acme.metrics import Metrics, MetricsServer
from vcs_acme.pipeline import Pass, Result, utc_now
from vcs_acme.sdnotify import Notifier
from vcs_acme.store import Store

logger = logging.getLogger(__name__)

DRIFT_JOB = "device-check"
IDLE_WAKE_SECONDS = 30.0
Clock = Callable[[], dt.datetime]


class Daemon:
    def __init__(
        self,
        config_path: Path,
        settings: Settings,
        *,
        notifier: Notifier | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.config_path = config_path
        self.settings = settings
        self.notifier = notifier or Notifier()
        self.clock = clock
        self.responders = Responders()
        self.metrics = Metrics()
        self.alerter = Alerter(settings.alerts, settings.state_dir, clock=clock)
        self._metrics_server: MetricsServer | None = None
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wake = threading.Event()
        self._signals = 0
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(settings.daemon.workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=dt.UTC,
        )

    # -- when ---------------------------------------------------------------------------

    def next_run(self, certificate: CertificateSettings) -> schedule.Plan | None:
        """The next moment this certificate needs attention, from the state folder alone."""
        lineage = Store(self.settings.state_dir).lineage(certificate.name)
        return schedule.plan(self.settings, certificate, lineage, self.clock())

    def schedule_all(self) -> None:
        wanted = {c.name for c in self.settings.certificates}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("certificate:") and job.id.split(":", 1)[1] not in wanted:
                job.remove()
        for certificate in self.settings.certificates:
            self._schedule(certificate)
        minutes = self.settings.daemon.drift_check_minutes
        self.scheduler.add_job(
            self._check_devices, "interval", minutes=minutes, id=DRIFT_JOB, replace_existing=True
        )

    def _schedule(self, certificate: CertificateSettings) -> None:
        job_id = f"certificate:{certificate.name}"
        planned = self.next_run(certificate)
        if planned is None:
            self.metrics.set_next_run(certificate.name, None)
            if self.scheduler.get_job(job_id):
                self.scheduler.remove_job(job_id)
            logger.warning("%s: held after a permanent failure; no run scheduled", certificate.name)
            return
        self.metrics.set_next_run(certificate.name, planned.at)
        self.scheduler.add_job(
            self._run_certificate,
            "date",
            run_date=planned.at,
            args=[certificate.name],
            id=job_id,
            replace_existing=True,
        )
        when = planned.at.isoformat(timespec="seconds")
        logger.info("%s: next run at %s: %s", certificate.name, when, planned.why)

    # -- what ---------------------------------------------------------------------------

    def _pass(self, settings: Settings) -> Pass:
        return Pass(settings, responders=self.responders, clock=self.clock)

    def _run_certificate(self, name: str) -> None:
        try:
            certificate = self.settings.certificate(name)
        except KeyError:
            return  # removed by a reload while the job waited
        self._report(self._pass(self.settings).run_one(certificate))

    def _job_done(self, event: JobExecutionEvent) -> None:
        """Plan a certificate's next run once its job has finished.

        This runs after the scheduler has counted the job as finished; planning from inside
        the job would collide with the still-running instance and be skipped.
        """
        if event.exception is not None:
            logger.error("job %s failed: %s", event.job_id, event.exception)
        if self._stop.is_set() or not event.job_id.startswith("certificate:"):
            return
        try:
            certificate = self.settings.certificate(event.job_id.split(":", 1)[1])
        except KeyError:
            return
        self._schedule(certificate)
        self._status()

    def _check_devices(self) -> None:
        settings = self.settings
        for certificate in settings.certificates:
            if self._stop.is_set():
                return
            if certificate.devices:
                self._report(self._pass(settings).check_devices(certificate))
                self._schedule(certificate)

    def _report(self, result: Result) -> None:
        """Log a pass, feed the metrics, and tell people what changed."""
        from vcs_acme.report import result_lines

        for line in result_lines(result):
            (logger.info if result.ok else logger.error)("%s", line)
        after_pass(
            self.settings, result, alerter=self.alerter, now=self.clock(), metrics=self.metrics
        )

    # -- lifecycle ----------------------------------------------------------------------

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        del frame
        self._signals += 1
        if self._signals > 1:
            logger.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(1)
        logger.info("%s: stopping", signal.Signals(signum).name)
        self._stop.set()
        self._wake.set()

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        del signum, frame
        self._reload.set()
        self._wake.set()

    def reload(self) -> None:
        self.notifier.reloading()
        try:
            settings = config_module.load(self.config_path)
        except ConfigError as error:
            logger.error("reload refused, keeping the running configuration: %s", error)
            self.notifier.ready()
            return
        removed = {c.name for c in self.settings.certificates} - {
            c.name for c in settings.certificates
        }
        for name in removed:
            self.metrics.forget(name)
        self.settings = settings
        self.alerter = Alerter(settings.alerts, settings.state_dir, clock=self.clock)
        self.alerter.retain([c.name for c in settings.certificates])
        logger.info("configuration reloaded: %d certificate(s)", len(settings.certificates))
        self.schedule_all()
        self.notifier.ready()
        self._status()

    def _status(self) -> None:
        jobs = [j for j in self.scheduler.get_jobs() if j.id.startswith("certificate:")]
        if not jobs:
            self.notifier.status("idle: no certificate scheduled")
            return
        first = min(jobs, key=lambda j: j.next_run_time)
        name = first.id.split(":", 1)[1]
        moment = first.next_run_time.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        self.notifier.status(f"{len(jobs)} certificate(s); next: {name} at {moment}")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hangup)
        store = Store(self.settings.state_dir)
        store.ensure()
        for certificate in self.settings.certificates:
            self.metrics.observe_lineage(store.lineage(certificate.name), certificate.devices)
        if self.settings.metrics.enabled:
            where = self.settings.metrics
            self._metrics_server = self.metrics.serve(where.host, where.port)
            logger.info("metrics at http://%s:%d/metrics", where.host, self._metrics_server.port)
        REQUEST_OBSERVERS.append(self.metrics.observe_acme_request)
        self.scheduler.add_listener(self._job_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        self.scheduler.start()
        self.schedule_all()
        self.notifier.ready()
        self._status()
        logger.info("started: %d certificate(s)", len(self.settings.certificates))
        interval = self.notifier.watchdog_interval()
        wake = min(interval / 2, IDLE_WAKE_SECONDS) if interval else IDLE_WAKE_SECONDS
        while not self._stop.is_set():
            self._wake.wait(wake)
            self._wake.clear()
            self.notifier.watchdog()
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
        return self._shutdown()

    def _shutdown(self) -> int:
        self.notifier.stopping()
        bound = self.settings.daemon.stop_timeout_seconds
        closer = threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True})
        closer.start()
        closer.join(bound)
        self.responders.close()
        if self._metrics_server is not None:
            self._metrics_server.stop()
        if closer.is_alive():
            # Work in flight is safe to abandon: every write is atomic and the locks go
            # with the process.
            logger.warning("work still running after %g s; abandoning it", bound)
            logging.shutdown()
            os._exit(0)
        logger.info("stopped")
        return 0
