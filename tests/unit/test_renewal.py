"""The renewal decision: a table of situations and what a user would see."""

from __future__ import annotations

import datetime as dt

import pytest

from vcs_acme.renewal import Validity, Window, decide

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def issued(days_ago: float, lifetime_days: float) -> Validity:
    start = NOW - days_ago * DAY
    return Validity(start, start + lifetime_days * DAY)


def test_nothing_issued_yet_is_due_now() -> None:
    decision = decide(NOW, None)
    assert (decision.due, decision.at) == (True, NOW)
    assert decision.reason == "no certificate has been issued yet"


@pytest.mark.parametrize(
    ("lifetime", "due_after_days", "words"),
    [
        (90, 60, "a third"),
        (45, 30, "a third"),
        (64, 64 * 2 / 3, "a third"),
        (6, 3, "half"),
        (10, 5, "half"),
    ],
)
def test_lifetime_rule(lifetime: float, due_after_days: float, words: str) -> None:
    before = decide(NOW, issued(due_after_days - 0.01, lifetime))
    after = decide(NOW, issued(due_after_days + 0.01, lifetime))

    assert before.due is False
    assert abs((before.at - (NOW + 0.01 * DAY)).total_seconds()) < 1
    assert f"{words} of the lifetime ({lifetime:g} days) left" in before.reason
    assert after.due is True
    assert after.reason.startswith("due since ")


def test_a_thirty_day_rule_would_be_wrong_for_six_day_certificates() -> None:
    # Issued an hour ago: a fixed "30 days before expiry" rule would renew at once, forever.
    assert decide(NOW, issued(1 / 24, 6)).due is False


def test_operator_override_in_days() -> None:
    validity = issued(10, 90)
    assert decide(NOW, validity, renew_before_days=85).due is True
    decision = decide(NOW, validity, renew_before_days=30)
    assert decision.due is False
    assert decision.at == validity.not_after - 30 * DAY
    assert "renew_before_days = 30" in decision.reason


def test_ari_window_in_the_future_sets_a_fixed_moment_inside_it() -> None:
    window = Window(NOW + 2 * DAY, NOW + 4 * DAY)
    decision = decide(NOW, issued(10, 90), window=window, jitter=0.25)

    assert decision.due is False
    assert decision.at == NOW + 2.5 * DAY
    assert "the CA suggests renewing between 2026-12-05 12:00 UTC to 2026-12-07 12:00 UTC" in (
        decision.reason
    )


def test_ari_window_wins_over_the_lifetime_rule_both_ways() -> None:
    young = issued(1, 90)  # lifetime rule: not due for two months
    assert decide(NOW, young, window=Window(NOW - DAY, NOW + DAY), jitter=0.1).due is True
    old = issued(70, 90)  # lifetime rule: due; the CA says later
    assert decide(NOW, old, window=Window(NOW + DAY, NOW + 2 * DAY)).due is False


def test_inside_and_after_the_window() -> None:
    inside = decide(NOW, issued(30, 90), window=Window(NOW - DAY, NOW + DAY), jitter=0.4)
    assert (inside.due, "inside the CA's renewal window" in inside.reason) == (True, True)
    passed = decide(NOW, issued(30, 90), window=Window(NOW - 2 * DAY, NOW - DAY))
    assert (passed.due, "has passed" in passed.reason) == (True, True)


def test_emergency_renews_whatever_ari_says() -> None:
    validity = issued(82, 90)  # 8 days left of 90: inside the last tenth
    decision = decide(NOW, validity, window=Window(NOW + 5 * DAY, NOW + 6 * DAY))
    assert decision.due is True
    assert "whatever the CA's renewal information says" in decision.reason
    assert "only 8 days left" in decision.reason


def test_expired_is_due() -> None:
    decision = decide(NOW, issued(91, 90), window=Window(NOW + DAY, NOW + 2 * DAY))
    assert decision.due is True
    assert decision.reason.startswith("expired on ")


def test_a_changed_configuration_is_due_now() -> None:
    decision = decide(NOW, issued(1, 90), changed="domains ['a'] -> ['a', 'b']")
    assert decision.due is True
    assert decision.reason == "the configuration changed: domains ['a'] -> ['a', 'b']"


def test_without_ari_the_lifetime_rule_decides() -> None:
    # An ARI failure leaves the window out; the lifetime rule must still renew in time.
    assert decide(NOW, issued(61, 90), window=None).due is True
