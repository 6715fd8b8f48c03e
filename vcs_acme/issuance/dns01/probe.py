"""What ``vcs-acme check`` asks of DNS: may the agent add and remove a validation record?

A harmless TXT record, whose value no CA would accept, is added where the name's DNS-01
record will go and removed at once. That proves the zone is found, the server is reached
and the key may update exactly that name, which an update policy may restrict to it.
"""

from __future__ import annotations

import secrets

from vcs_acme.config import DnsSettings
from vcs_acme.issuance.dns01 import DnsError
from vcs_acme.issuance.dns01.lookup import Lookup
from vcs_acme.issuance.dns01.solver import make_provider


def probe_update_rights(settings: DnsSettings, domain: str) -> str:
    """Add and remove a check record for ``domain``; say what was proven, or raise DnsError."""
    lookup = Lookup(settings)
    provider = make_provider(settings, lookup)
    record = lookup.record(domain.removeprefix("*."), f"vcs-acme-check-{secrets.token_hex(8)}")
    provider.add(record.zone, [record])
    try:
        provider.remove(record.zone, [record])
    except DnsError as error:
        raise DnsError(
            f"{error}; the check's record {record.value!r} at {record.name} stays until removed "
            "by hand",
            transient=error.transient,
        ) from error
    return (
        f"{record.name} in zone {record.zone} can be added and removed "
        f"({provider.describe(record.zone)})"
    )
