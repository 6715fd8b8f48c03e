"""Alerts as a JSON POST to a webhook, retried a few times with growing pauses.

Retry policy, as data: connection failures, time-outs, HTTP 429 and 5xx are tried again up
to ``tries`` times in all, pausing 1 s, then 2 s, 4 s ... (at most 10 s), so that one pass
waits a bounded time; any other answer (a 4xx, a TLS certificate not trusted) is not, since
the same request would fail the same way. What is still undelivered is tried again on the
next pass by the policy. Only the URL's origin is ever logged: a chat service's webhook URL
carries its credential in the path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import requests

from vcs_acme.alerts import text
from vcs_acme.alerts.channel import ChannelError
from vcs_acme.alerts.policy import Alert
from vcs_acme.config_alerts import WebhookSettings
from vcs_acme.devices.tls import is_trust_failure

logger = logging.getLogger(__name__)

FIRST_PAUSE_SECONDS = 1.0
LONGEST_PAUSE_SECONDS = 10.0
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


class _RetryableError(Exception):
    """One try failed in a way that another try may mend."""


class _HidePaths(logging.Filter):
    """Keeps webhook URL paths out of urllib3's DEBUG lines, which show every request line."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        hidden = [path for path in self.paths if path in text]
        if hidden:
            for path in hidden:
                text = text.replace(path, "/[secure]")
            record.msg, record.args = text, ()
        return True


_HIDDEN = _HidePaths()
logging.getLogger("urllib3.connectionpool").addFilter(_HIDDEN)


class WebhookChannel:
    name = "webhook"

    def __init__(
        self, settings: WebhookSettings, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        parts = urlsplit(settings.url.reveal())
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if path not in ("", "/"):
            _HIDDEN.paths.add(path)

    @property
    def target(self) -> str:
        return f"webhook {self.settings.origin}"

    def send(self, alert: Alert) -> None:
        body = text.webhook_body(alert)
        pause = FIRST_PAUSE_SECONDS
        for attempt in range(1, self.settings.tries + 1):
            try:
                self._post(body)
                return
            except _RetryableError as error:
                if attempt == self.settings.tries:
                    raise ChannelError(f"{self.target}: {error} (tried {attempt} times)") from None
                logger.debug("%s: %s; trying again in %g s", self.target, error, pause)
            self.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_SECONDS)

    def _post(self, body: dict[str, object]) -> None:
        settings = self.settings
        headers = {"User-Agent": "vcs-acme"}
        if settings.authorization is not None:
            headers["Authorization"] = settings.authorization.reveal()
        # verify is given per request: REQUESTS_CA_BUNDLE in the environment must not decide.
        verify: str | bool = str(settings.ca_file) if settings.ca_file else True
        try:
            response = requests.post(
                settings.url.reveal(),
                json=body,
                headers=headers,
                timeout=settings.timeout_seconds,
                verify=verify,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as error:
            if is_trust_failure(error):
                raise ChannelError(f"{self.target}: TLS not trusted; check ca_file") from None
            raise _RetryableError("TLS handshake cut off") from None
        except requests.RequestException as error:
            # The exception's text would show the URL's path; its class name is enough.
            raise _RetryableError(type(error).__name__) from None
        if response.status_code in RETRIED_STATUSES:
            raise _RetryableError(f"HTTP {response.status_code}")
        if not 200 <= response.status_code < 300:
            raise ChannelError(f"{self.target}: HTTP {response.status_code}; not retried")
        logger.debug("%s: delivered (HTTP %d)", self.target, response.status_code)
