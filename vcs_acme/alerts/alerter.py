"""The alerter: decide with the policy, send through the channels, remember in alerts.json.

It never raises: alerting must not stop a pass. A channel that fails is logged at WARNING
and its alert stays due, so it is tried again on the next pass. ``alerts.json`` lives in
the state folder, is written atomically, and is read and written under an flock(2) so that
``vcs-acme renew`` and the daemon do not overwrite each other's entries.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

from vcs_acme.alerts import text
from vcs_acme.alerts.channel import Channel, ChannelError
from vcs_acme.alerts.policy import (
    Alert,
    AlertPolicy,
    AlertState,
    state_from_json,
    state_to_json,
)
from vcs_acme.alerts.problems import Observation
from vcs_acme.config_alerts import AlertSettings
from vcs_acme.errors import StoreError
from vcs_acme.store import PRIVATE_MODE, private_folder, read_json, write_json

logger = logging.getLogger(__name__)

STATE_FILE = "alerts.json"
LOCK_FILE = "locks/alerts.lock"
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def channels_for(settings: AlertSettings) -> list[Channel]:
    """The channels configured in ``[alerts]``."""
    from vcs_acme.alerts.mail import EmailChannel
    from vcs_acme.alerts.webhook import WebhookChannel

    channels: list[Channel] = []
    if settings.email is not None:
        channels.append(EmailChannel(settings.email, settings.reminder))
    if settings.webhook is not None:
        channels.append(WebhookChannel(settings.webhook))
    return channels


class Alerter:
    """Tells people about the problems of each pass, once and then as reminders."""

    def __init__(
        self,
        settings: AlertSettings,
        state_dir: Path,
        *,
        channels: Sequence[Channel] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.policy = AlertPolicy(settings.reminder)
        self.channels = list(channels_for(settings) if channels is None else channels)
        self.clock = clock
        self._threads = threading.Lock()  # the daemon's workers share one Alerter

    @property
    def path(self) -> Path:
        return self.state_dir / STATE_FILE

    def process(self, observation: Observation) -> list[Alert]:
        """Send what the observation makes due; return the alerts decided."""
        try:
            with self._locked():
                return self._process(observation)
        except Exception as error:  # alerting must never stop a pass
            logger.warning("alerts not processed: %s: %s", type(error).__name__, error)
            logger.debug("alerts not processed", exc_info=True)
            return []

    def retain(self, certificates: Collection[str]) -> None:
        """Forget the problems of certificates no longer configured (after a reload)."""
        try:
            with self._locked():
                self._save(self._load().retain(certificates))
        except (StoreError, OSError) as error:
            logger.warning("alerts.json not cleaned up: %s", error)

    def _process(self, observation: Observation) -> list[Alert]:
        previous = self._load()
        by_name = {channel.name: channel for channel in self.channels}
        alerts, state = self.policy.decide(
            observation.problems,
            previous,
            self.clock(),
            channels=tuple(by_name),
            scope=observation.scope,
        )
        for alert in alerts:
            for name in alert.channels:
                if not self._send(by_name[name], alert):
                    state = state.restore(alert.problem.key, name, previous)
        self._save(state)
        return alerts

    def _send(self, channel: Channel, alert: Alert) -> bool:
        try:
            channel.send(alert)
        except ChannelError as error:
            logger.warning("alert not sent by %s, tried again on the next pass: %s",
                           channel.name, error)  # fmt: skip
            return False
        except Exception as error:  # a broken channel must not keep the others from sending
            logger.warning("alert not sent by %s, tried again on the next pass: %s",
                           channel.name, type(error).__name__)  # fmt: skip
            logger.debug("%s failed", channel.target, exc_info=True)
            return False
        logger.info("alert sent by %s to %s: %s", channel.name, channel.target, text.subject(alert))
        return True

    def _load(self) -> AlertState:
        data = read_json(self.path)
        if data is None:
            return AlertState()
        try:
            return state_from_json(data)
        except (ValueError, KeyError, TypeError) as error:
            # Starting afresh re-sends what is open once; refusing would silence alerts.
            logger.warning("%s is damaged (%s); starting afresh", self.path, error)
            return AlertState()

    def _save(self, state: AlertState) -> None:
        private_folder(self.state_dir)
        write_json(self.path, state_to_json(state))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._threads:
            path = private_folder(self.state_dir / Path(LOCK_FILE).parent) / Path(LOCK_FILE).name
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)  # held for one pass's sends at most
                yield
            finally:
                os.close(descriptor)
