"""The alert policy and the problems it is fed: pure decisions with the clock passed in."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path

import pytest

from vcs_acme.alerts import text
from vcs_acme.alerts.policy import (
    AlertPolicy,
    AlertState,
    state_from_json,
    state_to_json,
)
from vcs_acme.alerts.problems import Observation, problems_from
from vcs_acme.config_alerts import parse_alerts, parse_metrics
from vcs_acme.config_reader import Table
from vcs_acme.deploy import DeviceOutcome
from vcs_acme.errors import AcmeError, ConfigError, LockedError
from vcs_acme.pipeline import Result
from vcs_acme.renewal import Validity
from vcs_acme.retry import RetryState

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
CHANNELS = ("email", "webhook")
POLICY = AlertPolicy(dt.timedelta(hours=24))
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
RENEWAL = ("certificate", "exp-e", "renewal")


def retry(attempts: int = 1, *, permanent: bool = False) -> RetryState:
    next_try = None if permanent else NOW + MINUTE * 2**attempts
    return RetryState(attempts, "the CA could not be reached", permanent, next_try, "id")


def failing(attempts: int = 1) -> Observation:
    error = AcmeError("the CA could not be reached: ConnectionError", transient=True)
    result = Result("exp-e", "failed", str(error), error=error)
    return problems_from(result, now=NOW, retry=retry(attempts))


def held() -> Observation:
    result = Result("exp-e", "held", "held after a permanent failure")
    return problems_from(result, now=NOW, retry=retry(3, permanent=True))


def healthy() -> Observation:
    return problems_from(Result("exp-e", "not-due", "due on 2027-01-01"), now=NOW)


class Timeline:
    """Observations fed to the policy one after another, as passes would."""

    def __init__(self, channels: tuple[str, ...] = CHANNELS) -> None:
        self.state = AlertState()
        self.channels = channels

    def see(
        self, observation: Observation, at: dt.datetime
    ) -> list[tuple[str, str, tuple[str, ...]]]:
        alerts, self.state = POLICY.decide(
            observation.problems, self.state, at, channels=self.channels, scope=observation.scope
        )
        return [(a.kind, a.event, a.channels) for a in alerts]


def test_the_same_problem_twice_is_told_once() -> None:
    timeline = Timeline()

    first = timeline.see(failing(1), NOW)
    second = timeline.see(failing(2), NOW + 10 * MINUTE)

    assert first == [("problem", "renewal-failed", CHANNELS)]
    assert second == []  # a growing attempt count is no change


def test_a_reminder_follows_after_the_interval_and_not_before() -> None:
    timeline = Timeline()
    timeline.see(failing(1), NOW)

    early = timeline.see(failing(5), NOW + 24 * HOUR - MINUTE)
    due = timeline.see(failing(6), NOW + 24 * HOUR)
    after = timeline.see(failing(7), NOW + 25 * HOUR)

    assert early == []
    assert due == [("reminder", "renewal-failed", CHANNELS)]
    assert after == []


def test_a_change_of_event_is_told_at_once() -> None:
    timeline = Timeline()
    timeline.see(failing(1), NOW)

    assert timeline.see(held(), NOW + MINUTE) == [("problem", "permanent-error", CHANNELS)]


def test_recovery_is_told_once_and_the_problem_forgotten() -> None:
    timeline = Timeline()
    timeline.see(failing(1), NOW)

    over = timeline.see(healthy(), NOW + HOUR)
    later = timeline.see(healthy(), NOW + 2 * HOUR)

    assert over == [("recovery", "recovered", CHANNELS)]
    assert later == []
    assert timeline.state.records == {}


def test_a_failed_channel_is_due_again_on_the_next_pass_and_only_it() -> None:
    timeline = Timeline()
    before = timeline.state
    timeline.see(failing(1), NOW)
    timeline.state = timeline.state.restore(RENEWAL, "email", before)  # e-mail failed

    again = timeline.see(failing(2), NOW + 2 * MINUTE)
    settled = timeline.see(failing(3), NOW + 4 * MINUTE)

    assert again == [("problem", "renewal-failed", ("email",))]
    assert settled == []


def test_only_channels_that_heard_of_a_problem_hear_of_its_end() -> None:
    timeline = Timeline()
    before = timeline.state
    timeline.see(failing(1), NOW)
    timeline.state = timeline.state.restore(RENEWAL, "email", before)

    assert timeline.see(healthy(), NOW + HOUR) == [("recovery", "recovered", ("webhook",))]


def test_a_failed_recovery_notice_is_sent_again() -> None:
    timeline = Timeline()
    timeline.see(failing(1), NOW)
    before = timeline.state
    timeline.see(healthy(), NOW + HOUR)
    timeline.state = timeline.state.restore(RENEWAL, "webhook", before)

    assert timeline.see(healthy(), NOW + 2 * HOUR) == [("recovery", "recovered", ("webhook",))]
    assert timeline.see(healthy(), NOW + 3 * HOUR) == []


def test_a_problem_back_after_its_recovery_is_told_again() -> None:
    timeline = Timeline()
    timeline.see(failing(1), NOW)
    timeline.see(healthy(), NOW + HOUR)

    assert timeline.see(failing(1), NOW + 2 * HOUR) == [("problem", "renewal-failed", CHANNELS)]


def test_a_device_check_says_nothing_about_renewal() -> None:
    timeline = Timeline()
    timeline.see(failing(1), NOW)
    check = problems_from(Result("exp-e", "checked-devices", "device check", 1), now=NOW)

    assert timeline.see(check, NOW + HOUR) == []
    assert RENEWAL in timeline.state.records


def test_a_lock_held_by_another_process_says_nothing() -> None:
    timeline = Timeline()
    timeline.see(failing(1), NOW)
    error = LockedError("certificate exp-e is being worked on by another vcs-acme process")
    locked = problems_from(Result("exp-e", "failed", str(error), error=error), now=NOW)

    assert locked.problems == frozenset()
    assert timeline.see(locked, NOW + MINUTE) == []


def test_other_certificates_are_left_alone() -> None:
    timeline = Timeline()
    timeline.see(failing(1), NOW)

    other = problems_from(Result("exp-c", "not-due", "due later"), now=NOW)

    assert timeline.see(other, NOW + HOUR) == []
    assert RENEWAL in timeline.state.records


def refused(version: int = 2) -> DeviceOutcome:
    reason = "the leaf lacks TLS Web Client Authentication (remedy: use a CA profile with it)"
    return DeviceOutcome("exp-e-1", "refused", version, error=reason)


def test_a_refused_device_stays_a_problem_while_the_state_folder_says_so() -> None:
    timeline = Timeline()
    renewed = Result("exp-e", "renewed", "due", 2, devices=[refused()])
    first = timeline.see(problems_from(renewed, now=NOW, devices=[refused()]), NOW)

    # The next pass does not work a refused device again, so its result does not name it;
    # the device's stored state still does.
    quiet = Result("exp-e", "not-due", "due later", 2)
    later = timeline.see(problems_from(quiet, now=NOW, devices=[refused()]), NOW + HOUR)
    fixed = DeviceOutcome("exp-e-1", "verified", 3, verified_at=NOW)
    over = timeline.see(problems_from(quiet, now=NOW, devices=[fixed]), NOW + 2 * HOUR)

    assert first == [("problem", "deploy-refused", CHANNELS)]
    assert later == []
    assert over == [("recovery", "recovered", CHANNELS)]


def test_a_device_failure_says_when_the_next_try_is() -> None:
    failed = DeviceOutcome("exp-e-1", "failed", 2, error="HTTP 503", transient=True)
    state = retry(2)
    result = Result("exp-e", "not-due", "due later", 2, devices=[failed])

    (problem,) = problems_from(result, now=NOW, retry=state).problems

    assert (problem.event, problem.device, problem.attempt) == ("deploy-failed", "exp-e-1", 2)
    assert problem.next_try == state.next_try
    assert "tries again at 2026-12-03 12:04:00 UTC" in problem.remedy


def drifted(at: dt.datetime) -> Observation:
    drift = {"exp-e-1": "drift: presents 9f:86 instead of version 2"}
    return problems_from(Result("exp-e", "checked-devices", "device check", 2), now=at, drift=drift)


def test_drift_is_told_once_never_recovers_and_is_forgotten_after_a_quiet_day() -> None:
    timeline = Timeline()
    quiet = problems_from(Result("exp-e", "checked-devices", "device check", 2), now=NOW)

    found = timeline.see(drifted(NOW), NOW)
    gone = timeline.see(quiet, NOW + HOUR)
    back = timeline.see(drifted(NOW), NOW + 2 * HOUR)
    timeline.see(quiet, NOW + 3 * HOUR)
    forgotten = timeline.see(quiet, NOW + 27 * HOUR)
    anew = timeline.see(drifted(NOW), NOW + 28 * HOUR)

    assert found == [("problem", "drift", CHANNELS)]
    assert (gone, back, forgotten) == ([], [], [])
    assert anew == [("problem", "drift", CHANNELS)]


def certificate(days_left: float, lifetime_days: float = 90) -> Validity:
    not_after = NOW + dt.timedelta(days=days_left)
    return Validity(not_after - dt.timedelta(days=lifetime_days), not_after)


@pytest.mark.parametrize(
    ("days_left", "lifetime_days", "event"),
    [
        (8, 90, None),
        (6.5, 90, "expiry-near"),
        (2, 6, None),  # a six-day certificate would otherwise warn from its first day
        (1, 6, "expiry-near"),
        (-0.1, 90, "expired"),
    ],
)
def test_expiry_without_renewal(days_left: float, lifetime_days: float, event: str | None) -> None:
    validity = certificate(days_left, lifetime_days)
    result = Result("exp-e", "failed", "boom", error=AcmeError("boom", transient=True))

    found = problems_from(result, now=NOW, retry=retry(9), validity=validity)

    expiry = [p for p in found.problems if p.key == ("certificate", "exp-e", "expiry")]
    assert [p.event for p in expiry] == ([event] if event else [])
    assert all(p.severity == "critical" for p in expiry)


def test_the_state_survives_its_file() -> None:
    timeline = Timeline()
    timeline.see(failing(1), NOW)
    timeline.see(drifted(NOW), NOW)
    timeline.see(held(), NOW + MINUTE)

    data = json.loads(json.dumps(state_to_json(timeline.state)))

    assert state_from_json(data) == timeline.state


def test_retain_forgets_certificates_no_longer_configured() -> None:
    timeline = Timeline()
    timeline.see(failing(1), NOW)

    assert timeline.state.retain(["exp-c"]).records == {}
    assert timeline.state.retain(["exp-e"]) == timeline.state


def test_subjects_say_what_and_where() -> None:
    alerts, _ = POLICY.decide(failing(3).problems, AlertState(), NOW, channels=CHANNELS)
    (alert,) = alerts

    assert text.subject(alert) == "[vcs-acme] FAILED: certificate exp-e: renewal failed (attempt 3)"


def test_a_recovery_body_names_what_is_over() -> None:
    timeline = Timeline()
    timeline.see(failing(1), NOW)
    alerts, _ = POLICY.decide(
        healthy().problems, timeline.state, NOW + HOUR, channels=CHANNELS, scope=healthy().scope
    )

    body = text.webhook_body(alerts[0])

    assert (body["event"], body["recovered_from"], body["severity"]) == (
        "recovered",
        "renewal-failed",
        "info",
    )
    assert (body["attempt"], body["next_try"]) == (None, None)
    assert text.subject(alerts[0]) == "[vcs-acme] RECOVERED: certificate exp-e: healthy again"


# -- configuration --------------------------------------------------------------------------


def alerts_table(tmp_path: Path, toml: str) -> Table:
    data = tomllib.loads(toml)
    return Table(data["alerts"], str(tmp_path / "config.toml"), "alerts")


def test_alert_settings_have_defaults(tmp_path: Path) -> None:
    settings = parse_alerts(alerts_table(tmp_path, "[alerts]\n"), tmp_path / "config.toml")

    assert (settings.expiry_warning_days, settings.reminder_hours) == (7.0, 24.0)
    assert (settings.email, settings.webhook) == (None, None)


def test_channels_are_read_and_their_secrets_kept_out_of_reprs(tmp_path: Path) -> None:
    (tmp_path / "smtp-password").write_text("Very-Secret-1\n")
    (tmp_path / "ca.pem").write_text("not read here\n")
    toml = """
    [alerts]
    reminder_hours = 12
    [alerts.email]
    host = "smtp.example.net"
    from = "vcs-acme@example.net"
    to = ["ops@example.net"]
    security = "tls"
    ca_file = "ca.pem"
    username = "vcs-acme"
    password = { file = "smtp-password" }
    [alerts.webhook]
    url = "https://hooks.example.net/services/T0KEN-IN-PATH"
    tries = 5
    """
    settings = parse_alerts(alerts_table(tmp_path, toml), tmp_path / "config.toml")

    email, webhook = settings.email, settings.webhook
    assert email is not None
    assert webhook is not None
    assert (email.port, email.security, email.ca_file) == (465, "tls", tmp_path / "ca.pem")
    assert email.password is not None
    assert email.password.reveal() == "Very-Secret-1"
    assert (webhook.origin, webhook.tries) == ("https://hooks.example.net:443", 5)
    assert "Very-Secret-1" not in repr(settings)
    assert "T0KEN-IN-PATH" not in repr(settings)


@pytest.mark.parametrize(
    ("toml", "where", "words"),
    [
        (
            '[alerts.email]\nhost = "h"\nfrom = "a@b.example"\nto = ["c@d.example"]\n'
            'security = "none"\nusername = "u"\npassword = { value = "p" }',
            "alerts.email.password",
            'security = "none"',
        ),
        (
            '[alerts.email]\nhost = "h"\nfrom = "a@b.example"\nto = ["c@d.example"]\n'
            'username = "u"',
            "alerts.email.password",
            "go together",
        ),
        (
            '[alerts.email]\nhost = "h"\nfrom = "nobody"\nto = ["c@d.example"]',
            "alerts.email.from",
            "e-mail address",
        ),
        ('[alerts.webhook]\nurl = "ftp://x/T0KEN"', "alerts.webhook.url", "https://"),
        ("reminder_hour = 3", "alerts.reminder_hour", 'did you mean "reminder_hours"'),
        (
            '[alerts.webhook]\nurl = "http://x/"\nauthorization = { value = "Bearer t" }',
            "alerts.webhook.authorization",
            "only sent over https",
        ),
    ],
)
def test_alert_settings_errors_name_the_key(
    tmp_path: Path, toml: str, where: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_alerts(alerts_table(tmp_path, "[alerts]\n" + toml), tmp_path / "config.toml")

    assert caught.value.key_path == where
    assert words in caught.value.message
    assert "T0KEN" not in str(caught.value)


def test_metrics_settings() -> None:
    default = parse_metrics(Table({}, "config.toml", "metrics"))
    moved = parse_metrics(Table({"listen": "[::1]:9100"}, "config.toml", "metrics"))

    assert (default.enabled, default.host, default.port) == (True, "127.0.0.1", 9464)
    assert (moved.host, moved.port) == ("::1", 9100)
    with pytest.raises(ConfigError, match="host:port"):
        parse_metrics(Table({"listen": "9100"}, "config.toml", "metrics"))
