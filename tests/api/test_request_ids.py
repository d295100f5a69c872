"""X-Request-ID: taken from the caller when sane, otherwise a new uuid4; on every answer."""

from __future__ import annotations

import uuid

import httpx
import pytest

from api.request_ids import REQUEST_ID_HEADER, accepted_request_id
from tests.api.fakes import FakeGateway
from tests.api.tokens import TokenMint

CHALLENGE_URL = "/v1/mfa/challenges/signatures/6f1d8f3e-52c9-4a8e-9a57-0d5b8a3f4c21"


@pytest.mark.parametrize(
    "value", ["a", "abc-123", "trace:2024.01_x-Y", "0" * 128, str(uuid.uuid4())]
)
def test_sane_ids_are_kept(value: str) -> None:
    assert accepted_request_id(value) == value


@pytest.mark.parametrize(
    "value", [None, "", "0" * 129, "has space", "semi;colon", "new\nline", "ünï", "<script>", "a/b"]
)
def test_other_ids_are_refused(value: str | None) -> None:
    assert accepted_request_id(value) is None


async def test_callers_id_flows_into_header_and_command(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    headers = mint.headers() | {REQUEST_ID_HEADER: "trace-1"}
    response = await client.get(CHALLENGE_URL, headers=headers)
    assert response.status_code == 200
    assert response.headers[REQUEST_ID_HEADER] == "trace-1"
    assert [command.request_id for command in gateway.sent] == ["trace-1"]


async def test_missing_id_is_generated(client: httpx.AsyncClient, mint: TokenMint) -> None:
    first = await client.get(CHALLENGE_URL, headers=mint.headers())
    second = await client.get(CHALLENGE_URL, headers=mint.headers())
    ids = [first.headers[REQUEST_ID_HEADER], second.headers[REQUEST_ID_HEADER]]
    assert [uuid.UUID(value).version for value in ids] == [4, 4]
    assert ids[0] != ids[1]


async def test_unusable_id_is_replaced(client: httpx.AsyncClient, mint: TokenMint) -> None:
    headers = mint.headers() | {REQUEST_ID_HEADER: "x" * 129}
    response = await client.get(CHALLENGE_URL, headers=headers)
    assert uuid.UUID(response.headers[REQUEST_ID_HEADER]).version == 4


@pytest.mark.parametrize(
    ("method", "url", "authenticated", "status"),
    [
        ("PUT", CHALLENGE_URL, True, 400),
        ("PUT", CHALLENGE_URL, False, 401),
        ("GET", "/v1/mfa/devices/unknown", True, 404),
        ("GET", "/nowhere", False, 404),
        ("PATCH", CHALLENGE_URL, True, 405),
    ],
)
async def test_errors_carry_the_id(
    client: httpx.AsyncClient,
    mint: TokenMint,
    method: str,
    url: str,
    authenticated: bool,
    status: int,
) -> None:
    headers = {REQUEST_ID_HEADER: "trace-err", "Content-Type": "application/json"} | (
        mint.headers() if authenticated else {}
    )
    response = await client.request(method, url, headers=headers, content=b"{}")
    assert response.status_code == status
    assert response.headers[REQUEST_ID_HEADER] == "trace-err"
    body = response.json()
    item = body["errors"][0] if "errors" in body else body
    assert item["id"] == "trace-err"


async def test_service_unavailable_carries_the_id(
    admin: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    gateway.ready = False
    response = await admin.get("/readyz", headers={REQUEST_ID_HEADER: "probe-1"})
    assert response.status_code == 503
    assert response.headers[REQUEST_ID_HEADER] == "probe-1"
    assert response.json()["id"] == "probe-1"
