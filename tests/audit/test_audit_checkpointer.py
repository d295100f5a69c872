"""When a checkpoint is taken, and what a broker that refuses it costs: the publisher's
rules, on a real audit database, with the Kafka producer replaced by a recording one and
the clock by a hand-moved one (the broker path is test_audit_checkpoint_attack.py's)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncEngine

from audit.checkpoints import Checkpointer, read_head
from audit.settings import AuditSettings
from audit.signing import CheckpointSigner, CheckpointVerifier
from audit.trail import AuditTrail, Delivery
from schemas.checkpoints import AuditCheckpoint
from tests.support.sample_events import attempt_event_json

pytestmark = pytest.mark.audit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingProducer:
    """Stands for aiokafka's producer: fails while ``failing`` is set, else records."""

    def __init__(self) -> None:
        self.failing = False
        self.attempts = 0
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> Any:
        self.attempts += 1
        if self.failing:
            raise KafkaTimeoutError
        self.sent.append((topic, key, value))


class Harness:
    def __init__(
        self,
        engine: AsyncEngine,
        checkpointer: Checkpointer,
        clock: Clock,
        producer: RecordingProducer,
    ) -> None:
        self.engine, self.checkpointer, self.clock = engine, checkpointer, clock
        self.producer = producer
        self.appended = 0

    async def append(self, count: int) -> None:
        deliveries = [
            Delivery("events", 0, offset, attempt_event_json(offset))
            for offset in range(self.appended, self.appended + count)
        ]
        result = await AuditTrail(self.engine).append(deliveries)
        self.appended += count
        self.checkpointer.appended(result.appended)

    async def tick(self, seconds: float = 0.0) -> None:
        self.clock.now += seconds
        self.checkpointer.poll()
        await asyncio.sleep(0)
        task = self.checkpointer._publishing
        if task is not None:
            await task

    @property
    def positions(self) -> list[int]:
        return [AuditCheckpoint.model_validate_json(v).seq for _, _, v in self.producer.sent]


SIGNER = CheckpointSigner(Ed25519PrivateKey.generate())


@pytest.fixture
async def harness(audit_engine: AsyncEngine) -> Harness:
    settings = AuditSettings(
        audit_chain_name="chain-a",
        audit_checkpoint_records=100,
        audit_checkpoint_seconds=60,
        audit_checkpoints_topic="checkpoints",
    )
    clock = Clock()
    producer = RecordingProducer()
    checkpointer = Checkpointer(settings, audit_engine, SIGNER, clock=clock, producer=producer)
    harness = Harness(audit_engine, checkpointer, clock, producer)
    await checkpointer.start()
    return harness


async def test_a_checkpoint_every_n_records_signs_the_committed_head(harness: Harness) -> None:
    await harness.append(60)
    await harness.tick()
    assert harness.positions == []  # 60 < 100 and no time has passed

    await harness.append(60)
    await harness.tick()

    assert harness.positions == [120]
    topic, key, value = harness.producer.sent[0]
    checkpoint = AuditCheckpoint.model_validate_json(value)
    head = await read_head(harness.engine)
    assert (topic, key) == ("checkpoints", b"chain-a")
    assert (checkpoint.seq, checkpoint.record_hash) == (head.seq, head.record_hash)
    CheckpointVerifier([SIGNER.public_key()]).verify(checkpoint)


async def test_after_the_interval_only_when_something_is_new(harness: Harness) -> None:
    await harness.append(5)
    await harness.tick(59)
    assert harness.positions == []

    await harness.tick(1)
    assert harness.positions == [5]

    await harness.tick(600)  # nothing appended since: nothing signed
    assert harness.positions == [5]

    await harness.append(1)
    await harness.tick(60)
    assert harness.positions == [5, 6]


async def test_a_refused_checkpoint_is_retried_with_backoff_from_the_newer_head(
    harness: Harness,
) -> None:
    harness.producer.failing = True
    await harness.append(100)
    await harness.tick()
    assert harness.positions == []

    # Appending goes on while the broker refuses; no retry before the backoff (1 s, then 2 s).
    await harness.append(30)
    await harness.tick(0.5)
    assert harness.producer.attempts == 1
    await harness.tick(0.5)  # the second attempt, refused too
    await harness.tick(1.0)
    assert harness.producer.attempts == 2

    harness.producer.failing = False
    await harness.tick(1.0)

    # One checkpoint, of the head as it is now: it vouches for every record before it.
    assert harness.positions == [130]


async def test_a_stop_anchors_what_was_appended_since_the_last_checkpoint(
    harness: Harness,
) -> None:
    await harness.append(100)
    await harness.tick()
    await harness.append(7)

    await harness.checkpointer.stop()

    assert harness.positions == [100, 107]


async def test_a_restarted_process_anchors_the_existing_head_once(
    harness: Harness, audit_engine: AsyncEngine
) -> None:
    # A previous process stored 30 records and died before checkpointing them.
    await AuditTrail(audit_engine).append(
        [Delivery("events", 0, offset, attempt_event_json(offset)) for offset in range(30)]
    )

    await harness.tick(60)
    await harness.tick(600)
    await harness.checkpointer.stop()

    assert harness.positions == [30]
