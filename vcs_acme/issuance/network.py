"""Signed requests to the CA: the ``acme`` library's network layer, made patient.

Two things differ from the library: a ``badNonce`` answer is retried a bounded number of
times with the fresh nonce that answer carries (RFC 8555 section 6.5), where the library
retries once after fetching a new nonce; and the trust for the CA's TLS is passed on every
request, so that ``REQUESTS_CA_BUNDLE`` in the environment cannot replace a configured file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests
from acme import client as acme_client
from acme import messages
from josepy import interfaces as jose_interfaces
from josepy import jwa, jwk

from vcs_acme import __version__

logger = logging.getLogger(__name__)

USER_AGENT = f"vcs-acme/{__version__}"
BAD_NONCE_RETRIES = 10

#: Called with the seconds each request to the CA took (the daemon feeds its metrics).
REQUEST_OBSERVERS: list[Callable[[float], None]] = []


class Network(acme_client.ClientNetwork):
    """``ClientNetwork`` with bounded ``badNonce`` retries."""

    def __init__(
        self,
        key: jwk.JWK,
        *,
        alg: jwa.JWASignature,
        verify: bool | str,
        timeout: float,
        bad_nonce_retries: int = BAD_NONCE_RETRIES,
    ) -> None:
        # The library annotates verify_ssl as bool, yet hands it to requests as ``verify``,
        # which takes a CA file path just as well; a path is what a private CA needs.
        super().__init__(
            key,
            alg=alg,
            verify_ssl=verify,  # type: ignore[arg-type]
            user_agent=USER_AGENT,
            timeout=int(timeout),
        )
        self.bad_nonce_retries = bad_nonce_retries

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        started = time.perf_counter()
        try:
            return super()._send_request(method, url, *args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            for observe in REQUEST_OBSERVERS:
                observe(elapsed)

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        for attempt in range(self.bad_nonce_retries + 1):
            try:
                return self._post_once(*args, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce" or attempt == self.bad_nonce_retries:
                    raise
                logger.debug("badNonce (attempt %d), retrying with the fresh nonce", attempt + 1)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post_once(
        self,
        url: str,
        obj: jose_interfaces.JSONDeSerializable,
        content_type: str = acme_client.ClientNetwork.JOSE_CONTENT_TYPE,
        **kwargs: Any,
    ) -> requests.Response:
        new_nonce_url = kwargs.pop("new_nonce_url", None)
        data = self._wrap_in_jws(obj, self._get_nonce(url, new_nonce_url), url)
        kwargs.setdefault("headers", {"Content-Type": content_type})
        response = self._send_request("POST", url, data=data, **kwargs)
        # Keep the nonce of every answer, errors included: a badNonce problem carries the
        # fresh nonce to use next, which saves a round trip to newNonce.
        if self.REPLAY_NONCE_HEADER in response.headers:
            self._add_nonce(response)
        _raise_conflict_problem(response)
        checked = self._check_response(response, content_type=content_type)
        if self.REPLAY_NONCE_HEADER not in response.headers:
            logger.debug("answer from %s carried no Replay-Nonce", url)
        return checked


def _raise_conflict_problem(response: requests.Response) -> None:
    """Raise the problem document of a 409 answer, which the library would discard.

    CAs answer some refusals with 409 Conflict and a problem document, such as ARI's
    ``alreadyReplaced``; the library turns every 409 into a bare ConflictError.
    """
    if response.status_code != 409:
        return
    try:
        document = response.json()
    except ValueError:
        return
    if isinstance(document, dict) and "type" in document:
        raise messages.Error.from_json(document)
