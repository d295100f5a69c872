"""Device signing end to end (SPEC §8): a bound device signs logins and payments over HTTP,
through Kafka and a real worker; keys by purpose; the binding challenge's lifecycle rules."""

from __future__ import annotations

import asyncio
from asyncio.subprocess import PIPE
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from schemas.signing import Transaction, signed_transaction
from tests.support.worker import DeviceKey
from tests.system.http_stack import Stack, assert_flat, assert_listed

pytestmark = pytest.mark.kafka

DEVICE_CHALLENGES = "/v1/mfa/challenges/devices"
PAYMENT = {
    "amount": {"value": "1250.10", "currency": "EUR"},
    "payee": {"name": 'Zoë\'s Café "Au Lait"', "iban": "DE89370400440532013000"},
    "reference": "Invoice 2026-118",
}


async def open_challenge(
    stack: Stack, device_id: str, client_id: str = "bank-1", **body: Any
) -> httpx.Response:
    return await stack.http.post(
        DEVICE_CHALLENGES, headers=stack.auth(client_id), json={"device_id": device_id, **body}
    )


async def opened(stack: Stack, device_id: str, **body: Any) -> dict[str, Any]:
    response = await open_challenge(stack, device_id, **body)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"{DEVICE_CHALLENGES}/{response.json()['id']}"
    challenge: dict[str, Any] = response.json()
    return challenge


async def sign(
    stack: Stack, challenge_id: str, signature: str, client_id: str = "bank-1"
) -> httpx.Response:
    return await stack.http.put(
        f"{DEVICE_CHALLENGES}/{challenge_id}",
        headers=stack.auth(client_id),
        json={"signature": signature},
    )


async def add_key(
    stack: Stack, device_id: str, new: DeviceKey, purpose: str, signer: DeviceKey, by: str
) -> httpx.Response:
    return await stack.http.post(
        f"/v1/mfa/devices/{device_id}/keys",
        headers=stack.auth(),
        json={
            "key_type": "ecdsa-p256",
            "key": new.public_hex,
            "key_purpose": purpose,
            "device_signature": {
                "signature_key_purpose": by,
                "signature": signer.sign(new.public_hex),
            },
        },
    )


async def keys_of(stack: Stack, device_id: str) -> list[dict[str, Any]]:
    response = await stack.http.get(f"/v1/mfa/devices/{device_id}/keys", headers=stack.auth())
    assert response.status_code == 200, response.text
    assert response.json()["device_id"] == device_id
    keys: list[dict[str, Any]] = response.json()["keys"]
    return keys


async def test_a_login_and_a_payment_signed_by_a_bound_device(stack: Stack) -> None:
    phone, restricted = DeviceKey(), DeviceKey()
    device_id = await stack.bind(phone)

    login = await opened(stack, device_id)
    assert (login["type"], login["key_purpose"], login["device_id"]) == (
        "device",
        "unrestricted",
        device_id,
    )
    assert signed_transaction(login["string_to_sign"]) is None
    assert (
        await sign(stack, login["id"], phone.sign_text(login["string_to_sign"]))
    ).status_code == 204

    added = await add_key(stack, device_id, restricted, "restricted", phone, "unrestricted")
    assert added.status_code == 201, added.text
    payment = await opened(stack, device_id, transaction=PAYMENT)
    assert (payment["key_purpose"], payment["key_id"]) == ("restricted", added.json()["id"])
    # The app reads the payment back from the very text it signs: amounts stay decimal text.
    shown = signed_transaction(payment["string_to_sign"])
    assert shown == Transaction.model_validate(PAYMENT)
    assert shown is not None
    assert shown.amount.value == "1250.10"
    assert '"value":"1250.10"' in payment["string_to_sign"]
    response = await sign(stack, payment["id"], restricted.sign_text(payment["string_to_sign"]))
    assert response.status_code == 204, response.text

    view = await stack.http.get(f"{DEVICE_CHALLENGES}/{payment['id']}", headers=stack.auth())
    assert view.status_code == 200
    assert (view.json()["status"], view.json()["transaction"]) == ("verified", PAYMENT)
    keys = {key["key_purpose"]: key for key in await keys_of(stack, device_id)}
    assert set(keys) == {"unrestricted", "restricted"}
    assert keys["restricted"]["used_at"] is not None
    assert keys["unrestricted"]["used_at"] is not None

    [created, verified] = await stack.events_of(payment["id"], 2)
    assert created["type"] == "mfa.device_binding.device_challenge_created"
    assert created["data"]["transaction"] == PAYMENT
    assert created["data"]["string_to_sign"] == payment["string_to_sign"]
    assert verified["type"] == "mfa.device_binding.device_signature_verified"
    assert (verified["data"]["key_purpose"], verified["data"]["attempt"]) == ("restricted", 1)
    [key_added] = await stack.events_of(device_id, 1)
    assert key_added["type"] == "mfa.device_binding.key_added"
    assert key_added["data"]["key_id"] == added.json()["id"]


async def test_a_changed_amount_or_the_other_purposes_key_is_refused(stack: Stack) -> None:
    phone, restricted = DeviceKey(), DeviceKey()
    device_id = await stack.bind(phone)
    assert (
        await add_key(stack, device_id, restricted, "restricted", phone, "unrestricted")
    ).status_code == 201
    payment = await opened(stack, device_id, transaction=PAYMENT)
    text = payment["string_to_sign"]

    tampered = text.replace('"1250.10"', '"1.10"')
    assert tampered != text
    refused = assert_listed(
        await sign(stack, payment["id"], restricted.sign_text(tampered)), 403, "invalid_signature"
    )
    assert "4 attempts remain" in refused["detail"]
    # Signed by the device's unrestricted key: not the key this challenge chose.
    assert_listed(await sign(stack, payment["id"], phone.sign_text(text)), 403, "invalid_signature")
    assert (await sign(stack, payment["id"], restricted.sign_text(text))).status_code == 204


async def test_a_payment_needs_the_restricted_key(stack: Stack) -> None:
    device_id = await stack.bind(DeviceKey())
    assert_listed(
        await open_challenge(stack, device_id, transaction=PAYMENT), 409, "restricted_key_required"
    )
    assert_listed(
        await open_challenge(stack, device_id, key_purpose="restricted"),
        409,
        "restricted_key_required",
    )
    bad = await open_challenge(
        stack, device_id, transaction={**PAYMENT, "amount": {"value": 12.3, "currency": "EUR"}}
    )
    assert_flat(bad, 400, "validation_error")


async def test_openssl_cli_signature_of_the_string_to_sign_verifies(
    stack: Stack, tmp_path: Path
) -> None:
    phone = DeviceKey()
    device_id = await stack.bind(phone)
    challenge = await opened(stack, device_id, key_purpose="")
    pem, text = tmp_path / "device.pem", tmp_path / "string_to_sign.txt"
    pem.write_bytes(
        phone.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    text.write_bytes(challenge["string_to_sign"].encode("utf-8"))
    openssl = await asyncio.create_subprocess_exec(
        "openssl", "dgst", "-sha256", "-sign", str(pem), str(text), stdout=PIPE
    )
    signature, _ = await openssl.communicate()
    assert openssl.returncode == 0
    assert (await sign(stack, challenge["id"], signature.hex())).status_code == 204


async def test_keys_are_added_only_when_vouched_for_once_per_purpose(stack: Stack) -> None:
    phone, stranger, restricted, another = DeviceKey(), DeviceKey(), DeviceKey(), DeviceKey()
    device_id = await stack.bind(phone)

    wrong = await add_key(stack, device_id, restricted, "restricted", stranger, "unrestricted")
    assert_listed(wrong, 403, "invalid_signature")
    absent = await add_key(stack, device_id, restricted, "restricted", phone, "restricted")
    assert_listed(absent, 403, "invalid_signature")
    assert [key["key_purpose"] for key in await keys_of(stack, device_id)] == ["unrestricted"]

    assert (
        await add_key(stack, device_id, restricted, "restricted", phone, "unrestricted")
    ).status_code == 201
    taken = await add_key(stack, device_id, another, "restricted", phone, "unrestricted")
    assert_listed(taken, 409, "key_purpose_taken")
    assert len(await keys_of(stack, device_id)) == 2


async def test_unbinding_ends_open_device_challenges(stack: Stack) -> None:
    phone = DeviceKey()
    device_id = await stack.bind(phone)
    challenge = await opened(stack, device_id)
    unbound = await stack.http.delete(f"/v1/mfa/devices/{device_id}", headers=stack.auth())
    assert unbound.status_code == 204

    assert_flat(
        await sign(stack, challenge["id"], phone.sign_text(challenge["string_to_sign"])),
        404,
        "not_found",
    )
    for path in (f"{DEVICE_CHALLENGES}/{challenge['id']}", f"/v1/mfa/devices/{device_id}/keys"):
        assert_flat(await stack.http.get(path, headers=stack.auth()), 404, "not_found")
    assert_flat(await open_challenge(stack, device_id), 404, "not_found")


async def test_only_the_clients_bound_devices_and_challenges_are_found(stack: Stack) -> None:
    phone = DeviceKey()
    device_id = await stack.bind(phone)
    pending = (await stack.register(DeviceKey()))["id"]
    assert_flat(await open_challenge(stack, pending), 404, "not_found")
    assert_flat(await open_challenge(stack, device_id, client_id="bank-2"), 404, "not_found")
    challenge = await opened(stack, device_id)
    signature = phone.sign_text(challenge["string_to_sign"])
    assert_flat(await sign(stack, challenge["id"], signature, client_id="bank-2"), 404, "not_found")
    # A binding challenge's id is no device challenge, and the reverse.
    assert_flat(await stack.put(challenge["id"], signature), 404, "not_found")
    assert (await sign(stack, challenge["id"], signature)).status_code == 204


async def test_expiry_lockout_and_identical_retries(stack: Stack) -> None:
    phone, impostor = DeviceKey(), DeviceKey()
    device_id = await stack.bind(phone)
    locking, expiring = await opened(stack, device_id), await opened(stack, device_id)

    wrong = impostor.sign_text(locking["string_to_sign"])
    assert (
        "4 attempts remain"
        in assert_listed(await sign(stack, locking["id"], wrong), 403, "invalid_signature")[
            "detail"
        ]
    )
    # The same bytes again: answered from the stored outcome, not counted.
    assert (
        "4 attempts remain"
        in assert_listed(await sign(stack, locking["id"], wrong), 403, "invalid_signature")[
            "detail"
        ]
    )
    for _ in range(4):
        other = impostor.sign_text(locking["string_to_sign"])
        assert_listed(await sign(stack, locking["id"], other), 403, "invalid_signature")
    right = phone.sign_text(locking["string_to_sign"])
    assert_listed(await sign(stack, locking["id"], right), 409, "challenge_locked")

    stack.clock.advance(301)
    right = phone.sign_text(expiring["string_to_sign"])
    assert_listed(await sign(stack, expiring["id"], right), 409, "challenge_expired")


async def test_fifty_concurrent_correct_signatures_verify_once(stack: Stack) -> None:
    phone = DeviceKey()
    device_id = await stack.bind(phone)
    challenge = await opened(stack, device_id)
    # ECDSA signatures are randomised: fifty different, all correct.
    signatures = {phone.sign_text(challenge["string_to_sign"]) for _ in range(50)}
    assert len(signatures) == 50
    answers = await asyncio.gather(*(sign(stack, challenge["id"], s) for s in signatures))
    statuses = Counter(response.status_code for response in answers)
    assert statuses == {204: 1, 409: 49}
    assert all(
        r.json()["errors"][0]["code"] == "challenge_already_verified"
        for r in answers
        if r.status_code == 409
    )
    events = await stack.events_of(challenge["id"], 51)
    types = Counter(event["type"] for event in events)
    assert types["mfa.device_binding.device_signature_verified"] == 1
    assert types["mfa.device_binding.device_signature_rejected"] == 49


async def test_creations_retried_under_their_idempotency_key_are_the_same(stack: Stack) -> None:
    phone, restricted = DeviceKey(), DeviceKey()
    device_id = await stack.bind(phone)
    headers = stack.auth() | {"Idempotency-Key": "payment-7"}
    body = {"device_id": device_id, "key_purpose": "unrestricted"}
    first = await stack.http.post(DEVICE_CHALLENGES, headers=headers, json=body)
    again = await stack.http.post(DEVICE_CHALLENGES, headers=headers, json=body)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json()
    other = await stack.http.post(
        DEVICE_CHALLENGES, headers=headers, json=body | {"device_data": "another"}
    )
    assert_listed(other, 409, "idempotency_key_reused")

    key_body = {
        "key_type": "ecdsa-p256",
        "key": restricted.public_hex,
        "key_purpose": "restricted",
        "device_signature": {
            "signature_key_purpose": "unrestricted",
            "signature": phone.sign(restricted.public_hex),
        },
    }
    keys_path = f"/v1/mfa/devices/{device_id}/keys"
    added = [await stack.http.post(keys_path, headers=headers, json=key_body) for _ in range(2)]
    assert [response.status_code for response in added] == [201, 201]
    assert added[0].json() == added[1].json()
    assert len(await keys_of(stack, device_id)) == 2
    # A replay publishes the original event again, with its original id: one fact each.
    for subject, kind in (
        (first.json()["id"], "device_challenge_created"),
        (device_id, "key_added"),
    ):
        events = await stack.events_of(subject, 2)
        assert {event["type"] for event in events} == {f"mfa.device_binding.{kind}"}
        assert len({event["id"] for event in events}) == 1
