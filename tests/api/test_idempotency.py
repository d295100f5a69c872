"""``Idempotency-Key`` on device registration: the same key is the same command (fake gateway)."""

from __future__ import annotations

import httpx
import pytest

from schemas.commands import RegisterDevice
from tests.api.fakes import FakeGateway
from tests.api.requests import registration
from tests.api.shapes import assert_flat, assert_listed
from tests.api.tokens import TokenMint


async def _register(
    client: httpx.AsyncClient, mint: TokenMint, key: str | None, client_id: str | None = None
) -> httpx.Response:
    headers = mint.headers(client_id=client_id) if client_id else mint.headers()
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post("/v1/mfa/devices", json=registration(), headers=headers)


async def test_same_key_same_client_is_the_same_command(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    first = await _register(client, mint, "order-7f3a:device-1")
    again = await _register(client, mint, "order-7f3a:device-1")

    assert first.status_code == again.status_code == 202
    one, two = gateway.sent
    assert isinstance(one, RegisterDevice)
    assert isinstance(two, RegisterDevice)
    ids = (one.command_id, one.device_id, one.key_id, one.challenge_id)
    assert ids == (two.command_id, two.device_id, two.key_id, two.challenge_id)
    assert len(set(ids)) == 4
    assert one.request_id != two.request_id  # two requests, one command


async def test_another_key_or_another_client_is_another_command(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    await _register(client, mint, "key-1")
    await _register(client, mint, "key-2")
    await _register(client, mint, "key-1", client_id="bank-app-2")
    await _register(client, mint, None)
    await _register(client, mint, None)

    commands = [c for c in gateway.sent if isinstance(c, RegisterDevice)]
    assert len({c.command_id for c in commands}) == 5
    assert len({c.challenge_id for c in commands}) == 5


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "a,b", "a/b"])
async def test_malformed_key_is_refused_before_anything_is_published(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint, key: str
) -> None:
    response = await _register(client, mint, key)
    body = assert_flat(response, 400, "validation_error")
    assert "Idempotency-Key" in body["detail"]
    assert gateway.sent == []


async def test_key_is_checked_after_authentication(
    client: httpx.AsyncClient, gateway: FakeGateway
) -> None:
    response = await client.post(
        "/v1/mfa/devices", json=registration(), headers={"Idempotency-Key": "bad key"}
    )
    assert_listed(response, 401, "unauthorized", "Authorization")
    assert gateway.sent == []
