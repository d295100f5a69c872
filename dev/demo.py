"""``make demo``: plays a bank's app against the stack of ``make run``. DEVELOPMENT ONLY.

Binding (SPEC §1): the device generates a key, the app registers it, the customer reads the
OTP from the development sink (as from the SMS), the device signs it the way a phone
keystore does (SHA256withECDSA, DER, hex) and the device is bound.

Signing (SPEC §8): the binding key vouches for a second, restricted key; the bank asks the
device to sign a login (with the unrestricted key) and a payment (the restricted key); the
app shows the payment as it reads it from ``string_to_sign``, the text the device signs
(dynamic linking), and the device signs each with the key the challenge names.

Every step is printed, with the events the audit and fraud teams receive. Settings from the
environment: ``API_URL``, ``KAFKA_BOOTSTRAP_SERVERS``, ``EVENTS_TOPIC``, ``OTP_SINK_FILE``
and ``API_TOKEN`` (else a token minted with the development key).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any

import httpx

from dev.kafka_plane import LOCAL_BROKER_CREDENTIALS, demo_connection
from dev.keystore import Keystore
from dev.otp_sink import sink_file
from dev.transcript import EventLog, step, verdict
from harness import devkeys
from schemas import topics
from schemas.signing import Transaction, signed_transaction

API = os.environ.get("API_URL", "http://127.0.0.1:8000")
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
EVENTS_TOPIC = os.environ.get("EVENTS_TOPIC", topics.EVENTS)
OTP_WAIT_SECONDS = 20.0

UNRESTRICTED, RESTRICTED = "unrestricted", "restricted"
DEVICE_DATA = "demo-app/1.0"
DEVICE_CHALLENGES = "/v1/mfa/challenges/devices"
PAYMENT: dict[str, Any] = {
    "amount": {"value": "42.50", "currency": "EUR"},
    "payee": {"name": "Bäckerei Müller GmbH", "iban": "DE89370400440532013000"},
    "reference": "Invoice 2026-0042",
}
# The events of a device challenge signed at the first attempt, in order.
SIGNED = [
    "mfa.device_binding.device_challenge_created",
    "mfa.device_binding.device_signature_verified",
]


async def otp_from_sink(challenge_id: str) -> str:
    deadline = time.monotonic() + OTP_WAIT_SECONDS
    sink = sink_file()
    while time.monotonic() < deadline:
        if sink.exists():
            for line in sink.read_text().splitlines():
                delivery = json.loads(line)
                if delivery["challenge_id"] == challenge_id:
                    return str(delivery["otp"])
        await asyncio.sleep(0.2)
    raise SystemExit("no OTP reached the development sink: is `make run` running?")


def body_of(response: httpx.Response) -> object:
    if not response.content:
        return "(no body)"
    try:
        return response.json()
    except ValueError:
        return response.text


def payment_lines(shown: Transaction) -> str:
    """What the app's approval screen says."""
    lines = [
        f"  amount     {shown.amount.value} {shown.amount.currency}",
        f"  payee      {shown.payee.name}",
        f"  IBAN       {shown.payee.iban or '(none)'}",
    ]
    if shown.reference is not None:
        lines.append(f"  reference  {shown.reference}")
    return "\n".join(lines)


async def bind(http: httpx.AsyncClient, keystore: Keystore, events: EventLog) -> str | None:
    """Register a device with a new unrestricted key and bind it; its id once bound."""
    public_hex = keystore.generate(UNRESTRICTED)
    step("device generates a P-256 key in its keystore; public key (SEC1)", public_hex)

    person_id = f"person-{uuid.uuid4().hex[:8]}"
    registered = await http.post(
        "/v1/mfa/devices",
        json={
            "person_id": person_id,
            "key_type": "ecdsa-p256",
            "key": public_hex,
            "name": "Demo phone",
            "language": "en",
        },
    )
    step(f"POST /v1/mfa/devices -> {registered.status_code}", body_of(registered))
    if registered.status_code != 202:
        return None
    device_id: str = registered.json()["id"]
    challenge_id = registered.json()["challenge"]["id"]

    otp = await otp_from_sink(challenge_id)
    step("customer reads the OTP from the SMS (development sink)", otp)
    signature = keystore.sign(UNRESTRICTED, otp)
    step("device signs the OTP: SHA256withECDSA, DER, hex", signature)

    verified = await http.put(
        f"/v1/mfa/challenges/signatures/{challenge_id}",
        json={"signature": signature, "device_data": DEVICE_DATA},
    )
    step(
        f"PUT /v1/mfa/challenges/signatures/{challenge_id} -> {verified.status_code}",
        body_of(verified),
    )
    await events.show(challenge_id, count=2)

    challenge = await http.get(f"/v1/mfa/challenges/signatures/{challenge_id}")
    step(
        f"GET /v1/mfa/challenges/signatures/{challenge_id} -> {challenge.status_code}",
        body_of(challenge),
    )
    devices = await http.get("/v1/mfa/devices", params={"filter[person_id]": person_id})
    step(f"GET /v1/mfa/devices?filter[person_id]={person_id}", body_of(devices))
    bound = (
        verified.status_code == 204
        and devices.status_code == 200
        and any(d["id"] == device_id and d["status"] == "bound" for d in devices.json()["data"])
    )
    return device_id if bound else None


async def add_restricted_key(
    http: httpx.AsyncClient, keystore: Keystore, events: EventLog, device_id: str
) -> bool:
    """A second key, for payments, vouched for by the binding key."""
    public_hex = keystore.generate(RESTRICTED)
    vouching = keystore.sign(UNRESTRICTED, public_hex)
    step(
        "device generates a restricted key for payments; the binding (unrestricted) key signs"
        " its public key's lowercase hex",
        {"key": public_hex, "signature": vouching},
    )
    added = await http.post(
        f"/v1/mfa/devices/{device_id}/keys",
        json={
            "key_type": "ecdsa-p256",
            "key": public_hex,
            "key_purpose": RESTRICTED,
            "device_signature": {"signature_key_purpose": UNRESTRICTED, "signature": vouching},
        },
    )
    step(f"POST /v1/mfa/devices/{device_id}/keys -> {added.status_code}", body_of(added))
    types = await events.show(device_id, count=1)
    keys = await http.get(f"/v1/mfa/devices/{device_id}/keys")
    step(f"GET /v1/mfa/devices/{device_id}/keys -> {keys.status_code}", body_of(keys))
    return added.status_code == 201 and types == ["mfa.device_binding.key_added"]


async def sign_challenge(
    http: httpx.AsyncClient, keystore: Keystore, events: EventLog, challenge: dict[str, Any]
) -> bool:
    """The device signs ``string_to_sign`` with the key the challenge names; whether the
    challenge is verified, with both its events."""
    purpose = challenge["key_purpose"]
    signature = keystore.sign(purpose, challenge["string_to_sign"])
    step(f"device signs string_to_sign's UTF-8 bytes with its {purpose} key", signature)
    path = f"{DEVICE_CHALLENGES}/{challenge['id']}"
    verified = await http.put(path, json={"signature": signature, "device_data": DEVICE_DATA})
    step(f"PUT {path} -> {verified.status_code}", body_of(verified))
    types = await events.show(challenge["id"], count=2)
    state = await http.get(path)
    step(f"GET {path} -> {state.status_code}", body_of(state))
    return (
        verified.status_code == 204
        and state.status_code == 200
        and state.json()["status"] == "verified"
        and types == SIGNED
    )


async def open_challenge(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any] | None:
    opened = await http.post(DEVICE_CHALLENGES, json=body)
    step(f"POST {DEVICE_CHALLENGES} -> {opened.status_code}", body_of(opened))
    if opened.status_code != 201:
        return None
    challenge: dict[str, Any] = opened.json()
    return challenge


async def sign_login(
    http: httpx.AsyncClient, keystore: Keystore, events: EventLog, device_id: str
) -> bool:
    print("\n-- the customer logs in: the bank asks the device to sign, no transaction")
    body = {"device_id": device_id, "key_purpose": UNRESTRICTED, "device_data": DEVICE_DATA}
    challenge = await open_challenge(http, body)
    return challenge is not None and await sign_challenge(http, keystore, events, challenge)


async def sign_payment(
    http: httpx.AsyncClient, keystore: Keystore, events: EventLog, device_id: str
) -> bool:
    print("\n-- the customer pays: the amount and the payee go into the text the device signs")
    body = {"device_id": device_id, "transaction": PAYMENT, "device_data": DEVICE_DATA}
    challenge = await open_challenge(http, body)
    if challenge is None:
        return False
    # The app reads the payment from the very text the device signs, never from elsewhere.
    shown = signed_transaction(challenge["string_to_sign"])
    if shown is None:
        step("the app finds no payment in string_to_sign: the customer does not approve")
        return False
    step("the app shows the payment read from string_to_sign", payment_lines(shown))
    if shown != Transaction.model_validate(PAYMENT):
        step("not the payment the customer started: the customer does not approve")
        return False
    step("the customer approves: it is the payment they started")
    if not await sign_challenge(http, keystore, events, challenge):
        return False
    keys = await http.get(f"/v1/mfa/devices/{device_id}/keys")
    step(
        f"GET /v1/mfa/devices/{device_id}/keys (used_at: when each key last signed)", body_of(keys)
    )
    return True


async def demo() -> int:
    token = os.environ.get("API_TOKEN") or devkeys.mint_token(client_id="demo-bank", ttl=600)
    headers = {"Authorization": f"Bearer {token}"}
    # The demo principal's, when `make run` started a SASL_SSL broker.
    connection = demo_connection(os.environ, LOCAL_BROKER_CREDENTIALS)
    events = await EventLog.tail(BOOTSTRAP, EVENTS_TOPIC, connection)
    keystore = Keystore()
    try:
        async with httpx.AsyncClient(base_url=API, headers=headers, timeout=15) as http:
            device_id = await bind(http, keystore, events)
            verdict(device_id is not None, "DEVICE BOUND", "DEVICE NOT BOUND")
            if device_id is None:
                return 1
            added = await add_restricted_key(http, keystore, events, device_id)
            if not verdict(added, "RESTRICTED KEY ADDED", "RESTRICTED KEY NOT ADDED"):
                return 1
            login = await sign_login(http, keystore, events, device_id)
            if not verdict(login, "LOGIN SIGNED", "LOGIN NOT SIGNED"):
                return 1
            payment = await sign_payment(http, keystore, events, device_id)
            return 0 if verdict(payment, "PAYMENT SIGNED", "PAYMENT NOT SIGNED") else 1
    finally:
        await events.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(demo()))
