"""Each endpoint's command and how the worker's reply becomes the answer (fake gateway)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from api.errors import ServiceUnavailable, VerificationPending
from schemas.commands import (
    Command,
    GetChallenge,
    GetDevice,
    ListDevices,
    RegisterDevice,
    UnbindDevice,
    VerifySignature,
    command_key,
)
from schemas.reasons import HTTP_STATUS, Reason
from schemas.replies import Reply
from tests.api.fakes import FakeGateway, ok, rejected
from tests.api.requests import SIGNATURE, registration
from tests.api.shapes import assert_flat, assert_listed, rejection_field
from tests.api.tokens import TokenMint
from tests.support.claims import CLIENT_ID

ID = uuid.UUID("6f1d8f3e-52c9-4a8e-9a57-0d5b8a3f4c21")
CHALLENGE_URL = f"/v1/mfa/challenges/signatures/{ID}"
DEVICE_URL = f"/v1/mfa/devices/{ID}"


def _only(gateway: FakeGateway) -> Command:
    (command,) = gateway.sent
    assert command.client_id == CLIENT_ID
    assert command.reply_to == gateway.instance_id
    assert command.issued_at.tzinfo is not None
    return command


async def test_register_device(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    body = registration()
    response = await client.post("/v1/mfa/devices", json=body, headers=mint.headers())
    assert response.status_code == 202, response.text
    command = _only(gateway)
    assert isinstance(command, RegisterDevice)
    assert len({command.device_id, command.key_id, command.challenge_id}) == 3
    assert command_key(command) == str(command.challenge_id).encode()
    assert command.registration.person_id == body["person_id"]
    assert command.registration.device_data == body["device_data"]
    answer = response.json()
    assert answer["id"] == str(command.device_id)
    assert answer["key_id"] == str(command.key_id)
    assert answer["challenge"]["id"] == str(command.challenge_id)
    assert answer["challenge"]["type"] == "signature"
    assert set(answer["challenge"]) == {"id", "type", "created_at", "expires_at"}
    location = f"/v1/mfa/challenges/signatures/{command.challenge_id}"
    assert response.headers["Location"] == location


async def test_each_request_gets_its_own_ids(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    for _ in range(2):
        await client.post("/v1/mfa/devices", json=registration(), headers=mint.headers())
    first, second = gateway.sent
    assert isinstance(first, RegisterDevice)
    assert isinstance(second, RegisterDevice)
    assert first.command_id != second.command_id
    assert first.challenge_id != second.challenge_id


async def test_verify_signature(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    body = {"signature": SIGNATURE.upper(), "device_data": "opaque"}
    response = await client.put(CHALLENGE_URL, json=body, headers=mint.headers())
    assert response.status_code == 204
    assert response.content == b""
    command = _only(gateway)
    assert isinstance(command, VerifySignature)
    assert command.challenge_id == ID
    assert command.signature == SIGNATURE
    assert command.device_data == "opaque"
    assert command_key(command) == str(ID).encode()


async def test_get_challenge(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    response = await client.get(CHALLENGE_URL, headers=mint.headers())
    assert response.status_code == 200
    command = _only(gateway)
    assert isinstance(command, GetChallenge)
    assert command.challenge_id == ID
    view = response.json()
    assert view["id"] == str(ID)
    assert view["status"] == "pending"
    assert view["attempts_remaining"] == 5


async def test_get_device(client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint) -> None:
    # Hex is hex in either case, in ids too.
    response = await client.get(f"/v1/mfa/devices/{str(ID).upper()}", headers=mint.headers())
    assert response.status_code == 200
    command = _only(gateway)
    assert isinstance(command, GetDevice)
    assert command.device_id == ID
    assert response.json()["id"] == str(ID)


async def test_list_devices(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    response = await client.get(
        "/v1/mfa/devices", params={"filter[person_id]": "person-7"}, headers=mint.headers()
    )
    assert response.status_code == 200
    assert response.json() == {"data": []}
    command = _only(gateway)
    assert isinstance(command, ListDevices)
    assert command.person_id == "person-7"
    assert command_key(command) == b"person-7"


async def test_unbind_device(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    response = await client.delete(DEVICE_URL, headers=mint.headers())
    assert response.status_code == 204
    assert response.content == b""
    command = _only(gateway)
    assert isinstance(command, UnbindDevice)
    assert command.device_id == ID


@pytest.mark.parametrize("reason", sorted(Reason.__members__.values()))
async def test_rejection_of_a_signature(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint, reason: Reason
) -> None:
    gateway.script = lambda command: rejected(command, reason, attempts_remaining=2)
    response = await client.put(
        CHALLENGE_URL, json={"signature": SIGNATURE}, headers=mint.headers()
    )
    status = HTTP_STATUS[reason]
    if status == 404:
        assert_flat(response, 404, "not_found")
        return
    item = assert_listed(response, status, reason.value, rejection_field(reason))
    if reason is Reason.INVALID_SIGNATURE:
        assert item["detail"] == "The signature does not verify; 2 attempts remain."


async def test_device_limit_on_registration(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    gateway.script = lambda command: rejected(command, Reason.DEVICE_LIMIT_REACHED)
    response = await client.post("/v1/mfa/devices", json=registration(), headers=mint.headers())
    assert_listed(response, 409, "device_limit_reached", "person_id")


@pytest.mark.parametrize(
    ("method", "url"), [("GET", DEVICE_URL), ("DELETE", DEVICE_URL), ("GET", CHALLENGE_URL)]
)
async def test_unknown_or_foreign_resource_is_not_found(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint, method: str, url: str
) -> None:
    gateway.script = lambda command: rejected(command, Reason.NOT_FOUND)
    response = await client.request(method, url, headers=mint.headers())
    body = assert_flat(response, 404, "not_found")
    assert body["detail"] == "The requested resource does not exist."


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ServiceUnavailable(2), "service_unavailable"),
        (VerificationPending(2), "verification_pending"),
    ],
)
async def test_gateway_unavailable_is_503_with_retry_after(
    client: httpx.AsyncClient,
    gateway: FakeGateway,
    mint: TokenMint,
    error: Exception,
    code: str,
) -> None:
    gateway.error = error
    response = await client.put(
        CHALLENGE_URL, json={"signature": SIGNATURE}, headers=mint.headers()
    )
    assert_flat(response, 503, code)
    assert response.headers["Retry-After"] == "2"


def _rejected_without_reason(command: Command) -> Reply:
    return Reply(command_id=command.command_id, reply_to="api-fake", outcome="rejected")


def _body_of_another_shape(command: Command) -> Reply:
    return ok(command, {"id": "not-a-uuid", "surprise": True})


@pytest.mark.parametrize("script", [_rejected_without_reason, _body_of_another_shape])
@pytest.mark.parametrize(("method", "url"), [("PUT", CHALLENGE_URL), ("GET", CHALLENGE_URL)])
async def test_reply_breaking_the_contract_is_500(
    client: httpx.AsyncClient,
    gateway: FakeGateway,
    mint: TokenMint,
    script: Any,
    method: str,
    url: str,
) -> None:
    gateway.script = script
    body = {"signature": SIGNATURE} if method == "PUT" else None
    response = await client.request(method, url, json=body, headers=mint.headers())
    if method == "PUT" and script is _body_of_another_shape:
        # A 204 needs only the worker's "ok"; its body is not the caller's business.
        assert response.status_code == 204
        return
    assert_flat(response, 500, "generic_error")
    assert "surprise" not in response.text


async def test_unknown_route_and_method(client: httpx.AsyncClient, mint: TokenMint) -> None:
    assert_flat(await client.get("/v1/mfa/nothing", headers=mint.headers()), 404, "not_found")
    response = await client.patch(CHALLENGE_URL, headers=mint.headers())
    assert_flat(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "PUT"}
