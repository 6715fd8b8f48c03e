"""CA answers turned into one-line errors that say what to do.

Every RFC 8555 problem type (section 6.7), plus the ARI ``alreadyReplaced`` of
draft-ietf-acme-ari, has a remedy here. Transient problems are marked so, for the retry logic.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from acme import errors as acme_errors
from acme import messages

from vcs_acme.errors import AcmeError, ProblemError

VALIDATION_REMEDY = (
    "check that the CA can reach this host for the challenge (DNS, firewall, the HTTP-01 "
    "listen address)"
)

REMEDIES: dict[str, str] = {
    "accountDoesNotExist": "the stored account is unknown to the CA; remove the account folder "
    "in the state folder so that a new one is registered",
    "alreadyReplaced": "this certificate was already replaced; the next run orders without "
    "'replaces'",
    "alreadyRevoked": "nothing to do: the certificate is revoked already",
    "badCSR": "check the certificate's key_type and domains against what the CA accepts",
    "badNonce": "the CA kept refusing nonces; try again later",
    "badPublicKey": "choose another acme.account_key_type",
    "badRevocationReason": "use a revocation reason the CA allows",
    "badSignatureAlgorithm": "choose another acme.account_key_type",
    "caa": "a CAA record of the domain forbids this CA; add one that names it",
    "compound": "see each problem listed",
    "connection": VALIDATION_REMEDY,
    "dns": "check the domain's DNS records as the CA sees them",
    "dnssec": "repair the domain's DNSSEC signatures",
    "externalAccountRequired": "this CA requires External Account Binding: set [acme.eab] "
    "key_id and hmac_key",
    "incorrectResponse": VALIDATION_REMEDY,
    "invalidContact": "correct acme.contact",
    "invalidEmail": "correct acme.contact",
    "malformed": "the CA refused the request as malformed; run with --log-level debug and "
    "report it",
    "orderNotReady": "the order is not ready; try again",
    "rateLimited": "the CA's rate limit was reached; wait until the time given",
    "rejectedIdentifier": "the CA will not issue for this name: remove it or use another CA",
    "serverInternal": "the CA had an internal error; try again later",
    "tls": VALIDATION_REMEDY,
    "unauthorized": "the account is not allowed to do this (wrong EAB key, or a name the "
    "account may not use)",
    "unknownHost": "the CA cannot resolve this name; check its DNS records",
    "unsupportedContact": "use a mailto: contact in acme.contact",
    "unsupportedIdentifier": "use DNS names only",
    "userActionRequired": "visit the URL the CA gives and follow its instructions",
}

TRANSIENT = {"badNonce", "rateLimited", "serverInternal", "orderNotReady", "connection", "dns"}


def code_of(problem: messages.Error) -> str:
    """The problem type's last part, also for types the library does not know."""
    return str(problem.typ).rsplit(":", maxsplit=1)[-1]


def from_problem(
    problem: messages.Error, context: str, retry_after: dt.datetime | None = None
) -> ProblemError:
    code = code_of(problem)
    detail = problem.detail or problem.title or problem.description or "no detail given"
    for sub in problem.subproblems or ():
        name = sub.identifier.value if sub.identifier else "?"
        detail += f"; {name}: {sub.detail or code_of(sub)}"
    remedy = REMEDIES.get(code, "see the CA's documentation for this problem type")
    if code == "rateLimited" and retry_after is not None:
        remedy += f" ({retry_after:%Y-%m-%d %H:%M:%S} UTC)"
    message = f"{context}: the CA said: {detail} ({code}); {remedy}"
    return ProblemError(code, detail, message, transient=code in TRANSIENT, retry_after=retry_after)


def retry_after_of(response: requests.Response | None) -> dt.datetime | None:
    """The ``Retry-After`` header as an aware UTC time, if it is there and readable."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    now = dt.datetime.now(dt.UTC)
    if value.strip().isdigit():
        return now + dt.timedelta(seconds=int(value))
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@contextmanager
def translated(context: str) -> Iterator[None]:
    """Turn the library's and the network's exceptions into :class:`AcmeError`."""
    try:
        yield
    except messages.Error as problem:
        raise from_problem(problem, context) from problem
    except acme_errors.ValidationError as failure:
        raise validation_error(failure.failed_authzrs, context) from failure
    except requests.exceptions.SSLError as error:
        raise AcmeError(
            f"{context}: TLS to the CA failed ({_reason(error)}); check acme.ca_bundle",
            transient=False,
        ) from error
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
        raise AcmeError(
            f"{context}: the CA could not be reached ({_reason(error)}); check the directory "
            "URL and the network",
            transient=True,
        ) from error
    except acme_errors.ClientError as error:
        raise AcmeError(
            f"{context}: unexpected answer from the CA ({error})", transient=True
        ) from error
    except acme_errors.Error as error:
        raise AcmeError(f"{context}: {error}", transient=True) from error


def validation_error(
    authorizations: list[messages.AuthorizationResource], context: str
) -> ProblemError:
    """The first failed challenge of the authorizations, as the CA described it."""
    for authorization in authorizations:
        for challenge in authorization.body.challenges:
            if challenge.error is not None:
                name = authorization.body.identifier.value
                return from_problem(challenge.error, f"{context}: validation of {name} failed")
    names = ", ".join(a.body.identifier.value for a in authorizations)
    return ProblemError(
        "unauthorized",
        "authorization invalid",
        f"{context}: the CA did not accept the authorization of {names}; {VALIDATION_REMEDY}",
    )


def _reason(error: Exception) -> str:
    text = str(error)
    # requests nests urllib3 errors; the innermost reason is the readable part.
    return text.rsplit("(Caused by ", maxsplit=1)[-1].rstrip(")") if text else type(error).__name__
