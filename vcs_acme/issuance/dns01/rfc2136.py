"""Adding and removing TXT records by dynamic update (RFC 2136), signed with TSIG (RFC 8945).

All records of one zone travel in one update message, which the server applies completely
or not at all (RFC 2136 section 3.7). A removal names each record with its value (section
2.5.4), so other TXT records at the same name, such as those of another certificate being
validated at the same moment, are left alone.

Updates go over TCP: the answer to a signed update is signed too, and TCP has no size limit
to trip over. The server is the configured one, else the primary named in the zone's SOA.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update

from vcs_acme.config import DnsSettings
from vcs_acme.issuance.dns01 import DnsError, TxtRecord, address_text
from vcs_acme.issuance.dns01.lookup import Lookup

logger = logging.getLogger(__name__)

# Short, so that a record a crash left behind soon stops being served from caches.
RECORD_TTL = 60

# The server's TSIG errors (RFC 8945 section 5.2), by the library's name for them.
TSIG_ERRORS: dict[type[dns.tsig.PeerError], str] = {
    dns.tsig.PeerBadSignature: "BADSIG",
    dns.tsig.PeerBadKey: "BADKEY",
    dns.tsig.PeerBadTime: "BADTIME",
    dns.tsig.PeerBadTruncation: "BADTRUNC",
}


class Rfc2136Provider:
    """Updates the zones of one certificate's DNS-01 names."""

    def __init__(self, settings: DnsSettings, lookup: Lookup) -> None:
        self.settings = settings
        self.lookup = lookup
        self._servers: dict[str, tuple[str, int]] = {}

    def add(self, zone: str, records: Sequence[TxtRecord]) -> None:
        """Add every record to the zone, or none of them."""
        self._update(zone, records, adding=True)

    def remove(self, zone: str, records: Sequence[TxtRecord]) -> None:
        """Remove exactly these records (name and value) from the zone."""
        self._update(zone, records, adding=False)

    def describe(self, zone: str) -> str:
        host, port = self.server_for(zone)
        tsig = self.settings.tsig
        key = f"TSIG key {tsig.name}" if tsig else "no TSIG key"
        return f"update at {address_text(host, port)}, {key}"

    def server_for(self, zone: str) -> tuple[str, int]:
        """Where updates of this zone go, as an address and a port."""
        if zone not in self._servers:
            if self.settings.server is not None:
                host, port = self.settings.server
            else:
                # The primary is one of the zone's servers, asked on the same port as the
                # others; RFC 2136 section 4 sends updates there.
                host, port = self.lookup.primary_of(zone), self.settings.nameserver_port
            self._servers[zone] = (self.lookup.addresses_of(host)[0], port)
        return self._servers[zone]

    def _update(self, zone: str, records: Sequence[TxtRecord], *, adding: bool) -> None:
        message = dns.update.UpdateMessage(zone)
        tsig = self.settings.tsig
        if tsig is not None:
            message.use_tsig(dns.tsig.Key(tsig.name, tsig.secret.reveal(), tsig.algorithm))
        for record in records:
            name = dns.name.from_text(record.name)
            value = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, _quoted(record.value))
            if adding:
                message.add(name, RECORD_TTL, value)
            else:
                message.delete(name, value)
        host, port = self.server_for(zone)
        response = self._send(message, zone, host, port)
        self._check(response, zone, records, host, port)
        logger.info(
            "DNS-01: %s %d TXT record(s) %s zone %s at %s",
            "added" if adding else "removed",
            len(records),
            "to" if adding else "from",
            zone,
            address_text(host, port),
        )

    def _send(
        self, message: dns.update.UpdateMessage, zone: str, host: str, port: int
    ) -> dns.message.Message:
        server = address_text(host, port)
        timeout = self.settings.query_timeout_seconds
        try:
            return dns.query.tcp(message, host, timeout=timeout, port=port)
        except dns.tsig.PeerError as error:
            code = TSIG_ERRORS.get(type(error), "TSIG error")
            raise DnsError(
                f"the DNS server {server} refused {self._key_name()} for zone "
                f"{zone} ({code}); check challenge.tsig name, algorithm and secret against "
                "the server's key"
            ) from None
        except dns.tsig.BadSignature:
            raise DnsError(
                f"the answer of {server} for zone {zone} failed the TSIG check; check "
                "challenge.tsig against the server's key"
            ) from None
        except dns.exception.Timeout:
            raise DnsError(
                f"the DNS server {server} did not answer an update of zone {zone} within "
                f"{timeout:g} s; check challenge.server and the firewall",
                transient=True,
            ) from None
        except OSError as error:
            raise DnsError(
                f"cannot reach the DNS server {server} to update zone {zone} "
                f"({error.strerror or error}); check challenge.server and the firewall",
                transient=True,
            ) from None
        except dns.exception.DNSException as error:
            raise DnsError(
                f"the DNS server {server} gave an unreadable answer for zone {zone}: {error}",
                transient=True,
            ) from None

    def _check(
        self,
        response: dns.message.Message,
        zone: str,
        records: Sequence[TxtRecord],
        host: str,
        port: int,
    ) -> None:
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        server = address_text(host, port)
        names = ", ".join(sorted({r.name for r in records}))
        code = dns.rcode.to_text(rcode)
        remedies = {
            dns.rcode.NOTAUTH: f"it is not the primary of zone {zone}, or it did not accept "
            "the request's signature; check challenge.server, challenge.zone and challenge.tsig",
            dns.rcode.REFUSED: f"{self._key_name()} may not update {names}; check the zone's "
            "allow-update or update-policy on the server",
            dns.rcode.NOTZONE: f"{names} is not inside zone {zone}; check challenge.zone",
        }
        remedy = remedies.get(rcode, "see the server's log")
        raise DnsError(
            f"the DNS server {server} refused the update of zone {zone} ({code}): {remedy}",
            transient=rcode == dns.rcode.SERVFAIL,
        )

    def _key_name(self) -> str:
        tsig = self.settings.tsig
        return f"the TSIG key {tsig.name}" if tsig else "this host (no TSIG key is configured)"


def _quoted(value: str) -> str:
    # Key authorization digests are base64url (RFC 8555 section 8.4): nothing to escape.
    return f'"{value}"'
