"""Waiting until every authoritative name server of a zone serves the new records.

A CA asks one of the zone's name servers, and which one is not known; Let's Encrypt asks
from several places at once. A record that the primary has but a secondary has not yet
transferred can fail validation, and a failed authorization cannot be retried. So each name
server listed in the zone's NS records is asked directly, without recursion, until it shows
every record; a server counts once any of its addresses does.

Looks start fast and slow down (50 ms doubling to 2 s), since a secondary told by NOTIFY
usually has the change within milliseconds, and give up at the configured bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.TXT

from vcs_acme.issuance.dns01 import DnsError, TxtRecord, address_text
from vcs_acme.issuance.dns01.lookup import Lookup

logger = logging.getLogger(__name__)

FIRST_LOOK_SECONDS = 0.05
LONGEST_LOOK_SECONDS = 2.0


@dataclass
class _Server:
    """One name server of a zone and the records it has not shown yet."""

    zone: str
    host: str
    addresses: list[str]
    missing: list[TxtRecord]
    problem: str = field(default="not asked yet")


def await_records(
    lookup: Lookup,
    records: Sequence[TxtRecord],
    *,
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once every name server of every record's zone shows it; raise at the deadline.

    ``deadline`` is a ``time.monotonic()`` value; the configured propagation timeout may
    bring it closer.
    """
    started = time.monotonic()
    settings = lookup.settings
    deadline = min(deadline, started + settings.propagation_timeout_seconds)
    servers = _servers(lookup, records)
    zones = sorted({server.zone for server in servers})
    logger.info(
        "DNS-01: waiting for %d record(s) to show on %d name server(s) of %s",
        len(records),
        len(servers),
        ", ".join(zones),
    )
    delay = FIRST_LOOK_SECONDS
    while True:
        for server in servers:
            _look(server, settings.nameserver_port, settings.query_timeout_seconds)
        servers = [server for server in servers if server.missing]
        if not servers:
            logger.info("DNS-01: every name server shows the records after %.2f s",
                        time.monotonic() - started)  # fmt: skip
            return
        if time.monotonic() + delay > deadline:
            raise _late(servers[0], time.monotonic() - started)
        sleep(delay)
        delay = min(delay * 2, LONGEST_LOOK_SECONDS)


def _servers(lookup: Lookup, records: Sequence[TxtRecord]) -> list[_Server]:
    servers = []
    for zone in sorted({record.zone for record in records}):
        in_zone = [record for record in records if record.zone == zone]
        for host, addresses in lookup.nameservers_of(zone).items():
            servers.append(_Server(zone, host, addresses, list(in_zone)))
    return servers


def _look(server: _Server, port: int, timeout: float) -> None:
    """Strike off the records that one of the server's addresses shows."""
    problems: list[str] = []
    for name in sorted({record.name for record in server.missing}):
        shown: set[str] = set()
        for address in server.addresses:
            try:
                shown |= _values(address, port, name, timeout)
            except _NotShownError as reason:
                problems.append(f"{address_text(address, port)}: {reason}")
        server.missing = [r for r in server.missing if r.name != name or r.value not in shown]
    if server.missing:
        server.problem = problems[-1] if problems else "it does not have the record yet"
        logger.debug("DNS-01: %s does not show %d record(s) yet (%s)",
                     server.host, len(server.missing), server.problem)  # fmt: skip


class _NotShownError(Exception):
    """Why a server showed nothing this time."""


def _values(address: str, port: int, name: str, timeout: float) -> set[str]:
    """The TXT values at ``name`` that one server holds with authority."""
    query = dns.message.make_query(name, dns.rdatatype.TXT)
    query.flags &= ~dns.flags.RD  # its own data, not what it might find elsewhere
    try:
        response, _tcp = dns.query.udp_with_fallback(query, address, timeout=timeout, port=port)
    except dns.exception.Timeout:
        raise _NotShownError(f"no answer within {timeout:g} s") from None
    except (OSError, dns.exception.DNSException) as error:
        raise _NotShownError(str(error) or type(error).__name__) from None
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise _NotShownError(f"answered {dns.rcode.to_text(rcode)}")
    if not response.flags & dns.flags.AA:
        raise _NotShownError("answered without authority for the zone")
    owner = dns.name.from_text(name)
    return {
        b"".join(rdata.strings).decode("utf-8", errors="replace")
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.TXT and rrset.name == owner
        for rdata in rrset
        if isinstance(rdata, dns.rdtypes.ANY.TXT.TXT)
    }


def _late(server: _Server, waited: float) -> DnsError:
    record = server.missing[0]
    return DnsError(
        f"after {waited:.1f} s, the DNS-01 record {record.name} is not yet served by "
        f"{server.host}, a name server of zone {server.zone} ({server.problem}); check that "
        "changes reach all its name servers, or raise challenge.propagation_timeout_seconds",
        transient=True,
    )
