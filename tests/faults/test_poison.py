"""Reliability under poison on the commands topic (SPEC §5, §6, §8): a thousand commands that
cannot be parsed, of many kinds (binding and device signing alike), interleaved with valid
work on every partition, each dead-lettered exactly once, while every valid command (devices
registered and bound, device challenges opened and signed) is answered and announced with its
true outcome; and a run of poison past the limit halts dead-lettering instead.

The tests share the session's broker on topics of their own.
"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from schemas.commands import COMMAND_ADAPTER
from schemas.topics import DLQ_REASON_HEADER, DLQ_SOURCE_HEADER
from tests.faults.collector import Received, collecting
from tests.faults.kinds import BINDING, DEVICE
from tests.faults.poison import (
    Commands,
    dead_lettered_count,
    interleave,
    poison,
    raw_producer,
    valid_open,
    valid_register,
    valid_verify,
    valid_verify_device,
)
from tests.support.worker import DeviceKey, running_worker, worker_settings

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

POISON_COUNT = 1000
# Per partition, at most this many poison commands follow each other: the worker's run
# counter is per process, across its partitions, so a run it sees is at most the sum of one
# run per partition, which must stay below max_consecutive_dead_letters.
RUN_CAP = 40
PARTITIONS = 2
# The phases poison is published in: registrations, binding signatures followed by the
# openings of device challenges, device signatures.
PHASES = 3
OK = ("ok", None)


@pytest.mark.slow
async def test_poison_interleaved_with_work_is_dead_lettered_once_and_the_work_done(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(
        kafka_bootstrap,
        tmp_path / "store.db",
        database_url=database_url,
        topic_partitions=PARTITIONS,
    )
    assert settings.max_consecutive_dead_letters > RUN_CAP * PARTITIONS
    rng = random.Random(20240611)  # the same interleaving on every run
    devices_per_partition = 60
    keys = {p: [DeviceKey() for _ in range(devices_per_partition)] for p in range(PARTITIONS)}
    challenges = {
        p: [uuid.uuid4() for _ in range(devices_per_partition)] for p in range(PARTITIONS)
    }
    payloads = poison(POISON_COUNT, DeviceKey().public_hex)
    for payload in payloads:
        # Each is poison as the worker judges it, not just as this test means it.
        with pytest.raises(ValidationError):
            COMMAND_ADAPTER.validate_json(payload)
    # The poison split over the phases and the partitions; some with a key, some without
    # (the DLQ keeps the key as received).
    groups = PHASES * PARTITIONS
    chunks = [
        payloads[n * POISON_COUNT // groups : (n + 1) * POISON_COUNT // groups]
        for n in range(groups)
    ]

    def poison_key(raw: bytes) -> bytes | None:
        return None if len(raw) % 3 == 0 else f"poison-key-{len(raw)}".encode()

    replies_expected: dict[str, tuple[str, str | None]] = {}  # command id -> outcome, reason
    event_expected: dict[str, tuple[str, str]] = {}  # request id -> challenge id, event type

    def expect(
        command: dict[str, Any], reply: tuple[str, str | None], event: str | None
    ) -> dict[str, Any]:
        replies_expected[command["command_id"]] = reply
        if event is not None:
            event_expected[command["request_id"]] = (command["challenge_id"], event)
        return command

    async with (
        running_worker(settings),
        collecting(
            kafka_bootstrap,
            settings.replies_topic,
            settings.events_topic,
            settings.otp_deliveries_topic,
            settings.dead_letter_topic,
        ) as seen,
        raw_producer(kafka_bootstrap) as producer,
    ):
        commands = Commands(producer, settings.commands_topic)

        async def publish(phase: int, valid: dict[int, list[dict[str, Any]]]) -> None:
            """Each partition's valid commands in order, poison of the phase between them."""

            def planned(p: int) -> list[tuple[bool, bytes, bytes | None]]:
                encoded = [json.dumps(command).encode() for command in valid[p]]
                chunk = chunks[phase * PARTITIONS + p]
                return [
                    (
                        ok,
                        raw,
                        str(json.loads(raw)["challenge_id"]).encode() if ok else poison_key(raw),
                    )
                    for ok, raw in interleave(encoded, chunk, rng, RUN_CAP)
                ]

            await commands.publish({p: planned(p) for p in range(PARTITIONS)})

        def replied() -> dict[str, dict[str, Any]]:
            return {
                r.value["command_id"]: r.value for r in seen.of(settings.replies_topic) if r.value
            }

        # Phase 1: registrations among poison.
        registrations = {
            p: [
                expect(valid_register(cid, key, f"person-{p}-{n}"), OK, BINDING.created)
                for n, (cid, key) in enumerate(zip(challenges[p], keys[p], strict=True))
            ]
            for p in range(PARTITIONS)
        }
        await publish(0, registrations)

        def otp_of() -> dict[str, str]:
            return {
                r.value["challenge_id"]: r.value["otp"]
                for r in seen.of(settings.otp_deliveries_topic)
                if r.value
            }

        await seen.wait(
            lambda: len(otp_of()) >= PARTITIONS * devices_per_partition,
            within=180,
            what="an OTP for every registration",
        )
        otps = otp_of()

        # Phase 2: signatures among poison, one in six wrong; then, on the same partition
        # (so after the signature that bound the device), a device challenge opened for
        # each device: refused for those left unbound.
        phase_two: dict[int, list[dict[str, Any]]] = {}
        opens: list[tuple[dict[str, Any], DeviceKey]] = []
        for p in range(PARTITIONS):
            phase_two[p], openings = [], []
            for n, (cid, key) in enumerate(zip(challenges[p], keys[p], strict=True)):
                device_id = registrations[p][n]["device_id"]
                wrong = n % 6 == 0
                signer = DeviceKey() if wrong else key
                verify = valid_verify(cid, signer.sign(otps[str(cid)]))
                answer = ("rejected", "invalid_signature") if wrong else OK
                phase_two[p].append(
                    expect(verify, answer, BINDING.rejected if wrong else BINDING.verified)
                )
                opening = valid_open(uuid.uuid4(), device_id)
                openings.append(
                    expect(opening, ("rejected", "not_found"), None)
                    if wrong
                    else expect(opening, OK, DEVICE.created)
                )
                if not wrong:
                    opens.append((opening, key))
            phase_two[p] += openings
        await publish(1, phase_two)
        opened = {command["command_id"] for command, _ in opens}
        await seen.wait(
            lambda: opened <= replied().keys(), within=180, what="the device challenges opened"
        )
        bodies = replied()

        # Phase 3: device signatures among poison, one in five wrong.
        device_signatures: dict[int, list[dict[str, Any]]] = {p: [] for p in range(PARTITIONS)}
        for n, (opening, key) in enumerate(opens):
            body = bodies[opening["command_id"]]["body"]
            wrong = n % 5 == 1
            signature = (DeviceKey() if wrong else key).sign_text(body["string_to_sign"])
            command = valid_verify_device(body["id"], signature)
            answer = ("rejected", "invalid_signature") if wrong else OK
            event = DEVICE.rejected if wrong else DEVICE.verified
            device_signatures[n % PARTITIONS].append(expect(command, answer, event))
        await publish(2, device_signatures)

        # The worker never stopped: a fresh command on each partition, after all the
        # poison, is answered (and, partitions being in order, everything before it is done).
        fresh = {
            p: expect(valid_register(uuid.uuid4(), DeviceKey(), f"fresh-{p}"), OK, BINDING.created)
            for p in range(PARTITIONS)
        }
        await commands.publish(
            {
                p: [(True, json.dumps(c).encode(), c["challenge_id"].encode())]
                for p, c in fresh.items()
            }
        )
        fresh_ids = {c["command_id"] for c in fresh.values()}
        await seen.wait(
            lambda: fresh_ids <= replied().keys(), within=180, what="the replies to fresh commands"
        )
        await seen.drain()

    sent_poison = [s for s in commands.sent if not s.valid]
    assert len(sent_poison) == POISON_COUNT
    assert len([s for s in commands.sent if s.valid]) == len(replies_expected)

    # Every poison command on the DLQ exactly once: its bytes, key, reason and source.
    dead = seen.of(settings.dead_letter_topic)
    by_raw: dict[bytes | None, list[Received]] = {}
    for record in dead:
        by_raw.setdefault(record.raw, []).append(record)
    assert len(dead) == POISON_COUNT
    for sent in sent_poison:
        [record] = by_raw[sent.raw]
        assert record.key == sent.key
        reason = record.headers[DLQ_REASON_HEADER].decode()
        assert reason
        assert "ab" * 100 not in reason
        assert "p" * 1000 not in reason
        source = record.headers[DLQ_SOURCE_HEADER].decode()
        assert source == f"{settings.commands_topic}/{sent.partition}/{sent.offset}"

    # Every valid command processed: its reply, with the true outcome, and its event.
    replies: dict[str, list[dict[str, Any]]] = {}
    for record in seen.of(settings.replies_topic):
        replies.setdefault(record.value["command_id"], []).append(record.value)
    for command_id, (outcome, why) in replies_expected.items():
        assert command_id in replies, command_id
        assert {(r["outcome"], r["reason"]) for r in replies[command_id]} == {(outcome, why)}
    events: dict[str, list[dict[str, Any]]] = {}
    for record in seen.of(settings.events_topic):
        events.setdefault(record.value["data"]["request_id"], []).append(record.value)
    for request_id, (challenge_id, kind) in event_expected.items():
        assert request_id in events, request_id
        assert {(e["subject"], e["type"]) for e in events[request_id]} == {(challenge_id, kind)}
    otp_records = seen.of(settings.otp_deliveries_topic)
    assert len({r.value["challenge_id"] for r in otp_records}) == len(otp_records)

    print(
        f"\npoison: {POISON_COUNT} poison and {len(replies_expected)} valid commands on"
        f" {PARTITIONS} partitions (runs of at most {RUN_CAP} per partition):"
        f" ({len(opens)} device challenges opened and signed)"
        f" {len(dead)} dead-lettered, {len(replies)} replies,"
        f" {len(seen.of(settings.events_topic))} events"
    )


async def test_one_poison_command_past_the_limit_stops_dead_lettering(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(
        kafka_bootstrap, tmp_path / "store.db", database_url=database_url, topic_partitions=1
    )
    limit = settings.max_consecutive_dead_letters
    payloads = [f"poison in a row #{n}".encode() for n in range(limit + 1)]
    after = valid_verify(uuid.uuid4(), "3045022100" + "ab" * 32 + "0220" + "cd" * 32)
    before = dead_lettered_count()
    async with (
        running_worker(settings),
        collecting(kafka_bootstrap, settings.dead_letter_topic, settings.replies_topic) as seen,
        raw_producer(kafka_bootstrap) as producer,
    ):
        commands = Commands(producer, settings.commands_topic)
        in_a_row: list[tuple[bool, bytes, bytes | None]] = [(False, raw, None) for raw in payloads]
        in_a_row.append((True, json.dumps(after).encode(), None))
        await commands.publish({0: in_a_row})
        # Counted before each try: past ``limit`` the worker is trying the one past the
        # limit again and again, refusing it each time.
        await seen.wait(
            lambda: dead_lettered_count() - before >= limit + 3,
            within=120,
            what="the worker reaching the command past the limit",
        )
        await seen.drain()
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(settings.consumer_group)
        finally:
            await admin.close()

    dead = seen.of(settings.dead_letter_topic)
    assert [record.raw for record in dead] == payloads[:limit]
    past_limit = commands.sent[limit]
    assert past_limit.raw == payloads[limit]
    # Not committed: a restarted worker begins with it (and an operator sees the lag).
    [position] = committed.values()
    assert position.offset == past_limit.offset
    # Nothing behind it on the partition was processed.
    assert not [
        r
        for r in seen.of(settings.replies_topic)
        if r.value and r.value["command_id"] == after["command_id"]
    ]
