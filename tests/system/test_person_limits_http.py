"""A person's limits end to end (SPEC §9), with two worker instances sharing the commands'
partitions: failures counted across challenges decided on different partitions, the lock
and its end, the caps on pending challenges and OTPs, clients kept apart."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.worker import DeviceKey
from tests.system.http_stack import Stack, assert_listed, http_stack

pytestmark = pytest.mark.kafka

DEVICE_CHALLENGES = "/v1/mfa/challenges/devices"


@pytest.fixture
async def stack(kafka_bootstrap: str, database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with http_stack(kafka_bootstrap, database_url, tmp_path, workers=2) as running:
        yield running


async def open_challenge(stack: Stack, device_id: str, client_id: str = "bank-1") -> httpx.Response:
    return await stack.http.post(
        DEVICE_CHALLENGES, headers=stack.auth(client_id), json={"device_id": device_id}
    )


async def challenges(
    stack: Stack, device_id: str, count: int, client_id: str = "bank-1"
) -> list[dict[str, Any]]:
    opened = [await open_challenge(stack, device_id, client_id) for _ in range(count)]
    assert [response.status_code for response in opened] == [201] * count
    return [response.json() for response in opened]


async def sign(
    stack: Stack, challenge_id: str, signature: str, client_id: str = "bank-1"
) -> httpx.Response:
    return await stack.http.put(
        f"{DEVICE_CHALLENGES}/{challenge_id}",
        headers=stack.auth(client_id),
        json={"signature": signature},
    )


async def test_five_failures_across_challenges_lock_the_person_until_the_lock_ends(
    stack: Stack,
) -> None:
    phone, impostor = DeviceKey(), DeviceKey()
    device_id = await stack.bind(phone, person_id="person-guessed")
    # Six challenges: their ids spread them over the partitions both workers hold.
    opened = await challenges(stack, device_id, 6)
    for challenge in opened[:5]:
        wrong = impostor.sign_text(challenge["string_to_sign"])
        assert_listed(await sign(stack, challenge["id"], wrong), 403, "invalid_signature")

    # The right signature on the sixth is not even checked; new challenges are refused.
    right = phone.sign_text(opened[5]["string_to_sign"])
    locked = assert_listed(
        await sign(stack, opened[5]["id"], right), 409, "person_temporarily_locked"
    )
    refused = await open_challenge(stack, device_id)
    item = assert_listed(refused, 409, "person_temporarily_locked")
    assert "refused until" in item["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 900
    assert "refused until" in locked["detail"]
    registration = await stack.http.post(
        "/v1/mfa/devices",
        headers=stack.auth(),
        json={
            "person_id": "person-guessed",
            "key_type": "ecdsa-p256",
            "key": DeviceKey().public_hex,
        },
    )
    assert_listed(registration, 409, "person_temporarily_locked")
    [lock] = await stack.events_of("bank-1/person-guessed", 1)
    assert lock["type"] == "mfa.device_binding.person_locked"
    assert lock["data"]["consecutive_failures"] == 5

    stack.clock.advance(901)  # the lock ends (the challenges expire with it)
    fresh = (await challenges(stack, device_id, 1))[0]
    assert (
        await sign(stack, fresh["id"], phone.sign_text(fresh["string_to_sign"]))
    ).status_code == 204


async def test_a_verified_signature_resets_the_run_and_clients_never_share_one(
    stack: Stack,
) -> None:
    phone, impostor, other_phone = DeviceKey(), DeviceKey(), DeviceKey()
    device_id = await stack.bind(phone, person_id="person-shared")
    other_device = await stack.bind(other_phone, person_id="person-shared", client_id="bank-2")
    opened = await challenges(stack, device_id, 9)
    # Four failures, a success, four failures: never five in a row.
    for challenge in opened[:4] + opened[5:9]:
        wrong = impostor.sign_text(challenge["string_to_sign"])
        assert_listed(await sign(stack, challenge["id"], wrong), 403, "invalid_signature")
        if challenge is opened[3]:
            right = phone.sign_text(opened[4]["string_to_sign"])
            assert (await sign(stack, opened[4]["id"], right)).status_code == 204
    assert (await open_challenge(stack, device_id)).status_code == 201
    # Another bank's person of the same id: four failures there do not add to bank-1's.
    others = await challenges(stack, other_device, 4, client_id="bank-2")
    for challenge in others:
        wrong = impostor.sign_text(challenge["string_to_sign"])
        response = await sign(stack, challenge["id"], wrong, client_id="bank-2")
        assert_listed(response, 403, "invalid_signature")
    assert (await open_challenge(stack, device_id)).status_code == 201
    assert (await open_challenge(stack, other_device, client_id="bank-2")).status_code == 201


async def test_pending_challenges_and_otps_per_hour_are_capped(stack: Stack) -> None:
    keys = [DeviceKey() for _ in range(4)]
    for key in keys[:3]:
        await stack.register(key, person_id="person-bombed")
    fourth = await stack.http.post(
        "/v1/mfa/devices",
        headers=stack.auth(),
        json={"person_id": "person-bombed", "key_type": "ecdsa-p256", "key": keys[3].public_hex},
    )
    assert_listed(fourth, 429, "too_many_requests")
    assert 1 <= int(fourth.headers["Retry-After"]) <= 300

    stack.clock.advance(301)  # the three expire: two more OTPs fit in the hour, not three
    for key in keys[:2]:
        await stack.register(key, person_id="person-bombed")
    sixth = await stack.http.post(
        "/v1/mfa/devices",
        headers=stack.auth(),
        json={"person_id": "person-bombed", "key_type": "ecdsa-p256", "key": keys[3].public_hex},
    )
    assert_listed(sixth, 429, "too_many_requests")
    assert 3000 <= int(sixth.headers["Retry-After"]) <= 3600 - 300


async def test_fifty_concurrent_failures_count_exactly_five(stack: Stack) -> None:
    """The bound: none. Each batch decides under the person's lock (SQLite's write lock, a
    PostgreSQL advisory lock on the person), so the fifth counted failure locks and every
    later attempt, in the same batch or another worker's, is refused without a count."""
    phone, impostor = DeviceKey(), DeviceKey()
    device_id = await stack.bind(phone, person_id="person-stormed")
    opened = await challenges(stack, device_id, 10)
    attempts = [
        sign(stack, challenge["id"], impostor.sign_text(challenge["string_to_sign"]))
        for challenge in opened
        for _ in range(5)
    ]
    answers = await asyncio.gather(*attempts)
    codes = Counter(
        "ok" if r.status_code == 204 else r.json()["errors"][0]["code"] for r in answers
    )
    assert codes == {"invalid_signature": 5, "person_temporarily_locked": 45}
    events = await stack.events_of("bank-1/person-stormed", 1)
    assert [event["type"] for event in events] == ["mfa.device_binding.person_locked"]


async def test_an_identical_request_to_a_spent_challenge_adds_no_event(stack: Stack) -> None:
    phone = DeviceKey()
    device_id = await stack.bind(phone, person_id="person-repeating")
    challenge = (await challenges(stack, device_id, 1))[0]
    text = challenge["string_to_sign"]
    assert (await sign(stack, challenge["id"], phone.sign_text(text))).status_code == 204
    other = phone.sign_text(text)  # a second, different, correct signature
    answers = [await sign(stack, challenge["id"], other) for _ in range(3)]
    for answer in answers:
        assert_listed(answer, 409, "challenge_already_verified")
    # The repeats publish at most the first refusal's event again, with its id (SPEC §5):
    # three facts about the challenge, whatever was republished.
    await stack.events_of(challenge["id"], 3)
    await asyncio.sleep(1.0)
    await stack.events.poll()
    facts = {
        r["value"]["id"]: r["value"]["type"]
        for r in stack.events.records
        if r["value"]["subject"] == challenge["id"]
    }
    assert Counter(facts.values()) == {
        "mfa.device_binding.device_challenge_created": 1,
        "mfa.device_binding.device_signature_verified": 1,
        "mfa.device_binding.device_signature_rejected": 1,
    }
