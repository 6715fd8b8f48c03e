"""One certificate's DNS-01 challenges: publish every record, wait once, remove them again."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Protocol

from acme import challenges
from josepy import jwk

from vcs_acme.config import DnsSettings
from vcs_acme.issuance.dns01 import DnsError, TxtRecord
from vcs_acme.issuance.dns01.hook import HookProvider
from vcs_acme.issuance.dns01.lookup import Lookup
from vcs_acme.issuance.dns01.propagation import await_records
from vcs_acme.issuance.dns01.rfc2136 import Rfc2136Provider
from vcs_acme.issuance.order import OpenChallenge

logger = logging.getLogger(__name__)


class Provider(Protocol):
    """A way to add and remove TXT records in a zone."""

    def add(self, zone: str, records: Sequence[TxtRecord]) -> None:
        """Add all the records, or none of them."""

    def remove(self, zone: str, records: Sequence[TxtRecord]) -> None:
        """Remove exactly these records, leaving others at the same names."""

    def describe(self, zone: str) -> str:
        """How the zone is updated, for messages."""


def make_provider(settings: DnsSettings, lookup: Lookup) -> Provider:
    if settings.provider == "hook":
        return HookProvider(settings)
    return Rfc2136Provider(settings, lookup)


class Dns01Solver:
    """Meets DNS-01 challenges with the configured provider."""

    challenge_type = challenges.DNS01

    def __init__(self, settings: DnsSettings) -> None:
        self.settings = settings
        self._lookup: Lookup | None = None
        self._provider: Provider | None = None
        self._added: list[TxtRecord] = []

    def publish(self, open_challenges: Sequence[OpenChallenge], account_key: jwk.JWK) -> None:
        if self._lookup is None:
            self._lookup = Lookup(self.settings)
            self._provider = make_provider(self.settings, self._lookup)
        assert self._provider is not None
        records = []
        for challenge in open_challenges:
            chall = challenge.body.chall
            assert isinstance(chall, challenges.DNS01)
            value = chall.validation(account_key)
            records.append(self._lookup.record(challenge.identifier, value))
        for zone, in_zone in _by_zone(records):
            self._provider.add(zone, in_zone)
            self._added.extend(in_zone)

    def await_visible(self, deadline: float) -> None:
        if self._added:
            assert self._lookup is not None
            await_records(self._lookup, self._added, deadline=deadline)

    def withdraw(self) -> None:
        if not self._added:
            return
        assert self._provider is not None
        for zone, in_zone in _by_zone(self._added):
            try:
                self._provider.remove(zone, in_zone)
            except DnsError as error:
                names = ", ".join(sorted({r.name for r in in_zone}))
                logger.warning("DNS-01: %s; remove the TXT records at %s by hand", error, names)
        self._added.clear()


def _by_zone(records: Sequence[TxtRecord]) -> Iterator[tuple[str, list[TxtRecord]]]:
    for zone in sorted({record.zone for record in records}):
        yield zone, [record for record in records if record.zone == zone]
