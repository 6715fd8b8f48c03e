"""CA problems become one line with the CA's detail and what to do."""

from __future__ import annotations

import pytest
from acme import messages

from vcs_acme.issuance.client import replaces_rejected
from vcs_acme.issuance.problems import REMEDIES, from_problem


def problem(code: str, detail: str) -> messages.Error:
    document = {"type": f"urn:ietf:params:acme:error:{code}", "detail": detail}
    error: messages.Error = messages.Error.from_json(document)
    return error


@pytest.mark.parametrize("code", sorted(messages.ERROR_CODES))
def test_every_problem_type_has_a_remedy(code: str) -> None:
    error = from_problem(problem(code, "the CA's own words"), "ordering")

    assert code in REMEDIES
    assert str(error) == f"ordering: the CA said: the CA's own words ({code}); {REMEDIES[code]}"
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        ("rateLimited", True),
        ("serverInternal", True),
        ("badNonce", True),
        ("rejectedIdentifier", False),
        ("unauthorized", False),
        ("externalAccountRequired", False),
    ],
)
def test_transient_or_permanent(code: str, transient: bool) -> None:
    assert from_problem(problem(code, "x"), "c").transient is transient


def test_subproblems_name_their_identifiers() -> None:
    sub = {
        "type": "urn:ietf:params:acme:error:rejectedIdentifier",
        "detail": "forbidden name",
        "identifier": {"type": "dns", "value": "bad.example"},
    }
    compound = messages.Error.from_json(
        {"type": "urn:ietf:params:acme:error:compound", "detail": "several", "subproblems": [sub]}
    )
    assert "bad.example: forbidden name" in str(from_problem(compound, "ordering"))


def test_unknown_problem_types_keep_their_name() -> None:
    error = from_problem(problem("somethingNew", "odd"), "ordering")
    assert error.code == "somethingNew"
    assert "see the CA's documentation" in str(error)


@pytest.mark.parametrize(
    ("code", "without_replaces"),
    [
        ("malformed", True),  # a CertID the CA cannot parse
        ("unauthorized", True),  # another account's certificate
        ("conflict", True),
        ("alreadyReplaced", True),
        ("serverInternal", True),  # a CA that cannot find the predecessor
        ("somethingNew", True),
        ("rateLimited", False),  # the plain order would meet these as well
        ("rejectedIdentifier", False),
        ("accountDoesNotExist", False),
        ("externalAccountRequired", False),
    ],
)
def test_which_refusals_of_an_order_naming_its_predecessor_are_retried_without_it(
    code: str, without_replaces: bool
) -> None:
    assert replaces_rejected(from_problem(problem(code, "x"), "ordering")) is without_replaces
