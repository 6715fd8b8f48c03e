"""One order from start to certificate (RFC 8555 section 7.4).

new order → publish every challenge → answer them together → wait for the authorizations →
finalize → download the certificate and its alternate chains → choose a chain. Challenges
are withdrawn from the responder whatever happens.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from acme import challenges, messages

from vcs_acme.errors import AcmeError, ProblemError
from vcs_acme.issuance.chains import choose_chain
from vcs_acme.issuance.client import AcmeClient, replaces_rejected
from vcs_acme.issuance.http01 import Http01Responder
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
    responder: Http01Responder,
    *,
    timeout: float = ORDER_TIMEOUT_SECONDS,
) -> OrderOutcome:
    """Run one order to its certificate; raise :class:`AcmeError` with the CA's reason."""
    deadline = time.monotonic() + timeout
    _check_profile(client, request.profile)
    order, replaces_sent = _new_order(client, request)
    tokens: list[str] = []
    try:
        with translated(f"validating {', '.join(request.names)}"):
            pending = _publish(client, order, responder, tokens)
            for challenge in pending:
                client.answer(challenge)
            order = client.wait_for_authorizations(order, deadline)
        with translated("finalizing the order"):
            order = client.finalize(order, deadline)
    finally:
        for token in tokens:
            responder.remove(token)
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


def _publish(
    client: AcmeClient,
    order: messages.OrderResource,
    responder: Http01Responder,
    tokens: list[str],
) -> list[messages.ChallengeBody]:
    """Put every challenge in place first; the CA is told to look only afterwards."""
    pending: list[messages.ChallengeBody] = []
    for authorization in order.authorizations:
        if authorization.body.status == messages.STATUS_VALID:
            continue
        challenge = _http01(authorization)
        token = challenge.chall.encode("token")
        responder.add(token, challenge.chall.key_authorization(client.net.key))
        tokens.append(token)
        pending.append(challenge)
    return pending


def _http01(authorization: messages.AuthorizationResource) -> messages.ChallengeBody:
    for challenge in authorization.body.challenges:
        if isinstance(challenge.chall, challenges.HTTP01):
            return challenge
    name = authorization.body.identifier.value
    offered = ", ".join(str(c.chall.typ) for c in authorization.body.challenges)
    raise AcmeError(f"the CA offers no HTTP-01 challenge for {name} (it offers: {offered})")
