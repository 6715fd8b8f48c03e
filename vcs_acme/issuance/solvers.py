"""Which solver proves which name of a certificate (its ``challenge`` settings).

A certificate gets at most one solver per challenge type, so that all its DNS-01 names are
published and waited for together. The HTTP-01 responder is shared by every order of a
pass and only started when a pending authorization needs it, so that a certificate proven
by DNS-01 alone never asks for port 80.
"""

from __future__ import annotations

from vcs_acme.config import ChallengeSettings
from vcs_acme.issuance.dns01.solver import Dns01Solver
from vcs_acme.issuance.http01 import Http01Solver, Responders
from vcs_acme.issuance.order import Solver


def solvers_for(
    challenge: ChallengeSettings, domains: tuple[str, ...], responders: Responders
) -> dict[str, Solver]:
    """Each of ``domains`` mapped to the solver of its challenge type."""
    by_type: dict[str, Solver] = {}
    plan: dict[str, Solver] = {}
    for name in domains:
        kind = challenge.type_for(name)
        if kind not in by_type:
            by_type[kind] = _solver(kind, challenge, responders)
        plan[name] = by_type[kind]
    return plan


def _solver(kind: str, challenge: ChallengeSettings, responders: Responders) -> Solver:
    if kind == "dns-01":
        assert challenge.dns is not None, "the configuration sets dns for DNS-01 names"
        return Dns01Solver(challenge.dns)
    return Http01Solver(lambda: responders.get(challenge.listen_host, challenge.listen_port))
