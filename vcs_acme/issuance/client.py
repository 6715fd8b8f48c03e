"""The protocol's resources, spoken through the ``acme`` library with our own pacing.

Polling starts fast (50 ms, doubling) because a CA often validates and signs in
milliseconds, and then honours ``Retry-After`` (RFC 8555 sections 7.5.1 and 7.4), instead of
the library's fixed one-second sleeps. New orders can carry the ARI ``replaces`` field, which
the library lacks.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from acme import client as acme_client
from acme import messages
from cryptography import x509
from josepy import errors as jose_errors
from josepy import json_util

from vcs_acme.errors import AcmeError, ProblemError
from vcs_acme.issuance.network import Network
from vcs_acme.issuance.problems import (
    from_problem,
    retry_after_of,
    translated,
    validation_error,
)
from vcs_acme.pki import ari_certificate_id

logger = logging.getLogger(__name__)

FIRST_POLL_SECONDS = 0.05
LONGEST_POLL_SECONDS = 5.0


class NewOrderWithReplaces(messages.NewOrder):
    """A new order that names the certificate it replaces (draft-ietf-acme-ari section 5)."""

    replaces: str | None = json_util.field("replaces", omitempty=True)


@dataclass(frozen=True)
class RenewalWindow:
    """The CA's answer to a renewalInfo request."""

    start: dt.datetime
    end: dt.datetime
    retry_after: dt.datetime
    explanation_url: str | None


def poll_delays(first: float = FIRST_POLL_SECONDS) -> Iterator[float]:
    """50 ms, 100 ms, 200 ms … up to five seconds, then five seconds each time."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, LONGEST_POLL_SECONDS)


class AcmeClient:
    """One CA, one account key; the resources of RFC 8555 as methods."""

    def __init__(
        self,
        net: Network,
        directory: messages.Directory,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.net = net
        self.directory = directory
        self.v2 = acme_client.ClientV2(directory, net)
        self._sleep = sleep

    @classmethod
    def connect(cls, url: str, net: Network) -> AcmeClient:
        with translated(f"reading the CA directory {url}"):
            directory = acme_client.ClientV2.get_directory(url, net)
        return cls(net, directory)

    def has(self, resource: str) -> bool:
        try:
            self.directory[resource]
        except KeyError:
            return False
        return True

    @property
    def profiles(self) -> dict[str, str]:
        return dict(self.directory.meta.profiles or {})

    def new_order(
        self, csr_pem: bytes, names: tuple[str, ...], profile: str | None, replaces: str | None
    ) -> messages.OrderResource:
        identifiers = [messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=n) for n in names]
        order = NewOrderWithReplaces(identifiers=identifiers, profile=profile, replaces=replaces)
        response = self.v2._post(self.directory["newOrder"], order)
        body = messages.Order.from_json(response.json())
        authorizations = [self.authorization(url) for url in body.authorizations]
        return messages.OrderResource(
            body=body,
            uri=response.headers.get("Location"),
            authorizations=authorizations,
            csr_pem=csr_pem,
        )

    def authorization(self, url: str) -> messages.AuthorizationResource:
        response = self.v2._post_as_get(url)
        return messages.AuthorizationResource(
            body=messages.Authorization.from_json(response.json()), uri=url
        )

    def answer(self, challenge: messages.ChallengeBody) -> None:
        self.v2.answer_challenge(challenge, challenge.response(self.net.key))

    def wait_for_authorizations(
        self, order: messages.OrderResource, deadline: float
    ) -> messages.OrderResource:
        """Poll every pending authorization until none is pending; raise on any invalid one."""
        done: list[messages.AuthorizationResource] = []
        for authorization in order.authorizations:
            delays = poll_delays()
            response: requests.Response | None = None
            while authorization.body.status == messages.STATUS_PENDING:
                response = self._wait_and_get(authorization.uri, delays, deadline, response)
                body = messages.Authorization.from_json(response.json())
                authorization = messages.AuthorizationResource(body=body, uri=authorization.uri)
            done.append(authorization)
        failed = [a for a in done if a.body.status != messages.STATUS_VALID]
        if failed:
            raise validation_error(failed, "order")
        updated: messages.OrderResource = order.update(authorizations=done)
        return updated

    def finalize(self, order: messages.OrderResource, deadline: float) -> messages.OrderResource:
        """Send the CSR, wait for the certificate, fetch it and its alternate chains."""
        response = self.v2._post(
            order.body.finalize,
            messages.CertificateRequest(csr=x509.load_pem_x509_csr(order.csr_pem)),
        )
        body = messages.Order.from_json(response.json())
        delays = poll_delays()
        while body.status in (messages.STATUS_PROCESSING, messages.STATUS_READY):
            response = self._wait_and_get(order.uri, delays, deadline, response)
            body = messages.Order.from_json(response.json())
        if body.status != messages.STATUS_VALID or body.certificate is None:
            if body.error is not None:
                raise from_problem(body.error, "finalizing the order")
            raise AcmeError(f"finalizing the order: the order ended as {body.status}")
        certificate = self.v2._post_as_get(body.certificate)
        alternates = [self.v2._post_as_get(url).text for url in self._links(certificate)]
        finished: messages.OrderResource = order.update(
            body=body, fullchain_pem=certificate.text, alternative_fullchains_pem=alternates
        )
        return finished

    def renewal_window(self, certificate: x509.Certificate) -> RenewalWindow:
        """Ask renewalInfo (draft-ietf-acme-ari section 4.2) about one certificate."""
        url = f"{self.directory['renewalInfo'].rstrip('/')}/{ari_certificate_id(certificate)}"
        with translated("asking the CA for renewal information"):
            response = self.net.get(url, content_type="application/json")
        try:
            info = messages.RenewalInfo.from_json(response.json())
            start, end = info.suggested_window.start, info.suggested_window.end
        except (ValueError, jose_errors.DeserializationError, AttributeError) as error:
            raise AcmeError(f"renewal information from the CA is malformed: {error}") from error
        if start is None or end is None or end < start:
            raise AcmeError("renewal information from the CA has no usable window")
        # Section 4.3: re-ask after Retry-After; six hours when the CA says nothing.
        retry_after = retry_after_of(response) or dt.datetime.now(dt.UTC) + dt.timedelta(hours=6)
        raw: dict[str, Any] = response.json()
        return RenewalWindow(start, end, retry_after, raw.get("explanationURL"))

    def _wait_and_get(
        self,
        url: str,
        delays: Iterator[float],
        deadline: float,
        previous: requests.Response | None = None,
    ) -> requests.Response:
        delay = next(delays)
        hinted = retry_after_of(previous)
        if hinted is not None:
            delay = max(0.0, (hinted - dt.datetime.now(dt.UTC)).total_seconds())
        if time.monotonic() + delay > deadline:
            raise AcmeError("the CA did not finish in time; try again later", transient=True)
        self._sleep(delay)
        return self.v2._post_as_get(url)

    def _links(self, response: requests.Response) -> list[str]:
        return self.v2._get_links(response, "alternate")


# Refusals that ordering without ``replaces`` cannot cure: the same order would meet them.
_NOT_ABOUT_REPLACES = frozenset(
    {
        "rateLimited",
        "accountDoesNotExist",
        "externalAccountRequired",
        "userActionRequired",
        "rejectedIdentifier",
        "unsupportedIdentifier",
    }
)


def replaces_rejected(error: ProblemError) -> bool:
    """Whether a new order that named a predecessor should be sent again without it.

    CAs word and type these refusals differently (``malformed``, ``conflict``,
    ``unauthorized``, ``alreadyReplaced``, even ``serverInternal`` from a CA that cannot find
    the predecessor), so anything but a refusal the plain order would meet as well counts.
    Sending the same ``replaces`` again would fail at every later try: the certificate would
    never be renewed, and losing the CA's rate-limit exemption is the far smaller cost.
    """
    return error.code not in _NOT_ABOUT_REPLACES
