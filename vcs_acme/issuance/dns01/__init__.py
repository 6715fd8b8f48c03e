"""DNS-01 (RFC 8555 section 8.4): a TXT record at ``_acme-challenge.<name>`` proves a name.

``lookup`` finds where a record goes: it follows an ``_acme-challenge`` CNAME into a
delegated validation zone, finds the zone by its SOA, the primary and the name servers.
``rfc2136`` (dynamic updates, RFC 2136, signed with TSIG, RFC 8945) and ``hook`` (an
administrator's command) add and remove records; ``propagation`` waits until every
authoritative server of a zone shows them; ``solver`` does all of this for one certificate;
``probe`` is what ``vcs-acme check`` runs.

Every failure is a :class:`DnsError`: an :class:`~vcs_acme.errors.AcmeError` whose message
is one line saying what to fix, marked transient when trying later may help.
"""

from __future__ import annotations

from dataclasses import dataclass

from vcs_acme.errors import AcmeError


class DnsError(AcmeError):
    """DNS could not be asked or updated."""


@dataclass(frozen=True)
class TxtRecord:
    """One validation record: where it goes and what it says."""

    domain: str  # the name it proves
    name: str  # where it goes (after any CNAME), absolute, without the final dot
    zone: str  # the zone that holds it, without the final dot
    value: str


def address_text(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
