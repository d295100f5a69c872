"""Device signing's endpoints (SPEC §8): the command each sends and the bodies each refuses
before anything is published (fake gateway)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from schemas.commands import (
    AddDeviceKey,
    GetDeviceChallenge,
    ListDeviceKeys,
    OpenDeviceChallenge,
    VerifyDeviceSignature,
    command_key,
)
from schemas.devices import KeyPurpose
from schemas.reasons import Reason
from tests.api.fakes import FakeGateway, rejected
from tests.api.requests import SIGNATURE, device_key_hex
from tests.api.shapes import assert_flat, assert_listed
from tests.api.tokens import TokenMint
from tests.support.claims import CLIENT_ID

DEVICE = uuid.UUID("6f1d8f3e-52c9-4a8e-9a57-0d5b8a3f4c21")
CHALLENGES = "/v1/mfa/challenges/devices"
KEYS = f"/v1/mfa/devices/{DEVICE}/keys"
PAYMENT = {
    "amount": {"value": "12.30", "currency": "EUR"},
    "payee": {"name": "Acme GmbH", "iban": "DE89370400440532013000"},
}


def key_addition(**changes: Any) -> dict[str, Any]:
    body = {
        "key_type": "ecdsa-p256",
        "key": device_key_hex(),
        "key_purpose": "restricted",
        "device_signature": {"signature_key_purpose": "unrestricted", "signature": SIGNATURE},
    }
    return body | changes


async def test_opening_a_payment_challenge(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    body = {"device_id": str(DEVICE), "key_purpose": "", "transaction": PAYMENT}
    response = await client.post(CHALLENGES, json=body, headers=mint.headers())
    assert response.status_code == 201, response.text
    (command,) = gateway.sent
    assert isinstance(command, OpenDeviceChallenge)
    assert (command.client_id, command.device_id, command.key_purpose) == (CLIENT_ID, DEVICE, None)
    assert command.transaction is not None
    assert command.transaction.amount.value == "12.30"
    assert command_key(command) == str(command.challenge_id).encode()
    assert response.headers["Location"] == f"{CHALLENGES}/{response.json()['id']}"


@pytest.mark.parametrize(
    "transaction",
    [
        {**PAYMENT, "amount": {"value": 12.3, "currency": "EUR"}},
        {**PAYMENT, "amount": {"value": "12.30001", "currency": "EUR"}},
        {**PAYMENT, "amount": {"value": "-1.00", "currency": "EUR"}},
        {**PAYMENT, "amount": {"value": "0.00", "currency": "EUR"}},
        {**PAYMENT, "amount": {"value": "012.30", "currency": "EUR"}},
        {**PAYMENT, "amount": {"value": "1e3", "currency": "EUR"}},
        {**PAYMENT, "amount": {"value": "12.30", "currency": "eur"}},
        {**PAYMENT, "payee": {"name": "Acme", "iban": "DE89370400440532013001"}},
        {**PAYMENT, "payee": {"name": "Acme\nGmbH"}},
        {**PAYMENT, "payee": {"name": ""}},
        {**PAYMENT, "payee": {"name": "x" * 141}},
        {**PAYMENT, "memo": "unknown field"},
        {"amount": PAYMENT["amount"]},
    ],
)
async def test_a_transaction_that_could_be_misread_is_refused(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint, transaction: Any
) -> None:
    body = {"device_id": str(DEVICE), "transaction": transaction}
    response = await client.post(CHALLENGES, json=body, headers=mint.headers())
    assert_flat(response, 400, "validation_error")
    assert gateway.sent == []


async def test_signing_reading_and_listing(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    challenge = uuid.uuid4()
    put = await client.put(
        f"{CHALLENGES}/{challenge}", json={"signature": SIGNATURE}, headers=mint.headers()
    )
    assert put.status_code == 204
    got = await client.get(f"{CHALLENGES}/{challenge}", headers=mint.headers())
    assert got.status_code == 200
    keys = await client.get(KEYS, headers=mint.headers())
    assert keys.status_code == 200
    verify, read, listing = gateway.sent
    assert isinstance(verify, VerifyDeviceSignature)
    assert (verify.challenge_id, verify.signature) == (challenge, SIGNATURE.lower())
    assert isinstance(read, GetDeviceChallenge)
    assert read.challenge_id == challenge
    assert isinstance(listing, ListDeviceKeys)
    assert command_key(listing) == str(DEVICE).encode()


async def test_adding_a_key(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint
) -> None:
    body = key_addition()
    response = await client.post(KEYS, json=body, headers=mint.headers())
    assert response.status_code == 201, response.text
    (command,) = gateway.sent
    assert isinstance(command, AddDeviceKey)
    assert response.json() == {"id": str(command.key_id)}
    assert command.addition.key_purpose is KeyPurpose.RESTRICTED
    assert command.addition.device_signature.signature_key_purpose is KeyPurpose.UNRESTRICTED
    assert command_key(command) == str(DEVICE).encode()


@pytest.mark.parametrize(
    "body",
    [
        key_addition(key="04" + "00" * 64),
        key_addition(key_type="rsa"),
        key_addition(key_purpose="admin"),
        key_addition(device_signature={"signature_key_purpose": "unrestricted"}),
        key_addition(device_signature={"signature_key_purpose": "x", "signature": SIGNATURE}),
    ],
)
async def test_a_malformed_key_is_refused(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint, body: dict[str, Any]
) -> None:
    assert_flat(await client.post(KEYS, json=body, headers=mint.headers()), 400, "validation_error")
    assert gateway.sent == []


@pytest.mark.parametrize(
    ("reason", "field"),
    [
        (Reason.RESTRICTED_KEY_REQUIRED, "key_purpose"),
        (Reason.KEY_PURPOSE_MISSING, "key_purpose"),
        (Reason.KEY_PURPOSE_TAKEN, "key_purpose"),
        (Reason.INVALID_SIGNATURE, "signature"),
    ],
)
async def test_refusals_have_the_conflict_shape(
    client: httpx.AsyncClient, gateway: FakeGateway, mint: TokenMint, reason: Reason, field: str
) -> None:
    gateway.script = lambda command: rejected(command, reason)
    response = await client.post(KEYS, json=key_addition(), headers=mint.headers())
    status = 403 if reason is Reason.INVALID_SIGNATURE else 409
    assert_listed(response, status, reason.value, field)
