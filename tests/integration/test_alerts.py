"""Alerts delivered for real: an SMTP server and an HTTPS webhook receiver on loopback."""

from __future__ import annotations

import datetime as dt
import logging
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator import pki
from emulator.device import DeviceEmulator
from support.cli import Cli
from support.configs import for_pebble, http01
from support.devices import device_entry
from support.pebble import PebbleConfig, PebbleServer
from support.smtp import PASSWORD, USERNAME, Login, SmtpServer
from support.webhook import WebhookServer

from vcs_acme.alerts import Alerter, Channel, Observation, observe, problems_from
from vcs_acme.alerts.mail import EmailChannel
from vcs_acme.alerts.webhook import WebhookChannel
from vcs_acme.config_alerts import AlertSettings, parse_alerts
from vcs_acme.config_reader import Table
from vcs_acme.deploy import DeviceOutcome
from vcs_acme.errors import AcmeError
from vcs_acme.pipeline import Result
from vcs_acme.retry import RetryState
from vcs_acme.store import Store

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
TOKEN = "Bearer hook-T0ken-9a8b"
REASON = "the CA could not be reached: ConnectionError; will try again"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with SmtpServer(tmp_path) as server:
        yield server


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[WebhookServer]:
    with WebhookServer(tmp_path) as server:
        yield server


def settings_from(tmp_path: Path, toml: str) -> AlertSettings:
    config_file = tmp_path / "config.toml"
    table = Table(tomllib.loads(toml)["alerts"], str(config_file), "alerts")
    return parse_alerts(table, config_file)


def email_toml(smtp: SmtpServer, security: str = "starttls", ca_file: Path | None = None) -> str:
    return f"""
    [alerts.email]
    host = "{smtp.host}"
    port = {smtp.port}
    security = "{security}"
    ca_file = "{ca_file or smtp.ca_file}"
    from = "vcs-acme@example.net"
    to = ["pki-team@example.net", "video-ops@example.net"]
    username = "{USERNAME}"
    password = {{ file = "smtp-password" }}
    timeout_seconds = 10
    """


def webhook_toml(webhook: WebhookServer, ca_file: Path | None = None) -> str:
    return f"""
    [alerts.webhook]
    url = {{ env = "VCS_ACME_TEST_WEBHOOK_URL" }}
    authorization = {{ env = "VCS_ACME_TEST_WEBHOOK_AUTH" }}
    ca_file = "{ca_file or webhook.ca_file}"
    """


@pytest.fixture(autouse=True)
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "smtp-password").write_text(PASSWORD + "\n")
    monkeypatch.setenv("VCS_ACME_TEST_WEBHOOK_AUTH", TOKEN)


def alerter(tmp_path: Path, settings: AlertSettings, clock: Clock, pauses: list[float]) -> Alerter:
    channels: list[Channel] = []
    if settings.email is not None:
        channels.append(EmailChannel(settings.email, settings.reminder))
    if settings.webhook is not None:
        channels.append(WebhookChannel(settings.webhook, sleep=pauses.append))
    return Alerter(settings, tmp_path / "state", channels=channels, clock=clock)


def renewal_failed(attempts: int = 3, name: str = "expressway-e") -> Observation:
    error = AcmeError(REASON, transient=True)
    result = Result(name, "failed", REASON, error=error)
    state = RetryState(attempts, REASON, False, NOW + dt.timedelta(minutes=8), "id")
    return problems_from(result, now=NOW, retry=state)


def healthy(name: str = "expressway-e") -> Observation:
    return problems_from(Result(name, "not-due", "due on 2027-01-20"), now=NOW)


# -- e-mail -----------------------------------------------------------------------------------


def test_an_alert_arrives_by_mail_over_starttls_after_login(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    settings = settings_from(tmp_path, "[alerts]\n" + email_toml(smtp))

    alerter(tmp_path, settings, Clock(), []).process(renewal_failed())

    (mail,) = smtp.wait_for(1)
    message = mail.message
    assert message["Subject"] == (
        "[vcs-acme] FAILED: certificate expressway-e: renewal failed (attempt 3)"
    )
    assert b"\r\nSubject: [vcs-acme] FAILED: certificate expressway-e: renewal" in mail.raw
    assert message["From"] == "vcs-acme@example.net"
    assert mail.recipients == ("pki-team@example.net", "video-ops@example.net")
    assert message["Auto-Submitted"] == "auto-generated"
    assert "What happened\n  certificate expressway-e: renewal failed (attempt 3)." in mail.body
    assert "Why\n  the CA could not be reached: ConnectionError" in mail.body
    assert "What next\n  vcs-acme tries again at 2026-12-03 12:08:00 UTC." in mail.body
    assert "Next try:    2026-12-03 12:08:00 UTC" in mail.body
    assert (mail.tls, mail.login) == (True, USERNAME)
    assert smtp.logins in ([Login("LOGIN", USERNAME, True)], [Login("PLAIN", USERNAME, True)])


def test_mail_goes_over_implicit_tls_with_a_password_from_a_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "smtp-password").write_text(PASSWORD)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    with SmtpServer(tmp_path, "tls") as smtp:
        toml = email_toml(smtp, "tls").replace(
            'file = "smtp-password"', 'credential = "smtp-password"'
        )
        settings = settings_from(tmp_path, "[alerts]\n" + toml)

        alerter(tmp_path, settings, Clock(), []).process(renewal_failed())

        (mail,) = smtp.wait_for(1)
    assert (mail.tls, mail.login) == (True, USERNAME)
    assert mail.message["Subject"].startswith("[vcs-acme] FAILED: certificate expressway-e")


def test_a_server_certificate_from_another_ca_is_refused_and_retried_next_pass(
    tmp_path: Path, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = tmp_path / "other-ca.pem"
    stranger.write_bytes(pki.make_root("Someone Else's Root").certificate_pem)
    clock = Clock()
    wrong = settings_from(tmp_path, "[alerts]\n" + email_toml(smtp, ca_file=stranger))

    with caplog.at_level(logging.WARNING):
        alerter(tmp_path, wrong, clock, []).process(renewal_failed(3))

    assert "TLS not trusted" in caplog.text
    assert "tried again on the next pass" in caplog.text
    assert (smtp.messages, smtp.logins) == ([], [])  # the password never left

    clock.now += dt.timedelta(minutes=8)
    right = settings_from(tmp_path, "[alerts]\n" + email_toml(smtp))
    alerter(tmp_path, right, clock, []).process(renewal_failed(4))

    (mail,) = smtp.wait_for(1)
    assert "renewal failed (attempt 4)" in mail.message["Subject"]


def test_a_refused_login_is_reported_without_the_password(
    tmp_path: Path, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "smtp-password").write_text("Not-The-Password-77\n")
    settings = settings_from(tmp_path, "[alerts]\n" + email_toml(smtp))

    with caplog.at_level(logging.DEBUG):
        alerter(tmp_path, settings, Clock(), []).process(renewal_failed())

    assert smtp.messages == []
    assert [login.accepted for login in smtp.logins] == [False]
    assert f"login refused for '{USERNAME}'" in caplog.text
    assert "Not-The-Password-77" not in caplog.text


def test_mail_is_never_sent_in_clear_when_starttls_is_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with SmtpServer(tmp_path, "plain") as relay, caplog.at_level(logging.WARNING):
        settings = settings_from(tmp_path, "[alerts]\n" + email_toml(relay))
        alerter(tmp_path, settings, Clock(), []).process(renewal_failed())
        messages = list(relay.messages)

    assert messages == []
    assert "offers no STARTTLS; nothing was sent in clear text" in caplog.text


# -- webhook ----------------------------------------------------------------------------------


@pytest.fixture
def webhook_env(webhook: WebhookServer, monkeypatch: pytest.MonkeyPatch) -> WebhookServer:
    monkeypatch.setenv("VCS_ACME_TEST_WEBHOOK_URL", webhook.url)
    return webhook


def test_the_webhook_body_is_exactly_as_documented(
    tmp_path: Path, webhook_env: WebhookServer
) -> None:
    settings = settings_from(tmp_path, "[alerts]\n" + webhook_toml(webhook_env))

    alerter(tmp_path, settings, Clock(), []).process(renewal_failed())

    (request,) = webhook_env.wait_for(1)
    assert request.path == "/hooks/vcs-acme/Secret-Path-Token"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"] == TOKEN
    assert request.body == {
        "version": 1,
        "event": "renewal-failed",
        "reminder": False,
        "problem": "certificate/expressway-e/renewal",
        "certificate": "expressway-e",
        "device": None,
        "severity": "error",
        "summary": "certificate expressway-e: renewal failed (attempt 3)",
        "message": REASON,
        "remedy": "vcs-acme tries again at 2026-12-03 12:08:00 UTC. Nothing to do while it is "
        "an outage; if it keeps failing, follow the reason above and see `vcs-acme status` "
        "and `vcs-acme history`.",
        "attempt": 3,
        "next_try": "2026-12-03T12:08:00+00:00",
        "since": "2026-12-03T12:00:00+00:00",
        "time": "2026-12-03T12:00:00+00:00",
        "recovered_from": None,
    }


def test_the_webhook_is_retried_with_growing_pauses_after_errors(
    tmp_path: Path, webhook_env: WebhookServer
) -> None:
    settings = settings_from(tmp_path, "[alerts]\n" + webhook_toml(webhook_env))
    webhook_env.fail_next(2)
    pauses: list[float] = []

    alerter(tmp_path, settings, Clock(), pauses).process(renewal_failed())

    requests = webhook_env.wait_for(3)
    assert [r.status for r in requests] == [500, 500, 200]
    assert requests[0].body == requests[2].body
    assert pauses == [1.0, 2.0]


def test_a_webhook_down_for_a_whole_pass_gets_the_alert_on_the_next(
    tmp_path: Path, webhook_env: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_from(tmp_path, "[alerts]\n" + webhook_toml(webhook_env))
    webhook_env.fail_next(3)
    clock = Clock()
    with caplog.at_level(logging.WARNING):
        alerter(tmp_path, settings, clock, []).process(renewal_failed(3))

    assert webhook_env.delivered() == []
    assert "HTTP 500 (tried 3 times)" in caplog.text

    clock.now += dt.timedelta(minutes=8)
    alerter(tmp_path, settings, clock, []).process(renewal_failed(4))

    (body,) = webhook_env.delivered()
    assert (body["event"], body["attempt"]) == ("renewal-failed", 4)


def test_a_webhook_with_a_certificate_from_another_ca_is_refused(
    tmp_path: Path, webhook_env: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = tmp_path / "other-ca.pem"
    stranger.write_bytes(pki.make_root("Someone Else's Root").certificate_pem)
    settings = settings_from(tmp_path, "[alerts]\n" + webhook_toml(webhook_env, stranger))
    pauses: list[float] = []

    with caplog.at_level(logging.WARNING):
        alerter(tmp_path, settings, Clock(), pauses).process(renewal_failed())

    assert webhook_env.requests == []
    assert pauses == []  # the same certificate would be refused again: no retry now
    assert "TLS not trusted; check ca_file" in caplog.text


# -- both, over time --------------------------------------------------------------------------


def test_one_alert_per_problem_a_reminder_a_day_and_one_recovery(
    tmp_path: Path, smtp: SmtpServer, webhook_env: WebhookServer
) -> None:
    toml = "[alerts]\nreminder_hours = 24\n" + email_toml(smtp) + webhook_toml(webhook_env)
    clock = Clock()
    agent = alerter(tmp_path, settings_from(tmp_path, toml), clock, [])

    agent.process(renewal_failed(1))
    clock.now += dt.timedelta(hours=1)
    agent.process(renewal_failed(2))
    assert (len(smtp.messages), len(webhook_env.delivered())) == (1, 1)

    clock.now += dt.timedelta(hours=23)
    agent.process(renewal_failed(9))
    reminder = smtp.wait_for(2)[1]
    assert reminder.message["Subject"] == (
        "[vcs-acme] STILL FAILED: certificate expressway-e: renewal failed (attempt 9)"
    )
    assert webhook_env.delivered()[1]["reminder"] is True

    clock.now += dt.timedelta(hours=2)
    agent.process(healthy())
    agent.process(healthy())
    recovery = smtp.wait_for(3)[2]
    assert len(smtp.messages) == 3
    assert recovery.message["Subject"] == (
        "[vcs-acme] RECOVERED: certificate expressway-e: healthy again"
    )
    bodies = webhook_env.delivered()
    assert [b["event"] for b in bodies] == ["renewal-failed", "renewal-failed", "recovered"]
    assert stat.S_IMODE((tmp_path / "state" / "alerts.json").stat().st_mode) == 0o600


def test_no_secret_reaches_a_log_a_message_or_a_repr(
    tmp_path: Path, smtp: SmtpServer, webhook_env: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_from(tmp_path, "[alerts]\n" + email_toml(smtp) + webhook_toml(webhook_env))
    webhook_env.fail_next(5)
    agent = alerter(tmp_path, settings, Clock(), [])

    with caplog.at_level(logging.DEBUG):
        agent.process(renewal_failed())

    said = caplog.text + repr(settings) + repr(agent.channels)
    said += "".join(m.message.as_string() for m in smtp.wait_for(1))
    said += (tmp_path / "state" / "alerts.json").read_text()
    for secret in (PASSWORD, TOKEN, "Secret-Path-Token"):
        assert secret not in said


# -- from the state folder --------------------------------------------------------------------


def test_problems_are_read_from_the_lineage(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    store.ensure()
    lineage = store.lineage("expressway-e")
    root = pki.make_root()
    leaf = pki.make_leaf(
        root,
        ["expressway-e.example.com"],
        not_before=NOW - dt.timedelta(days=85),
        not_after=NOW + dt.timedelta(days=5),
    )
    facts = leaf.certificate
    meta = {
        "not_before": facts.not_valid_before_utc.isoformat(),
        "not_after": facts.not_valid_after_utc.isoformat(),
        "fingerprint": "ab:cd",
    }
    files = {"cert.pem": leaf.certificate_pem, "fullchain.pem": leaf.certificate_pem}
    lineage.add_version(files, meta)
    refused = DeviceOutcome("expressway-e1", "refused", 1, error="no client EKU (remedy: ...)")
    lineage.save_device_state("expressway-e1", refused.to_json())
    result = Result("expressway-e", "not-due", "the CA suggests renewing later", 1)

    observation = observe(result, lineage, ["expressway-e1", "expressway-e2"], now=NOW)

    assert sorted((p.key, p.event) for p in observation.problems) == [
        (("certificate", "expressway-e", "expiry"), "expiry-near"),
        (("device", "expressway-e", "expressway-e1", "deploy"), "deploy-refused"),
    ]
    assert ("device", "expressway-e") in observation.scope


def test_renew_alerts_a_failed_deploy_and_its_recovery(tmp_path: Path, cli: Cli) -> None:
    """End to end: a timer-driven `renew` tells the webhook, once, and then of the recovery."""
    password = tmp_path / "device-password"
    password.write_text("Adm1n-secret!")
    with (
        PebbleServer(PebbleConfig(version="2.4")) as pebble,
        DeviceEmulator("vcs", "X14.3", "admin", "Adm1n-secret!") as vcs,
        WebhookServer(tmp_path) as hook,
    ):
        config = for_pebble(tmp_path, pebble)
        config.devices = [device_entry("vcs-1", vcs, tmp_path, password)]
        config.certificate("video", ["vcs.example.com"], challenge=http01(pebble),
                           devices=["vcs-1"])  # fmt: skip
        config.tables["alerts"] = {"webhook": {"url": hook.url, "ca_file": str(hook.ca_file)}}
        path = str(config.write())
        vcs.fail_next_requests(1000, status=500)

        assert cli("--config", path, "renew").code == 1
        assert cli("--config", path, "renew").code == 1  # the same problem: no second alert
        vcs.fail_next_requests(0)
        assert cli("--config", path, "renew").code == 0
        hook.wait_for(2, 10)
        bodies = hook.delivered()

    events = [(b["event"], b["certificate"], b["device"]) for b in bodies]
    assert events == [("deploy-failed", "video", "vcs-1"), ("recovered", "video", "vcs-1")]
