"""401 and 403 (SPEC §3) in the list shape, checked before anything else, publishing nothing."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.api.fakes import FakeGateway
from tests.api.requests import SIGNATURE, registration
from tests.api.shapes import assert_listed
from tests.api.tokens import TokenMint
from tests.support.claims import CLIENT_ID

DEVICE_ID = str(uuid.uuid4())
ENDPOINTS = [
    ("POST", "/v1/mfa/devices"),
    ("GET", "/v1/mfa/devices?filter[person_id]=person-1"),
    ("GET", f"/v1/mfa/devices/{DEVICE_ID}"),
    ("DELETE", f"/v1/mfa/devices/{DEVICE_ID}"),
    ("PUT", f"/v1/mfa/challenges/signatures/{uuid.uuid4()}"),
    ("GET", f"/v1/mfa/challenges/signatures/{uuid.uuid4()}"),
]
PUT_URL = ENDPOINTS[4][1]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
async def test_every_endpoint_needs_a_token(
    client: httpx.AsyncClient, gateway: FakeGateway, method: str, url: str
) -> None:
    body = registration() if method == "POST" else {"signature": SIGNATURE}
    response = await client.request(method, url, json=body)
    item = assert_listed(response, 401, "unauthorized", "Authorization")
    assert item["detail"] == "bearer token missing"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert gateway.sent == []


def _authorization(kind: str, mint: TokenMint) -> str:
    match kind:
        case "empty":
            return ""
        case "bearer-only":
            return "Bearer"
        case "basic":
            return f"Basic {mint.token()}"
        case "malformed":
            return "Bearer not.a.jwt"
        case "garbage":
            return "Bearer abc"
        case "expired":
            return f"Bearer {mint.token(exp=int(time.time()) - 3600)}"
        case "wrong-key":
            return f"Bearer {mint.token(key=ec.generate_private_key(ec.SECP256R1()))}"
        case "issuer":
            return f"Bearer {mint.token(iss='https://evil.test')}"
        case "audience":
            return f"Bearer {mint.token(aud='other-api')}"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "detail"),
    [
        ("empty", "bearer token missing"),
        ("bearer-only", "bearer token missing"),
        ("basic", "authorization scheme must be Bearer"),
        ("malformed", "token malformed"),
        ("garbage", "token malformed"),
        ("expired", "token expired"),
        ("wrong-key", "token signature invalid"),
        ("issuer", "token issuer not accepted"),
        ("audience", "token audience not accepted"),
    ],
)
async def test_unusable_token_is_401(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint, kind: str, detail: str
) -> None:
    header = _authorization(kind, mint)
    response = await client.put(
        PUT_URL, json={"signature": SIGNATURE}, headers={"Authorization": header}
    )
    item = assert_listed(response, 401, "unauthorized", "Authorization")
    assert item["detail"] == detail
    token = header.split()[-1] if header.split() else ""
    if len(token) > 8:
        assert token not in response.text
    assert gateway.sent == []


@pytest.mark.parametrize("scope", [None, "", "openid profile", "mfa:device-binding:read"])
async def test_token_without_the_scope_is_403(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint, scope: str | None
) -> None:
    response = await client.put(
        PUT_URL, json={"signature": SIGNATURE}, headers=mint.headers(scope=scope)
    )
    item = assert_listed(response, 403, "insufficient_scope", "Authorization")
    assert "mfa:device-binding" in item["detail"]
    assert gateway.sent == []


@pytest.mark.parametrize(
    ("url", "content"),
    [
        (PUT_URL, b"not json"),
        (PUT_URL, b'{"signature": ""}'),
        ("/v1/mfa/challenges/signatures/not-a-uuid", b"{}"),
    ],
)
async def test_authentication_comes_before_validation(
    client: httpx.AsyncClient, gateway: FakeGateway, url: str, content: bytes
) -> None:
    headers = {"Content-Type": "application/json"}
    response = await client.put(url, content=content, headers=headers)
    assert_listed(response, 401, "unauthorized", "Authorization")
    assert gateway.sent == []


async def test_list_filter_is_checked_after_authentication(
    client: httpx.AsyncClient, mint: TokenMint
) -> None:
    response = await client.get("/v1/mfa/devices", headers=mint.headers(scope="openid"))
    assert_listed(response, 403, "insufficient_scope", "Authorization")


async def test_client_id_of_the_token_names_the_caller(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    await client.get(ENDPOINTS[2][1], headers=mint.headers())
    await client.get(ENDPOINTS[2][1], headers=mint.headers(client_id=None, sub="sub-client"))
    assert [command.client_id for command in gateway.sent] == [CLIENT_ID, "sub-client"]
