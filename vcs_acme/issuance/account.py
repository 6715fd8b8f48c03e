"""The ACME account: registered once per CA, stored, and reused.

The account key and the account URL are kept in the state folder
(``accounts/<host>-<hash>/``). A stored account is used as it is, without asking the CA
again: RFC 8555 section 7.3.1 lets the ``kid`` alone identify it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from acme import messages
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy import jwa, jwk

from vcs_acme.config import AcmeSettings
from vcs_acme.errors import AcmeError
from vcs_acme.issuance.client import AcmeClient
from vcs_acme.issuance.network import Network
from vcs_acme.issuance.problems import translated
from vcs_acme.pki import PrivateKey, generate_key, key_to_pem, load_key
from vcs_acme.store import Store

logger = logging.getLogger(__name__)


@dataclass
class Account:
    """A connected client with its account, ready to order."""

    client: AcmeClient
    uri: str
    created: bool


def signature_algorithm(key: PrivateKey) -> jwa.JWASignature:
    """RS256 for RSA; ES256/ES384 by curve (RFC 7518 section 3.4)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return jwa.RS256
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return {256: jwa.ES256, 384: jwa.ES384}[key.curve.key_size]


def jwk_of(key: PrivateKey) -> jwk.JWK:
    if isinstance(key, rsa.RSAPrivateKey):
        return jwk.JWKRSA(key=key)
    return jwk.JWKEC(key=key)


def _public_key(client: AcmeClient) -> jwk.JWK:
    key = client.net.key
    assert key is not None, "the network is always built with the account key"
    public: jwk.JWK = key.public_key()
    return public


def open_account(
    settings: AcmeSettings, store: Store, *, save: bool = True, register: bool = False
) -> Account:
    """Connect to the CA with the stored account, or register one (and store it if ``save``).

    ``register`` registers the stored key again, for a CA that no longer knows the account
    (RFC 8555 section 7.3: a newAccount with a known key returns that key's account).
    """
    stored = store.load_account(settings.directory_url)
    key = load_key(stored.key_pem) if stored else generate_key(settings.account_key_type)
    net = Network(
        jwk_of(key),
        alg=signature_algorithm(key),
        verify=str(settings.ca_bundle) if settings.ca_bundle else True,
        timeout=settings.timeout_seconds,
    )
    client = AcmeClient.connect(settings.directory_url, net)
    if stored and not register:
        uri = str(stored.data["uri"])
        net.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
        logger.debug("using the stored account %s", uri)
        return Account(client, uri, created=False)

    uri = _register(client, settings)
    if save:
        store.ensure()
        created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        data = {"uri": uri, "directory": settings.directory_url, "created": created}
        store.save_account(settings.directory_url, key_to_pem(key), data)
    return Account(client, uri, created=True)


def _register(client: AcmeClient, settings: AcmeSettings) -> str:
    terms = client.directory.meta.terms_of_service
    if terms and not settings.agree_to_terms:
        raise AcmeError(
            f"the CA asks to agree to its terms of service ({terms}); set "
            "acme.agree_to_terms = true once you have read them"
        )
    registration = messages.NewRegistration.from_data(
        email=None, terms_of_service_agreed=bool(terms)
    )
    registration = registration.update(contact=settings.contact)
    if settings.eab is not None:
        binding = messages.ExternalAccountBinding.from_data(
            account_public_key=_public_key(client),
            kid=settings.eab.key_id,
            hmac_key=settings.eab.hmac_key.reveal(),
            directory=client.directory,
            hmac_alg=settings.eab.algorithm,
        )
        registration = registration.update(external_account_binding=binding)
    elif client.directory.meta.external_account_required:
        raise AcmeError(
            "this CA requires External Account Binding: set acme.eab.key_id and "
            "acme.eab.hmac_key from the values the CA gave you"
        )
    with translated("registering an account"):
        resource = client.v2.new_account(registration)
    logger.info("registered a new account at the CA: %s", resource.uri)
    return str(resource.uri)
