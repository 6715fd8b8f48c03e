"""Alerts: tell people when certificates or devices fail, once, with reminders and recovery.

The parts, each in its own module:

* :mod:`~vcs_acme.alerts.problems`: a pass result and the state folder turned into problems;
* :mod:`~vcs_acme.alerts.policy`: the pure decision of what to send when (dedup, reminders,
  recovery), and its state in ``alerts.json``;
* :mod:`~vcs_acme.alerts.text`: the e-mail's words and the webhook's JSON body;
* :mod:`~vcs_acme.alerts.mail` and :mod:`~vcs_acme.alerts.webhook`: the channels;
* :mod:`~vcs_acme.alerts.alerter`: all of it together, never raising.

Typical use after each pass of one certificate::

    observation = observe(result, lineage, certificate.devices, now=clock(),
                          expiry_warning=settings.alerts.expiry_warning)
    alerter.process(observation)
"""

from vcs_acme.alerts.alerter import Alerter, channels_for
from vcs_acme.alerts.channel import Channel, ChannelError
from vcs_acme.alerts.policy import Alert, AlertPolicy, AlertState
from vcs_acme.alerts.problems import Observation, Problem, drift_problem, observe, problems_from

__all__ = [
    "Alert",
    "AlertPolicy",
    "AlertState",
    "Alerter",
    "Channel",
    "ChannelError",
    "Observation",
    "Problem",
    "channels_for",
    "drift_problem",
    "observe",
    "problems_from",
]
