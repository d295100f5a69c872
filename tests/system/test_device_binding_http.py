"""The product end to end: HTTP in, Kafka through, a real worker deciding, HTTP out.

Every test gets its own topics and database; the worker's clock is the test's.
"""

from __future__ import annotations

import asyncio
import uuid
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from provisioning import provision_topics
from tests.support.http import Tokens, api_client, api_settings
from tests.support.worker import (
    DeviceKey,
    running_worker,
    start_reader,
    worker_settings,
)
from tests.system.http_stack import (
    SIGNATURES,
    Stack,
    assert_flat,
    assert_listed,
    otp_of,
    otp_readers,
)

pytestmark = pytest.mark.kafka


async def test_device_is_bound_listed_and_unbound(stack: Stack) -> None:
    key = DeviceKey()
    registered = await stack.register(key, person_id="person-flow")
    challenge_id = registered["challenge"]["id"]
    assert registered["challenge"]["type"] == "signature"

    pending = await stack.http.get(f"{SIGNATURES}/{challenge_id}", headers=stack.auth())
    assert pending.json()["status"] == "pending"
    assert pending.json()["attempts_remaining"] == 5

    otp = await stack.otp(challenge_id)
    verified = await stack.put(challenge_id, key.sign(otp))
    assert verified.status_code == 204
    assert verified.content == b""

    challenge = await stack.http.get(f"{SIGNATURES}/{challenge_id}", headers=stack.auth())
    assert challenge.json()["status"] == "verified"
    listed = await stack.http.get(
        "/v1/mfa/devices", params={"filter[person_id]": "person-flow"}, headers=stack.auth()
    )
    assert [d["id"] for d in listed.json()["data"]] == [registered["id"]]
    assert listed.json()["data"][0]["status"] == "bound"

    deleted = await stack.http.delete(f"/v1/mfa/devices/{registered['id']}", headers=stack.auth())
    assert deleted.status_code == 204
    gone = await stack.http.get(f"/v1/mfa/devices/{registered['id']}", headers=stack.auth())
    assert_flat(gone, 404, "not_found")

    events = await stack.events_of(challenge_id, count=3)
    assert [e["type"] for e in events] == [
        "mfa.device_binding.challenge_created",
        "mfa.device_binding.signature_verified",
        "mfa.device_binding.device_unbound",
    ]
    assert all(otp not in str(e) for e in events)


async def test_error_table_of_the_seed_endpoint(stack: Stack) -> None:
    key, impostor = DeviceKey(), DeviceKey()
    challenge_id = (await stack.register(key))["challenge"]["id"]
    otp = await stack.otp(challenge_id)

    invalid = await stack.put(challenge_id, "zz")
    assert_flat(invalid, 400, "validation_error")

    unknown = await stack.put(str(uuid.uuid4()), key.sign(otp))
    assert_flat(unknown, 404, "not_found")

    rejected = await stack.put(challenge_id, impostor.sign(otp))
    error = assert_listed(rejected, 403, "invalid_signature")
    assert "4 attempts remain" in error["detail"]

    assert (await stack.put(challenge_id, key.sign(otp))).status_code == 204
    again = await stack.put(challenge_id, key.sign(otp))
    assert_listed(again, 409, "challenge_already_verified")

    missing_token = await stack.http.put(f"{SIGNATURES}/{challenge_id}", json={"signature": "30"})
    assert_listed(missing_token, 401, "unauthorized")
    no_scope = await stack.http.put(
        f"{SIGNATURES}/{challenge_id}",
        headers=stack.tokens.headers(scope="profile"),
        json={"signature": "30"},
    )
    assert_listed(no_scope, 403, "insufficient_scope")

    # The 400 counted nothing: one failed attempt only.
    state = await stack.http.get(f"{SIGNATURES}/{challenge_id}", headers=stack.auth())
    assert state.json()["attempts_remaining"] == 4


async def test_expired_and_locked_challenges_answer_409(stack: Stack) -> None:
    key, impostor = DeviceKey(), DeviceKey()
    expiring = (await stack.register(key))["challenge"]["id"]
    locking = (await stack.register(key))["challenge"]["id"]
    otp_expiring, otp_locking = await stack.otp(expiring), await stack.otp(locking)

    for _ in range(5):
        assert_listed(
            await stack.put(locking, impostor.sign(otp_locking)), 403, "invalid_signature"
        )
    assert_listed(await stack.put(locking, key.sign(otp_locking)), 409, "challenge_locked")

    stack.clock.advance(301)
    assert_listed(await stack.put(expiring, key.sign(otp_expiring)), 409, "challenge_expired")


async def test_sixth_bound_device_of_a_person_is_refused(stack: Stack) -> None:
    for _ in range(5):
        key = DeviceKey()
        challenge_id = (await stack.register(key, person_id="person-busy"))["challenge"]["id"]
        assert (
            await stack.put(challenge_id, key.sign(await stack.otp(challenge_id)))
        ).status_code == 204
    stack.clock.advance(3601)  # past the hour of five OTPs (SPEC §9), to reach the device limit

    response = await stack.http.post(
        "/v1/mfa/devices",
        headers=stack.auth(),
        json={"person_id": "person-busy", "key_type": "ecdsa-p256", "key": DeviceKey().public_hex},
    )
    assert_listed(response, 409, "device_limit_reached")


async def test_pending_device_cannot_bind_past_the_limit_until_one_is_unbound(
    stack: Stack,
) -> None:
    keys = [DeviceKey() for _ in range(6)]
    registered = []
    # Three bound, an hour passes (five OTPs an hour, SPEC §9), three more registered (at
    # most three pending), two of them bound: the sixth waits, pending, at the device limit.
    for index, key in enumerate(keys):
        if index == 3:
            stack.clock.advance(3601)
        registered.append(await stack.register(key, person_id="person-racing"))
        challenge = registered[-1]["challenge"]["id"]
        if index < 3:
            assert (
                await stack.put(challenge, key.sign(await stack.otp(challenge)))
            ).status_code == 204
    challenges = [r["challenge"]["id"] for r in registered]
    otps = [await stack.otp(challenge) for challenge in challenges]
    for key, challenge, otp in list(zip(keys, challenges, otps, strict=True))[3:5]:
        assert (await stack.put(challenge, key.sign(otp))).status_code == 204

    last = keys[5].sign(otps[5])
    assert_listed(await stack.put(challenges[5], last), 409, "device_limit_reached")

    unbound = await stack.http.delete(
        f"/v1/mfa/devices/{registered[0]['id']}", headers=stack.auth()
    )
    assert unbound.status_code == 204
    assert (await stack.put(challenges[5], last)).status_code == 204


async def test_another_clients_challenge_is_not_found(stack: Stack) -> None:
    key = DeviceKey()
    challenge_id = (await stack.register(key))["challenge"]["id"]
    otp = await stack.otp(challenge_id)

    assert_flat(await stack.put(challenge_id, key.sign(otp), client_id="bank-2"), 404, "not_found")
    other_get = await stack.http.get(f"{SIGNATURES}/{challenge_id}", headers=stack.auth("bank-2"))
    assert_flat(other_get, 404, "not_found")

    assert (await stack.put(challenge_id, key.sign(otp))).status_code == 204


async def test_twenty_concurrent_correct_signatures_bind_once(stack: Stack) -> None:
    key = DeviceKey()
    challenge_id = (await stack.register(key))["challenge"]["id"]
    otp = await stack.otp(challenge_id)
    signatures = {key.sign(otp) for _ in range(20)}
    assert len(signatures) == 20  # ECDSA is randomised: twenty distinct correct signatures

    responses = await asyncio.gather(*(stack.put(challenge_id, s) for s in signatures))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [204] + [409] * 19
    for response in responses:
        if response.status_code == 409:
            assert_listed(response, 409, "challenge_already_verified")
    events = await stack.events_of(challenge_id, count=21)
    verified = [e for e in events if e["type"] == "mfa.device_binding.signature_verified"]
    assert len(verified) == 1


async def test_openssl_cli_signature_verifies(stack: Stack, tmp_path: Path) -> None:
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "device.pem"
    pem.write_bytes(private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    key = DeviceKey()
    key.private_key = private_key
    challenge_id = (await stack.register(key))["challenge"]["id"]
    otp_file = tmp_path / "otp.txt"
    otp_file.write_bytes((await stack.otp(challenge_id)).encode("ascii"))

    openssl = await asyncio.create_subprocess_exec(
        "openssl", "dgst", "-sha256", "-sign", str(pem), str(otp_file), stdout=PIPE
    )
    signature, _ = await openssl.communicate()
    assert openssl.returncode == 0

    assert (await stack.put(challenge_id, signature.hex())).status_code == 204


def _ber_with_padded_r(der: bytes) -> bytes | None:
    """The same (r, s) with a redundant leading zero on r: valid BER, invalid DER."""
    r, s = decode_dss_signature(der)
    r_bytes, s_bytes = r.to_bytes(32, "big"), s.to_bytes(32, "big")
    if r_bytes[0] >= 0x80 or s_bytes[0] >= 0x80 or r_bytes[0] == 0 or s_bytes[0] == 0:
        return None
    body = b"\x02\x21\x00" + r_bytes + b"\x02\x20" + s_bytes
    return b"\x30" + bytes([len(body)]) + body


async def test_wrongly_made_signatures_are_refused(stack: Stack) -> None:
    key = DeviceKey()
    challenge_id = (await stack.register(key))["challenge"]["id"]
    otp = (await stack.otp(challenge_id)).encode("ascii")
    private_key = key.private_key

    # SHA-256 applied twice: the device hashed the OTP, then signed with SHA256withECDSA.
    double_hashed = private_key.sign(_sha256(otp), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(private_key.sign(otp, ec.ECDSA(hashes.SHA256())))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    ber = None
    while ber is None:
        ber = _ber_with_padded_r(private_key.sign(otp, ec.ECDSA(hashes.SHA256())))

    for wrong in (double_hashed, raw, ber):
        assert_listed(await stack.put(challenge_id, wrong.hex()), 403, "invalid_signature")
    assert (await stack.put(challenge_id, key.sign(otp.decode()))).status_code == 204


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


async def test_timed_out_request_is_retried_to_its_real_outcome(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(kafka_bootstrap, tmp_path / "store.db", database_url=database_url)
    tokens = Tokens(tmp_path / "keys")
    key = DeviceKey()
    async with running_worker(settings), api_client(api_settings(settings, tokens)) as http:
        registered = await http.post(
            "/v1/mfa/devices",
            headers=tokens.headers(),
            json={"person_id": "person-slow", "key_type": "ecdsa-p256", "key": key.public_hex},
        )
        challenge_id = registered.json()["challenge"]["id"]
        otp = await otp_of(settings, challenge_id)
    signature = key.sign(otp)
    headers, body = tokens.headers(), {"signature": signature}

    # No worker is running: the API gives up waiting, and says so.
    impatient = api_settings(settings, tokens, reply_wait_seconds=1.0)
    async with api_client(impatient) as http:
        pending = await http.put(f"{SIGNATURES}/{challenge_id}", headers=headers, json=body)
    error = assert_flat(pending, 503, "verification_pending")
    assert pending.headers["Retry-After"].isdigit()
    assert "Traceback" not in error["detail"]

    # The command was accepted all the same; once a worker runs, the same PUT gets the truth.
    async with running_worker(settings), api_client(api_settings(settings, tokens)) as http:
        retried = await http.put(f"{SIGNATURES}/{challenge_id}", headers=headers, json=body)
    assert retried.status_code == 204
    reader = otp_readers.pop(settings.otp_deliveries_topic)
    await reader.consumer.stop()


async def test_registration_retried_with_its_idempotency_key_is_the_same(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(kafka_bootstrap, tmp_path / "store.db", database_url=database_url)
    tokens = Tokens(tmp_path / "keys")
    key = DeviceKey()
    body = {"person_id": "person-retry", "key_type": "ecdsa-p256", "key": key.public_hex}
    headers = {**tokens.headers(), "Idempotency-Key": "onboarding-42"}
    await provision_topics(
        settings,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        partitions=settings.topic_partitions,
        replication_factor=settings.topic_replication_factor,
    )

    # No worker yet: the API gives up waiting; the command stays on the topic.
    impatient = api_settings(settings, tokens, reply_wait_seconds=1.0)
    async with api_client(impatient) as http:
        pending = await http.post("/v1/mfa/devices", headers=headers, json=body)
    assert_flat(pending, 503, "verification_pending")

    otps = await start_reader(kafka_bootstrap, settings.otp_deliveries_topic)
    events = await start_reader(kafka_bootstrap, settings.events_topic)
    try:
        async with running_worker(settings), api_client(api_settings(settings, tokens)) as http:
            first = await http.post("/v1/mfa/devices", headers=headers, json=body)
            again = await http.post("/v1/mfa/devices", headers=headers, json=body)
            other_body = {**body, "person_id": "someone-else"}
            reused = await http.post("/v1/mfa/devices", headers=headers, json=other_body)
            challenge_id = first.json()["challenge"]["id"]
            otp = (await otps.wait_for(lambda r: r["value"]["challenge_id"] == challenge_id))[0]
            signature = key.sign(otp["value"]["otp"])
            verified = await http.put(
                f"{SIGNATURES}/{challenge_id}",
                headers=tokens.headers(),
                json={"signature": signature},
            )
        created = await events.wait_for(
            lambda r: r["value"]["type"].endswith("challenge_created"), count=1
        )
    finally:
        await otps.consumer.stop()
        await events.consumer.stop()

    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert_listed(reused, 409, "idempotency_key_reused")
    assert verified.status_code == 204
    # Three requests, one registration: one OTP sent, and every challenge_created event
    # (the original, and its republications) carries one id.
    assert len([r for r in otps.records if r["value"]["challenge_id"] == challenge_id]) == 1
    assert {r["value"]["id"] for r in events.records if r["value"]["type"].endswith("created")} == {
        created[0]["value"]["id"]
    }
