"""One order from start to certificate (RFC 8555 section 7.4).

new order → publish every challenge → wait until all are visible → answer them together →
wait for the authorizations → finalize → download the certificate and its alternate chains
→ choose a chain.

Each name is proven by the :class:`Solver` the caller maps it to. All of a solver's
challenges are published at once and waited for once, so a certificate with many DNS-01
names costs one propagation wait. Whatever happens, each solver withdraws exactly what it
published; and when proving fails, the authorizations still pending are deactivated
(section 7.5.2), so that no order stays open at the CA.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from acme import challenges, messages
from josepy import jwk

from vcs_acme.errors import AcmeError, ProblemError
from vcs_acme.issuance.chains import choose_chain
from vcs_acme.issuance.client import AcmeClient, replaces_rejected
from vcs_acme.issuance.problems import translated

logger = logging.getLogger(__name__)

ORDER_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class OrderRequest:
    names: tuple[str, ...]
    csr_pem: bytes
    profile: str | None = None
    replaces: str | None = None
    preferred_chain: str | None = None


@dataclass(frozen=True)
class OpenChallenge:
    """A challenge to be met for one identifier of the order."""

    identifier: str  # as the CA names it: without the "*." of a wildcard
    body: messages.ChallengeBody


class Solver(Protocol):
    """Puts challenge responses where the CA looks, and takes them away again."""

    challenge_type: type[challenges.KeyAuthorizationChallenge]

    def publish(self, open_challenges: Sequence[OpenChallenge], account_key: jwk.JWK) -> None:
        """Put every response in place; what was published is withdrawn later even on error."""

    def await_visible(self, deadline: float) -> None:
        """Return once the CA can see every published response (monotonic deadline)."""

    def withdraw(self) -> None:
        """Remove exactly what was published; never raise."""


@dataclass(frozen=True)
class OrderOutcome:
    fullchain_pem: bytes
    chain_matched: bool
    chain_top: str | None
    profile: str | None
    replaces_sent: bool
    order_url: str
    all_chains: tuple[bytes, ...] = ()


def place_order(
    client: AcmeClient,
    request: OrderRequest,
    solvers: Mapping[str, Solver],
    *,
    timeout: float = ORDER_TIMEOUT_SECONDS,
) -> OrderOutcome:
    """Run one order to its certificate; raise :class:`AcmeError` with the CA's reason.

    ``solvers`` maps every name of the request (as configured, wildcards with their "*.")
    to the solver that proves it.
    """
    deadline = time.monotonic() + timeout
    _check_profile(client, request.profile)
    order, replaces_sent = _new_order(client, request)
    used: list[Solver] = []
    try:
        with translated(f"validating {', '.join(request.names)}"):
            order = _prove(client, order, solvers, used, deadline)
    except BaseException:
        _abandon(client, order)
        raise
    finally:
        for solver in used:
            solver.withdraw()
    with translated("finalizing the order"):
        order = client.finalize(order, deadline)
    alternates = [pem.encode() for pem in order.alternative_fullchains_pem or []]
    choice = choose_chain(order.fullchain_pem.encode(), alternates, request.preferred_chain)
    if not choice.matched:
        logger.warning(
            "no chain leads to %r; using the CA's default chain (up to %r)",
            request.preferred_chain,
            choice.top_issuer,
        )
    return OrderOutcome(
        fullchain_pem=choice.fullchain_pem,
        chain_matched=choice.matched,
        chain_top=choice.top_issuer,
        profile=order.body.profile or request.profile,
        replaces_sent=replaces_sent,
        order_url=str(order.uri),
        all_chains=(order.fullchain_pem.encode(), *alternates),
    )


def _check_profile(client: AcmeClient, profile: str | None) -> None:
    if profile is None:
        return
    offered = client.profiles
    if not offered:
        logger.warning("the CA advertises no profiles; asking for %r anyway", profile)
        return
    if profile not in offered:
        raise AcmeError(
            f"the CA offers no profile {profile!r}; it offers: {', '.join(sorted(offered))}"
        )


def _new_order(client: AcmeClient, request: OrderRequest) -> tuple[messages.OrderResource, bool]:
    replaces = request.replaces if client.has("renewalInfo") else None
    context = f"ordering a certificate for {', '.join(request.names)}"
    try:
        with translated(context):
            order = client.new_order(request.csr_pem, request.names, request.profile, replaces)
        return order, replaces is not None
    except ProblemError as error:
        if replaces is None or not replaces_rejected(error):
            raise
        # Some CAs refuse a 'replaces' they do not like (draft-ietf-acme-ari section 5);
        # the renewal itself must not fail for that.
        logger.warning("the CA refused 'replaces' (%s); ordering without it", error.detail)
    with translated(context):
        return client.new_order(request.csr_pem, request.names, request.profile, None), False


def _prove(
    client: AcmeClient,
    order: messages.OrderResource,
    solvers: Mapping[str, Solver],
    used: list[Solver],
    deadline: float,
) -> messages.OrderResource:
    """Publish everything, wait once per solver, then let the CA look at all of it."""
    plan = _plan(order, solvers)
    account_key = client.net.key
    assert isinstance(account_key, jwk.JWK)
    for solver, open_challenges in plan:
        used.append(solver)  # before publishing: a partial publication is withdrawn too
        solver.publish(open_challenges, account_key)
    for solver, _open in plan:
        solver.await_visible(deadline)
    for _solver, open_challenges in plan:
        for challenge in open_challenges:
            client.answer(challenge.body)
    return client.wait_for_authorizations(order, deadline)


def _plan(
    order: messages.OrderResource, solvers: Mapping[str, Solver]
) -> list[tuple[Solver, list[OpenChallenge]]]:
    """The pending challenges, grouped by the solver that meets them."""
    groups: dict[int, tuple[Solver, list[OpenChallenge]]] = {}
    for authorization in order.authorizations:
        if authorization.body.status == messages.STATUS_VALID:
            continue  # reused from an earlier order (RFC 8555 section 7.1.4)
        identifier = authorization.body.identifier.value
        name = f"*.{identifier}" if authorization.body.wildcard else identifier
        solver = solvers.get(name)
        if solver is None:
            raise AcmeError(f"the CA asks to prove {name}, which was not requested")
        body = _challenge_of(authorization, name, solver.challenge_type)
        groups.setdefault(id(solver), (solver, []))[1].append(OpenChallenge(identifier, body))
    return list(groups.values())


def _challenge_of(
    authorization: messages.AuthorizationResource,
    name: str,
    kind: type[challenges.KeyAuthorizationChallenge],
) -> messages.ChallengeBody:
    for challenge in authorization.body.challenges:
        if isinstance(challenge.chall, kind):
            return challenge
    wanted = str(kind.typ).upper()
    offered = ", ".join(str(c.chall.typ) for c in authorization.body.challenges)
    raise AcmeError(f"the CA offers no {wanted} challenge for {name} (it offers: {offered})")


def _abandon(client: AcmeClient, order: messages.OrderResource) -> None:
    """Deactivate the authorizations still pending, so that the order does not stay open.

    A failure here is only logged: the error that made the order fail is what matters.
    """
    deactivated = 0
    for authorization in order.authorizations:
        if authorization.body.status != messages.STATUS_PENDING:
            continue
        name = authorization.body.identifier.value
        try:
            with translated(f"deactivating the authorization of {name}"):
                current = client.authorization(authorization.uri)
                if current.body.status == messages.STATUS_PENDING:
                    client.v2.deactivate_authorization(current)
                    deactivated += 1
        except AcmeError as error:
            logger.warning("%s", error)
    if deactivated:
        logger.info("deactivated %d pending authorization(s) of the failed order", deactivated)
