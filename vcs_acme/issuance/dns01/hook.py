"""Adding and removing TXT records through an administrator's command, for DNS services that
take no dynamic updates (a provider's web API, an IPAM system).

The command is run once per record, with no shell, and is told what to do in its
environment:

    VCS_ACME_ACTION   add or remove
    VCS_ACME_NAME     the record's name (after any CNAME), without the final dot
    VCS_ACME_VALUE    the TXT value
    VCS_ACME_ZONE     the zone that holds the record, without the final dot
    VCS_ACME_DOMAIN   the certificate name the record proves

Exit status 0 means done. Its output goes to the log at DEBUG, since hooks print what they
like, tokens included. A command that outlives its timeout is killed with everything it
started (it runs in a session of its own).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Sequence

from vcs_acme.config import DnsSettings
from vcs_acme.issuance.dns01 import DnsError, TxtRecord

logger = logging.getLogger(__name__)


class HookProvider:
    """Runs the configured command for each record."""

    def __init__(self, settings: DnsSettings) -> None:
        self.command = settings.command
        self.timeout = settings.command_timeout_seconds

    def add(self, zone: str, records: Sequence[TxtRecord]) -> None:
        """Add every record, or none: what a failed call may have added is removed again."""
        tried: list[TxtRecord] = []
        try:
            for record in records:
                tried.append(record)  # before the call: a failing hook may have added it
                self._run("add", record)
        except DnsError:
            self._undo(tried)
            raise
        logger.info("DNS-01: the hook added %d TXT record(s) to zone %s", len(records), zone)

    def remove(self, zone: str, records: Sequence[TxtRecord]) -> None:
        """Remove every record; the first failure is raised after all were tried."""
        failures = [error for record in records if (error := self._try("remove", record))]
        if failures:
            raise failures[0]
        logger.info("DNS-01: the hook removed %d TXT record(s) from zone %s", len(records), zone)

    def describe(self, zone: str) -> str:
        del zone  # the hook knows where its zones live
        return f"through the hook {self.command[0]}"

    def _undo(self, records: Sequence[TxtRecord]) -> None:
        for record in records:
            error = self._try("remove", record)
            if error is not None:
                logger.warning("DNS-01: %s; remove the record by hand", error)

    def _try(self, action: str, record: TxtRecord) -> DnsError | None:
        try:
            self._run(action, record)
        except DnsError as error:
            return error
        return None

    def _run(self, action: str, record: TxtRecord) -> None:
        program = self.command[0]
        environment = {
            **os.environ,
            "VCS_ACME_ACTION": action,
            "VCS_ACME_NAME": record.name,
            "VCS_ACME_VALUE": record.value,
            "VCS_ACME_ZONE": record.zone,
            "VCS_ACME_DOMAIN": record.domain,
        }
        logger.debug(
            "DNS-01: running the hook to %s %s in zone %s", action, record.name, record.zone
        )
        try:
            process = subprocess.Popen(
                self.command,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            raise DnsError(
                f"cannot run the DNS hook {program}: {error.strerror}; check challenge.command"
            ) from None
        try:
            output, _ = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            _log_output(action, record, output)
            raise DnsError(
                f"the DNS hook {program} did not {action} {record.name} within "
                f"{self.timeout:g} s and was stopped; raise challenge.command_timeout_seconds "
                "or look into the hook",
                transient=True,
            ) from None
        _log_output(action, record, output)
        if process.returncode != 0:
            raise DnsError(
                f"the DNS hook {program} failed to {action} {record.name} (exit status "
                f"{process.returncode}); its output is in the log at --log-level debug",
                transient=True,
            )


def _log_output(action: str, record: TxtRecord, output: bytes) -> None:
    for line in output.decode("utf-8", errors="replace").splitlines():
        logger.debug("DNS-01 hook (%s %s): %s", action, record.name, line)
