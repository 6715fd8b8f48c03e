"""After each certificate's pass: feed the metrics and tell people what changed.

Shared by the daemon and by ``renew``/``deploy``, so that a timer-driven ``renew`` alerts just
as the daemon does. Neither step may stop the work: the alerter never raises, and metrics are
in memory.
"""

from __future__ import annotations

import datetime as dt

from vcs_acme.alerts import Alerter, observe
from vcs_acme.config import Settings
from vcs_acme.metrics import Metrics
from vcs_acme.pipeline import Result
from vcs_acme.store import Store


def after_pass(
    settings: Settings,
    result: Result,
    *,
    alerter: Alerter,
    now: dt.datetime,
    metrics: Metrics | None = None,
) -> None:
    try:
        certificate = settings.certificate(result.name)
    except KeyError:
        return  # removed by a reload while it ran
    lineage = Store(settings.state_dir).lineage(result.name)
    if metrics is not None:
        metrics.observe_result(result, now=now)
        metrics.observe_lineage(lineage, certificate.devices)
    observation = observe(
        result,
        lineage,
        certificate.devices,
        now=now,
        drift=result.drift,
        expiry_warning=settings.alerts.expiry_warning,
    )
    alerter.process(observation)
