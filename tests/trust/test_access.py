"""Authentication and authorization through the running gateway: each scope opens its routes and
only those, an organisation sees only its own referrals, bad tokens get 401, and every refusal is
an OperationOutcome."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from gateway.auth.tokens import ACCESS
from tests import samples
from tests.conftest import RunningGateway, add_client, token_for

SENDER, RECEIVER, STRANGER = "A81001", "RX1PN", "Y99999"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def client_with(gateway: RunningGateway, scopes: str, ods: str = SENDER) -> httpx.AsyncClient:
    client_id = f"c-{ods.lower()}-{abs(hash(scopes)) % 10**8}"
    secret = await add_client(gateway, client_id, ods, scopes)
    token = await token_for(gateway, client_id, secret)
    return httpx.AsyncClient(base_url=gateway.base_url, timeout=30, headers=bearer(token))


async def create_referral(gateway: RunningGateway) -> dict[str, Any]:
    async with gateway.client() as admin:
        response = await admin.post("/fhir/ServiceRequest", json=samples.service_request())
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_outcome(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


#: scope → a request it allows (status expected) and a request it does not.
SCOPE_CASES = [
    ("system/ServiceRequest.write", ("POST", "/fhir/ServiceRequest"), ("GET", "/fhir/ServiceRequest")),
    ("system/ServiceRequest.read", ("GET", "/fhir/ServiceRequest"), ("POST", "/fhir/ServiceRequest")),
    ("system/Task.read", ("GET", "/fhir/Task"), ("GET", "/fhir/ServiceRequest")),
    ("system/*.read", ("GET", "/fhir/Task"), ("POST", "/fhir/ServiceRequest")),
    ("system/AuditEvent.read", ("GET", "/fhir/AuditEvent"), ("GET", "/fhir/Task")),
    ("system/QuestionnaireResponse.write", ("GET", "/fhir/Questionnaire/iapt-prescription-pad"), ("GET", "/fhir/Task")),
]


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
async def test_each_scope_opens_its_routes_and_no_others(running_gateway: RunningGateway) -> None:
    for scope, (method, path), (refused_method, refused_path) in SCOPE_CASES:
        async with await client_with(running_gateway, scope) as client:
            body = samples.service_request() if method == "POST" else None
            allowed = await client.request(method, path, json=body)
            assert allowed.status_code in (200, 201), (scope, allowed.text)
            refused = await client.request(refused_method, refused_path, json=samples.service_request())
            assert_outcome(refused, 403)
            assert scope not in refused.text or "needs one of" in refused.text


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
async def test_a_token_endpoint_grant_is_limited_to_the_scopes_asked_for(running_gateway: RunningGateway) -> None:
    secret = await add_client(running_gateway, "narrow", SENDER, "system/ServiceRequest.read system/Task.read")
    token = await token_for(running_gateway, "narrow", secret, scope="system/Task.read")
    async with httpx.AsyncClient(base_url=running_gateway.base_url, headers=bearer(token)) as client:
        assert (await client.get("/fhir/Task")).status_code == 200
        assert_outcome(await client.get("/fhir/ServiceRequest"), 403)


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
async def test_organisations_read_and_update_only_their_own_referrals(running_gateway: RunningGateway) -> None:
    referral = await create_referral(running_gateway)
    path = f"/fhir/ServiceRequest/{referral['id']}"
    scopes = "system/ServiceRequest.read system/ServiceRequest.write system/Task.read system/Task.write"
    for ods, may in ((SENDER, True), (RECEIVER, True), (STRANGER, False)):
        async with await client_with(running_gateway, scopes, ods) as client:
            read = await client.get(path)
            assert read.status_code == (200 if may else 403), (ods, read.text)
            search = await client.get("/fhir/ServiceRequest")
            ids = [e["resource"]["id"] for e in search.json().get("entry", [])]
            assert (referral["id"] in ids) is may, (ods, ids)
            if not may:
                assert_outcome(read, 403)
                update = await client.put(path, json={**referral, "priority": "urgent"})
                assert_outcome(update, 403)
                tasks = await client.get("/fhir/Task")
                assert all(
                    e["resource"]["focus"]["reference"] != f"ServiceRequest/{referral['id']}"
                    for e in tasks.json().get("entry", [])
                )


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
async def test_an_organisation_cannot_send_a_referral_as_another(running_gateway: RunningGateway) -> None:
    async with await client_with(running_gateway, "system/ServiceRequest.write", STRANGER) as client:
        assert_outcome(await client.post("/fhir/ServiceRequest", json=samples.service_request()), 403)


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
async def test_missing_expired_and_tampered_tokens_get_401(running_gateway: RunningGateway) -> None:
    signer = running_gateway.runtime.auth.signer
    principal = await running_gateway.runtime.auth.registry.check("client", "integration-admin", "wrong")
    assert principal is None
    good = running_gateway.token
    claims = jwt.decode(good, options={"verify_signature": False})
    expired = jwt.encode(
        {**claims, "exp": int(time.time()) - 3600}, signer._key, algorithm="HS256", headers={"typ": ACCESS}
    )
    header, _payload, signature = good.split(".")
    raised = jwt.encode(
        {**claims, "ods": STRANGER}, "not-the-gateway-key-but-long-enough!", algorithm="HS256", headers={"typ": ACCESS}
    )
    tampered = ".".join([header, raised.split(".")[1], signature])
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"typ": ACCESS})
    async with running_gateway.anonymous_client() as client:
        missing = await client.get("/fhir/ServiceRequest")
        assert_outcome(missing, 401)
        assert missing.headers["www-authenticate"].startswith("Bearer")
        for token, says in ((expired, "expired"), (tampered, "signature"), (unsigned, "not valid"), ("x.y.z", "")):
            response = await client.get("/fhir/ServiceRequest", headers=bearer(token))
            assert_outcome(response, 401)
            assert says in response.text
        assert (await client.get("/fhir/ServiceRequest", headers=bearer(good))).status_code == 200


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
async def test_wrong_client_secret_and_removed_partner_are_refused(running_gateway: RunningGateway) -> None:
    secret = await add_client(running_gateway, "leaver", SENDER, "system/Task.read")
    token = await token_for(running_gateway, "leaver", secret)
    async with running_gateway.anonymous_client() as client:
        wrong = await client.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=("leaver", "no"))
        assert wrong.status_code == 401
        await running_gateway.runtime.auth.registry.remove("client", "leaver")
        running_gateway.runtime.auth.registry._known.clear()
        assert_outcome(await client.get("/fhir/Task", headers=bearer(token)), 401)


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
async def test_client_secrets_are_stored_hashed(running_gateway: RunningGateway) -> None:
    secret = await add_client(running_gateway, "hashed", SENDER, "system/Task.read")
    stored = await running_gateway.runtime.auth.registry.credentials.get("client", "hashed")
    assert stored is not None
    assert secret not in stored.secret_hash and stored.secret_hash.startswith("scrypt")
    database = running_gateway.settings.data_dir
    dumped = b"".join(path.read_bytes() for path in database.rglob("*") if path.is_file())
    assert secret.encode() not in dumped


@pytest.mark.parametrize("store_settings", ["sqlite"], indirect=True)
async def test_bodies_over_the_limit_get_413(running_gateway: RunningGateway) -> None:
    limit = running_gateway.settings.api.max_body_bytes
    async with running_gateway.client() as client:
        response = await client.post(
            "/fhir/ServiceRequest",
            content=b"{" + b" " * limit + b"}",
            headers={"content-type": "application/fhir+json"},
        )
    assert_outcome(response, 413)
