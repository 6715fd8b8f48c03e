"""Where a validation record goes, asked of the configured resolver or the system's.

The record for ``name`` is ``_acme-challenge.<name>`` unless that is a CNAME: then the CA
follows it (RFC 8555 section 8.4 validates whatever the lookup resolves to), and so the
record goes to the CNAME's target. This is how a validation zone is delegated: the main zone
keeps one CNAME per name and the agent may update only the small zone it points into.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dns.exception
import dns.name
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.SOA
import dns.resolver
import dns.rrset

from vcs_acme.config import DnsSettings
from vcs_acme.issuance.dns01 import DnsError, TxtRecord, address_text

logger = logging.getLogger(__name__)

# Longer CNAME chains than this are a loop or a mistake; resolvers give up near here too.
MAX_CNAMES = 8


class Lookup:
    """The DNS questions DNS-01 needs answered, all through one resolver."""

    def __init__(self, settings: DnsSettings) -> None:
        self.settings = settings
        self._resolver = _make_resolver(settings)

    @property
    def resolver_name(self) -> str:
        if self.settings.resolver is None:
            return "the system's resolver"
        host, port = self.settings.resolver
        return f"the resolver {address_text(host, port)}"

    def record(self, domain: str, value: str) -> TxtRecord:
        """The record that proves ``domain``: its place after any CNAME, and its zone."""
        name = self.follow(f"_acme-challenge.{domain}")
        return TxtRecord(domain, name, self.zone_of(name), value)

    def follow(self, name: str) -> str:
        """The end of the CNAME chain that starts at ``name`` (``name`` itself if none)."""
        seen = [name]
        for _hop in range(MAX_CNAMES):
            try:
                rrset = self._ask(seen[-1], "CNAME")
            except DnsError as error:
                # An answer that is not an answer (REFUSED): no server takes the name.
                if error.transient:
                    raise
                raise DnsError(f"no DNS zone found for {seen[-1]}: {error}") from None
            if rrset is None:
                return seen[-1]
            target = rrset[0]
            assert isinstance(target, dns.rdtypes.ANY.CNAME.CNAME)
            following = _text(target.target)
            logger.info("DNS-01: %s is a CNAME to %s; the record goes there", seen[-1], following)
            if following in seen:
                raise DnsError(f"the CNAMEs starting at {name} form a loop; fix them")
            seen.append(following)
        raise DnsError(f"more than {MAX_CNAMES} CNAMEs follow {name}; shorten the chain")

    def zone_of(self, name: str) -> str:
        """The configured zone (which must hold ``name``), else the zone found by its SOA."""
        zone = self.settings.zone
        if zone is not None:
            if not dns.name.from_text(name).is_subdomain(dns.name.from_text(zone)):
                raise DnsError(
                    f"{name} is outside the configured zone {zone}; set challenge.zone to "
                    "the zone that holds it, or leave it out to have it found"
                )
            return zone
        with self._asking(f"the zone of {name}"):
            try:
                found = dns.resolver.zone_for_name(
                    name, resolver=self._resolver, lifetime=self.settings.query_timeout_seconds
                )
            except (dns.resolver.NoNameservers, dns.resolver.NoRootSOA) as error:
                said = _answers(error) if isinstance(error, dns.resolver.NoNameservers) else ""
                raise DnsError(
                    f"no DNS zone found for {name}: {self.resolver_name} answered "
                    f"{said or 'no SOA up to the root'}; check the name and challenge.resolver, "
                    "or set challenge.zone",
                    transient="SERVFAIL" in said,
                ) from None
        if len(found) < 3:
            # The root and top-level zones are the nearest SOA of a name that does not exist
            # (a typing error); nobody may update those.
            raise DnsError(
                f"no DNS zone found for {name}: the nearest is {found.to_text()}, a top-level "
                "zone; check the name, or set challenge.zone"
            )
        return _text(found)

    def primary_of(self, zone: str) -> str:
        """The host the zone's SOA names as its primary (MNAME)."""
        rrset = self._ask(zone, "SOA")
        if rrset is None:
            raise DnsError(f"no SOA record for zone {zone} ({self.resolver_name})")
        soa = rrset[0]
        assert isinstance(soa, dns.rdtypes.ANY.SOA.SOA)
        return _text(soa.mname)

    def nameservers_of(self, zone: str) -> dict[str, list[str]]:
        """Every name server of the zone (its NS records) with its addresses."""
        rrset = self._ask(zone, "NS")
        if rrset is None:
            raise DnsError(f"no NS records for zone {zone} ({self.resolver_name})")
        servers: dict[str, list[str]] = {}
        for rdata in rrset:
            assert isinstance(rdata, dns.rdtypes.ANY.NS.NS)
            host = _text(rdata.target)
            servers[host] = self.addresses_of(host)
        return servers

    def addresses_of(self, host: str) -> list[str]:
        """IPv4 and IPv6 addresses of a host, or the host itself when it is an address."""
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        addresses = [
            rdata.to_text() for kind in ("A", "AAAA") for rdata in self._ask(host, kind) or ()
        ]
        if not addresses:
            raise DnsError(f"{host} has no address ({self.resolver_name})")
        return addresses

    def _ask(self, name: str, kind: str) -> dns.rrset.RRset | None:
        """The records of one type at one name; None when there are none."""
        with self._asking(f"{kind} of {name}"):
            try:
                answer = self._resolver.resolve(name, kind, raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN:
                return None
        return answer.rrset

    @contextmanager
    def _asking(self, what: str) -> Iterator[None]:
        try:
            yield
        except dns.exception.Timeout:
            raise DnsError(
                f"{self.resolver_name} did not answer for {what} within "
                f"{self.settings.query_timeout_seconds:g} s; check challenge.resolver",
                transient=True,
            ) from None
        except dns.resolver.NoNameservers as error:
            answers = _answers(error)
            raise DnsError(
                f"{self.resolver_name} answered {answers} for {what}; check the name and "
                "challenge.resolver (or set challenge.zone)",
                transient="SERVFAIL" in answers,
            ) from None
        except OSError as error:
            raise DnsError(
                f"cannot reach {self.resolver_name} ({error.strerror}); check challenge.resolver",
                transient=True,
            ) from None


def _make_resolver(settings: DnsSettings) -> dns.resolver.Resolver:
    if settings.resolver is None:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            raise DnsError(
                "this host has no resolver configured (/etc/resolv.conf); set challenge.resolver"
            ) from None
    else:
        resolver = dns.resolver.Resolver(configure=False)
        host, port = settings.resolver
        resolver.nameservers = [host]
        resolver.port = port
    resolver.timeout = settings.query_timeout_seconds
    resolver.lifetime = settings.query_timeout_seconds
    return resolver


def _answers(error: dns.resolver.NoNameservers) -> str:
    """What the servers said, from the library's list of (server, tcp, port, error, …)."""
    said = {str(entry[3]) for entry in error.kwargs.get("errors", ())}
    return ", ".join(sorted(said)) or "nothing usable"


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()
