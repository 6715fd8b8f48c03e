"""Choosing among the chains a CA offers (RFC 8555 section 7.4.2, ``rel="alternate"``)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from vcs_acme.pki import common_name, load_certificates


@dataclass(frozen=True)
class ChainChoice:
    fullchain_pem: bytes
    matched: bool
    top_issuer: str | None


def top_issuer(fullchain_pem: bytes) -> str | None:
    """The issuer common name of the chain's last certificate: the root it leads to."""
    certificates = load_certificates(fullchain_pem)
    return common_name(certificates[-1].issuer) if certificates else None


def _names_in(certificates: list[x509.Certificate]) -> set[str]:
    names = {common_name(c.issuer) for c in certificates} | {
        common_name(c.subject) for c in certificates
    }
    return {n for n in names if n}


def choose_chain(default: bytes, alternates: list[bytes], preferred: str | None) -> ChainChoice:
    """Pick the chain whose top certificate is issued by ``preferred``.

    The same rule as other ACME clients: first a chain whose last certificate's issuer has
    that common name; failing that, a chain in which any certificate has it as subject or
    issuer; failing that, the CA's default chain, reported as not matched.
    """
    chains = [default, *alternates]
    if preferred is None:
        return ChainChoice(default, True, top_issuer(default))
    for chain in chains:
        if top_issuer(chain) == preferred:
            return ChainChoice(chain, True, preferred)
    for chain in chains:
        if preferred in _names_in(load_certificates(chain)):
            return ChainChoice(chain, True, top_issuer(chain))
    return ChainChoice(default, False, top_issuer(default))
