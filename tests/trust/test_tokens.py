"""The token signer remembers what it verified: a remembered token must still expire on time and
still be only the kind of token it was issued as."""

from __future__ import annotations

import time

import pytest

from gateway.auth.principal import Principal
from gateway.auth.tokens import ACCESS, SESSION, TokenSigner
from gateway.errors import Unauthenticated

KEY = b"a-signing-key-for-these-tests-only-32b"
CLIENT = Principal(id="gp-system", kind="client", ods="A81001", scopes=frozenset({"system/ServiceRequest.write"}))


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    signer = TokenSigner(KEY, "urn:test", clock_skew_s=0)
    token = signer.issue(CLIENT, ACCESS, ttl_s=1).token
    assert signer.verify(token, ACCESS) == CLIENT
    assert signer.verify(token, ACCESS) == CLIENT  # the second time from memory
    time.sleep(2.1)  # past `exp`, which is a whole second
    with pytest.raises(Unauthenticated, match="expired"):
        signer.verify(token, ACCESS)


def test_a_remembered_session_does_not_pass_as_an_access_token() -> None:
    signer = TokenSigner(KEY, "urn:test", clock_skew_s=0)
    session = signer.issue(CLIENT, SESSION, ttl_s=60).token
    assert signer.verify(session, SESSION).id == CLIENT.id
    with pytest.raises(Unauthenticated):
        signer.verify(session, ACCESS)


def test_another_signers_memory_is_its_own() -> None:
    issued = TokenSigner(KEY, "urn:test", clock_skew_s=0).issue(CLIENT, ACCESS, ttl_s=60).token
    other = TokenSigner(b"another-key-another-gateway-32-bytes!", "urn:test", clock_skew_s=0)
    with pytest.raises(Unauthenticated, match="signature"):
        other.verify(issued, ACCESS)
