"""The worker against a real Kafka broker, driven by commands as the API sends them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from schemas.commands import COMMAND_ADAPTER, RegisterDevice, VerifySignature
from schemas.devices import DeviceRegistration
from schemas.reasons import Reason
from schemas.topics import DLQ_REASON_HEADER
from tests.support.worker import (
    CommandClient,
    DeviceKey,
    ManualClock,
    command_client,
    running_worker,
    worker_settings,
)
from worker import binding

pytestmark = pytest.mark.kafka


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def client(
    kafka_bootstrap: str, tmp_path: Path, clock: ManualClock, database_url: str
) -> AsyncIterator[CommandClient]:
    settings = worker_settings(kafka_bootstrap, tmp_path / "store.db", database_url=database_url)
    async with running_worker(settings, clock=clock), command_client(settings) as client:
        yield client


async def register(client: CommandClient, key: DeviceKey) -> tuple[str, str]:
    challenge_id = uuid.uuid4()
    reply = await client.send(
        RegisterDevice(
            **client.header(),
            device_id=uuid.uuid4(),
            key_id=uuid.uuid4(),
            challenge_id=challenge_id,
            registration=DeviceRegistration(
                person_id="person-1", key_type="ecdsa-p256", key=key.public_hex
            ),
        )
    )
    assert reply.outcome == "ok"
    return str(challenge_id), await client.otp_for(str(challenge_id))


async def test_correct_signature_binds_the_device(client: CommandClient) -> None:
    key = DeviceKey()
    challenge_id, otp = await register(client, key)

    reply = await client.send(
        VerifySignature(
            **client.header(), challenge_id=uuid.UUID(challenge_id), signature=key.sign(otp)
        )
    )

    assert reply.outcome == "ok"
    created, verified = await client.events_of(challenge_id, count=2)
    assert created["type"] == "mfa.device_binding.challenge_created"
    assert verified["type"] == "mfa.device_binding.signature_verified"
    assert verified["data"]["attempt"] == 1
    assert otp not in str(verified)


def verify(
    client: CommandClient, challenge_id: str, signature: str, **header: str
) -> VerifySignature:
    return VerifySignature(
        **client.header(**header), challenge_id=uuid.UUID(challenge_id), signature=signature
    )


async def test_expired_challenge_is_refused_without_counting(
    client: CommandClient, clock: ManualClock
) -> None:
    key = DeviceKey()
    challenge_id, otp = await register(client, key)
    clock.advance(301)

    reply = await client.send(verify(client, challenge_id, key.sign(otp)))

    assert (reply.outcome, reply.reason) == ("rejected", Reason.CHALLENGE_EXPIRED)
    _, rejected = await client.events_of(challenge_id, count=2)
    assert rejected["data"]["reason"] == "challenge_expired"
    assert rejected["data"]["attempt"] is None


async def test_five_failures_lock_the_challenge_even_for_the_right_signature(
    client: CommandClient,
) -> None:
    key, impostor = DeviceKey(), DeviceKey()
    challenge_id, otp = await register(client, key)

    remaining = []
    for _ in range(5):
        reply = await client.send(verify(client, challenge_id, impostor.sign(otp)))
        assert reply.reason == Reason.INVALID_SIGNATURE
        remaining.append(reply.attempts_remaining)
    assert remaining == [4, 3, 2, 1, 0]

    reply = await client.send(verify(client, challenge_id, key.sign(otp)))

    assert reply.reason == Reason.CHALLENGE_LOCKED
    events = await client.events_of(challenge_id, count=7)
    assert [e["data"]["attempt"] for e in events[1:]] == [1, 2, 3, 4, 5, None]
    assert not any(e["type"].endswith("signature_verified") for e in events)


async def test_identical_retries_answer_the_stored_outcome_without_counting(
    client: CommandClient,
) -> None:
    key, impostor = DeviceKey(), DeviceKey()
    challenge_id, otp = await register(client, key)
    bad = impostor.sign(otp)

    first = await client.send(verify(client, challenge_id, bad))
    again = await client.send(verify(client, challenge_id, bad.upper()))
    assert (first.attempts_remaining, again.attempts_remaining) == (4, 4)
    assert again.reason == Reason.INVALID_SIGNATURE

    good = key.sign(otp)
    assert (await client.send(verify(client, challenge_id, good))).outcome == "ok"
    assert (await client.send(verify(client, challenge_id, good))).outcome == "ok"

    events = await client.events_of(challenge_id, count=5)
    # The repeats republish the original events, with their original ids: two attempts only.
    assert len({e["id"] for e in events}) == 3
    assert [e["data"].get("attempt") for e in events[1:]] == [1, 1, 2, 2]


async def test_another_clients_challenge_is_not_found_and_unchanged(
    client: CommandClient,
) -> None:
    key = DeviceKey()
    challenge_id, otp = await register(client, key)

    reply = await client.send(verify(client, challenge_id, key.sign(otp), client_id="bank-2"))
    assert (reply.outcome, reply.reason) == ("rejected", Reason.NOT_FOUND)

    # The owner can still verify: nothing was counted or changed by the stranger.
    assert (await client.send(verify(client, challenge_id, key.sign(otp)))).outcome == "ok"


async def test_redelivered_command_counts_once_and_keeps_its_event_id(
    client: CommandClient,
) -> None:
    key, impostor = DeviceKey(), DeviceKey()
    challenge_id, otp = await register(client, key)
    command = verify(client, challenge_id, impostor.sign(otp))

    first = await client.send(command)
    await client.send_raw(COMMAND_ADAPTER.dump_json(command), key=challenge_id.encode())
    await client.replies.wait_for(
        lambda r: r["value"]["command_id"] == str(command.command_id), count=2
    )

    events = await client.events_of(challenge_id, count=3)
    assert first.attempts_remaining == 4
    assert events[1]["id"] == events[2]["id"]
    assert events[1] == events[2]


async def test_otp_with_leading_zero_keeps_it(
    client: CommandClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binding, "new_otp", lambda: "012345")
    key = DeviceKey()
    challenge_id, otp = await register(client, key)
    assert otp == "012345"

    assert (await client.send(verify(client, challenge_id, key.sign("12345")))).reason == (
        Reason.INVALID_SIGNATURE
    )
    assert (await client.send(verify(client, challenge_id, key.sign(otp)))).outcome == "ok"


async def test_unparseable_commands_go_to_the_dlq_and_the_worker_goes_on(
    client: CommandClient,
) -> None:
    await client.send_raw(b"not json at all", key=b"k1")
    await client.send_raw(b'{"type": "verify_signature", "signature": "zz"}', key=b"k2")

    dead = await client.dead_letters.wait_for(lambda r: True, count=2)
    assert [d["raw"] for d in dead] == [
        b"not json at all",
        b'{"type": "verify_signature", "signature": "zz"}',
    ]
    assert dead[0]["key"] == b"k1"
    reason = dead[1]["headers"][DLQ_REASON_HEADER].decode()
    assert "command_id: Field required" in reason
    assert "zz" not in reason

    key = DeviceKey()
    challenge_id, otp = await register(client, key)
    assert (await client.send(verify(client, challenge_id, key.sign(otp)))).outcome == "ok"


async def test_a_command_whose_values_the_store_refuses_is_dead_lettered(
    client: CommandClient, database_url: str
) -> None:
    # A producer other than the API may send what the API never would: a request id longer
    # than its column. PostgreSQL refuses it for good (SQLSTATE 22001); retrying would block
    # the partition for ever. SQLite does not enforce lengths and simply stores it.
    header = {**client.header(), "request_id": "r" * 300}
    challenge_id = uuid.uuid4()
    command = RegisterDevice(
        **header,
        device_id=uuid.uuid4(),
        key_id=uuid.uuid4(),
        challenge_id=challenge_id,
        registration=DeviceRegistration(
            person_id="person-long", key_type="ecdsa-p256", key=DeviceKey().public_hex
        ),
    )
    await client.send_raw(COMMAND_ADAPTER.dump_json(command), key=str(challenge_id).encode())

    if database_url.startswith("postgresql"):
        [dead] = await client.dead_letters.wait_for(lambda r: True)
        assert dead["headers"][DLQ_REASON_HEADER].decode() == (
            "the store refused its data (SQLSTATE 22001)"
        )
    else:
        [reply] = await client.replies.wait_for(
            lambda r: r["value"]["command_id"] == str(command.command_id)
        )
        assert reply["value"]["outcome"] == "ok"
    # Either way the partition moves on.
    key = DeviceKey()
    next_challenge, otp = await register(client, key)
    assert (await client.send(verify(client, next_challenge, key.sign(otp)))).outcome == "ok"
