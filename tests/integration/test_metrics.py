"""The Prometheus endpoint, scraped over HTTP as Prometheus would."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from emulator import pki
from prometheus_client.parser import text_string_to_metric_families
from support.ports import LOOPBACK

from vcs_acme.deploy import DeviceOutcome
from vcs_acme.errors import VcsAcmeError
from vcs_acme.metrics import Metrics
from vcs_acme.pipeline import Result
from vcs_acme.retry import RetryState
from vcs_acme.store import Store

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
NOT_AFTER = NOW + dt.timedelta(days=90)
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    metrics = Metrics()
    metrics.serve(LOOPBACK, 0)
    yield metrics
    metrics.stop()


def scrape(metrics: Metrics) -> tuple[str, Series]:
    server = metrics.serve()  # already serving: the same server
    response = requests.get(f"http://{LOOPBACK}:{server.port}/metrics", timeout=5)
    response.raise_for_status()
    series: Series = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            series[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return response.text, series


def one(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def renewed() -> Result:
    verified = DeviceOutcome("exp-e1", "verified", 4, "ab:cd", verified_at=NOW)
    waiting = DeviceOutcome("exp-e2", "pending-restart", 4)
    refused = DeviceOutcome("exp-e3", "refused", 4, error="no client EKU (remedy: ...)")
    result = Result("expressway-e", "renewed", "due", 4, NOT_AFTER, "ab:cd")
    result.devices = [verified, waiting, refused]
    return result


def test_a_pass_shows_as_series(metrics: Metrics) -> None:
    metrics.observe_result(renewed(), now=NOW)
    metrics.observe_result(Result("expressway-c", "not-due", "due later", 2))
    metrics.set_next_run("expressway-e", NOW + dt.timedelta(days=60))
    metrics.observe_acme_request(0.3)
    metrics.observe_acme_request(2.0)

    page, series = scrape(metrics)

    certificate = {"certificate": "expressway-e"}
    device = {**certificate, "device": "exp-e1"}
    assert series[one("vcs_acme_certificate_not_after_timestamp_seconds", **certificate)] == (
        NOT_AFTER.timestamp()
    )
    assert (
        series[one("vcs_acme_certificate_last_renewal_timestamp_seconds", **certificate)]
        == NOW.timestamp()
    )
    assert (
        series[one("vcs_acme_certificate_next_renewal_timestamp_seconds", **certificate)]
        == (NOW + dt.timedelta(days=60)).timestamp()
    )
    assert (
        series[one("vcs_acme_device_presented_not_after_timestamp_seconds", **device)]
        == NOT_AFTER.timestamp()
    )
    assert (
        series[one("vcs_acme_device_last_verification_timestamp_seconds", **device)]
        == NOW.timestamp()
    )
    deploys = {
        labels: value
        for (name, labels), value in series.items()
        if name == "vcs_acme_device_deploys_total"
    }
    assert deploys == {
        one("", **device, outcome="verified")[1]: 1.0,
        one("", **certificate, device="exp-e2", outcome="pending-restart")[1]: 1.0,
        one("", **certificate, device="exp-e3", outcome="refused")[1]: 1.0,
    }
    assert series[one("vcs_acme_acme_request_duration_seconds_count")] == 2.0
    assert series[one("vcs_acme_acme_request_duration_seconds_sum")] == pytest.approx(2.3)
    assert series[one("vcs_acme_acme_request_duration_seconds_bucket", le="0.5")] == 1.0
    assert "# HELP vcs_acme_certificate_consecutive_failures Failed attempts" in page
    # A registry of its own: nothing of the process or of other code leaks in.
    assert "process_" not in page
    assert "python_gc" not in page


def test_deploys_count_up_and_a_held_certificate_has_no_next_run(metrics: Metrics) -> None:
    metrics.set_next_run("expressway-e", NOW)
    metrics.observe_result(renewed(), now=NOW)
    metrics.observe_result(renewed(), now=NOW)
    metrics.set_next_run("expressway-e", None)

    _, series = scrape(metrics)

    labels = {"certificate": "expressway-e", "device": "exp-e1", "outcome": "verified"}
    assert series[one("vcs_acme_device_deploys_total", **labels)] == 2.0
    assert not [key for key in series if key[0].endswith("next_renewal_timestamp_seconds")]


def test_the_state_folder_fills_the_gauges(metrics: Metrics, tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    store.ensure()
    lineage = store.lineage("expressway-e")
    leaf = pki.make_leaf(pki.make_root(), ["exp.example.com"], not_after=NOT_AFTER)
    meta = {
        "issued": NOW.isoformat(),
        "not_before": (NOW - dt.timedelta(days=1)).isoformat(),
        "not_after": NOT_AFTER.isoformat(),
        "fingerprint": "ab:cd",
    }
    lineage.add_version({"cert.pem": leaf.certificate_pem}, meta)
    verified = DeviceOutcome("exp-e1", "verified", 1, "ab:cd", verified_at=NOW)
    lineage.save_device_state("exp-e1", verified.to_json())
    lineage.save_retry(RetryState(3, "HTTP 503", False, NOW, "id"))

    metrics.observe_lineage(lineage, ["exp-e1", "exp-e2"])

    _, series = scrape(metrics)
    certificate = {"certificate": "expressway-e"}
    device = {**certificate, "device": "exp-e1"}
    assert series[one("vcs_acme_certificate_consecutive_failures", **certificate)] == 3.0
    assert (
        series[one("vcs_acme_certificate_last_renewal_timestamp_seconds", **certificate)]
        == NOW.timestamp()
    )
    assert (
        series[one("vcs_acme_device_presented_not_after_timestamp_seconds", **device)]
        == NOT_AFTER.timestamp()
    )
    assert (
        series[one("vcs_acme_device_last_verification_timestamp_seconds", **device)]
        == NOW.timestamp()
    )

    lineage.save_retry(None)
    metrics.observe_lineage(lineage, ["exp-e1"])
    _, series = scrape(metrics)
    assert series[one("vcs_acme_certificate_consecutive_failures", **certificate)] == 0.0


def test_a_removed_certificate_leaves_no_series(metrics: Metrics) -> None:
    metrics.observe_result(renewed(), now=NOW)
    metrics.set_next_run("expressway-e", NOW)

    metrics.forget("expressway-e")

    _, series = scrape(metrics)
    assert not [key for key in series if ("certificate", "expressway-e") in key[1]]


def test_a_busy_port_is_a_clear_error_and_stop_closes_the_endpoint(metrics: Metrics) -> None:
    port = metrics.serve().port
    with pytest.raises(VcsAcmeError, match=rf"cannot listen on {LOOPBACK}:{port}.*\[metrics\]"):
        Metrics().serve(LOOPBACK, port)

    metrics.stop()

    with pytest.raises(ConnectionRefusedError), socket.create_connection((LOOPBACK, port), 2):
        pass
