"""The fraud-signal consumer against a real broker: alerts per window crossing, restarts.

The events are synthetic but built with the real models, and keyed by challenge id as the
worker keys them, so they spread over the events topic's partitions.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from fraud.app import FraudSignals
from fraud.settings import FraudSettings
from harness.topics import create_topics, unique_name
from schemas.events import ChallengeCreated, CloudEvent, EventType, SignatureAttempt
from schemas.reasons import Reason
from schemas.signals import SUSPICIOUS_ACTIVITY, Scope, SuspiciousActivityEvent

pytestmark = [pytest.mark.audit, pytest.mark.kafka]

PARTITIONS = 3
PERSON = "person-7"
# Event times: now, so the start-up warm-up (which goes by record timestamps) and the event
# times agree, as they do in production.
T0 = datetime.now(UTC).replace(microsecond=0)
SIGNATURE = "3044" + "cd" * 66


def device() -> UUID:
    return uuid.uuid4()


def attempt(
    seconds: float,
    *,
    device_id: UUID | None,
    person: str | None = PERSON,
    reason: Reason | None = Reason.INVALID_SIGNATURE,
) -> CloudEvent[SignatureAttempt]:
    decided = T0 + timedelta(seconds=seconds)
    challenge_id = uuid.uuid4()
    return CloudEvent[SignatureAttempt](
        id=str(uuid.uuid4()),
        type=EventType.SIGNATURE_REJECTED if reason else EventType.SIGNATURE_VERIFIED,
        subject=str(challenge_id),
        time=decided,
        data=SignatureAttempt(
            challenge_id=challenge_id,
            device_id=device_id,
            key_id=uuid.uuid4() if device_id else None,
            person_id=person,
            client_id="bank-1",
            outcome="rejected" if reason else "verified",
            reason=reason,
            attempt=1 if reason is Reason.INVALID_SIGNATURE else None,
            attempts_remaining=4 if reason is Reason.INVALID_SIGNATURE else None,
            device_data=None,
            signature=SIGNATURE,
            request_id=f"req-{uuid.uuid4().hex[:8]}",
            received_at=decided,
            decided_at=decided,
        ),
    )


def created(device_id: UUID) -> CloudEvent[ChallengeCreated]:
    challenge_id = uuid.uuid4()
    return CloudEvent[ChallengeCreated](
        id=str(uuid.uuid4()),
        type=EventType.CHALLENGE_CREATED,
        subject=str(challenge_id),
        time=T0,
        data=ChallengeCreated(
            challenge_id=challenge_id,
            device_id=device_id,
            key_id=uuid.uuid4(),
            person_id=PERSON,
            client_id="bank-1",
            key_purpose="binding",
            device_data=None,
            request_id="req-created",
            created_at=T0,
            expires_at=T0 + timedelta(minutes=5),
        ),
    )


Published = CloudEvent[SignatureAttempt] | CloudEvent[ChallengeCreated] | bytes


@dataclass(frozen=True)
class Alert:
    key: bytes | None
    event: SuspiciousActivityEvent


class Bench:
    """One test's topics and group, and the means to publish, wait and read them."""

    def __init__(self, bootstrap: str) -> None:
        self.settings = FraudSettings(
            kafka_bootstrap_servers=bootstrap,
            events_topic=unique_name("fraud-events"),
            signals_topic=unique_name("fraud-signals"),
            fraud_consumer_group=unique_name("fraud-group"),
            fraud_window_seconds=300,
            fraud_person_threshold=3,
            fraud_device_threshold=2,
            topic_partitions=1,
        )
        self.bootstrap = bootstrap

    async def publish(self, *events: Published) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await producer.start()
        try:
            for event in events:
                if isinstance(event, bytes):
                    await producer.send_and_wait(self.settings.events_topic, event, key=b"x")
                else:
                    await producer.send_and_wait(
                        self.settings.events_topic,
                        event.model_dump_json().encode(),
                        key=event.subject.encode(),  # the challenge id, as the worker keys it
                    )
        finally:
            await producer.stop()

    async def caught_up(self) -> None:
        """Until the consumer has committed everything on the events topic (30 s at most)."""
        partitions = [
            TopicPartition(self.settings.events_topic, partition) for partition in range(PARTITIONS)
        ]
        ends = await self._end_offsets(partitions)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            deadline = time.monotonic() + 30
            while True:
                committed = await admin.list_consumer_group_offsets(
                    self.settings.fraud_consumer_group
                )
                # An empty partition gives the consumer nothing to commit.
                if all(
                    end == 0 or (tp in committed and committed[tp].offset >= end)
                    for tp, end in ends.items()
                ):
                    return
                assert time.monotonic() < deadline, f"not caught up: {committed} < {ends}"
                await asyncio.sleep(0.2)
        finally:
            await admin.close()

    async def alerts(self) -> list[Alert]:
        """Every suspicious_activity alert on the signals topic so far, in order."""
        return [
            Alert(key, SuspiciousActivityEvent.model_validate_json(value))
            for key, value in await self.signals()
            if json.loads(value)["type"] == SUSPICIOUS_ACTIVITY
        ]

    async def signals(self) -> list[tuple[bytes | None, bytes]]:
        """Every record on the signals topic so far, whatever its type: (key, value)."""
        topic = self.settings.signals_topic
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await consumer.start()
        try:
            # The consumer creates it with topic_partitions=1 partition.
            partitions = [TopicPartition(topic, 0)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            signals = []
            while any([await consumer.position(tp) < end for tp, end in ends.items()]):
                batches = await consumer.getmany(timeout_ms=1000)
                signals += [
                    (record.key, record.value) for records in batches.values() for record in records
                ]
            return signals
        finally:
            await consumer.stop()

    async def _end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await consumer.start()
        try:
            ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
            return ends
        finally:
            await consumer.stop()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FraudSignals]:
        signals = FraudSignals(self.settings)
        await signals.start()
        try:
            yield signals
        finally:
            await signals.stop()


@pytest.fixture
async def bench(kafka_bootstrap: str) -> Bench:
    bench = Bench(kafka_bootstrap)
    # The signals topic is left to the consumer's own provisioning.
    await create_topics(kafka_bootstrap, bench.settings.events_topic, partitions=PARTITIONS)
    return bench


def person_alerts(alerts: list[Alert]) -> list[SuspiciousActivityEvent]:
    return [alert.event for alert in alerts if alert.event.data.scope is Scope.PERSON]


async def test_one_alert_per_crossing_and_none_again_after_a_restart(bench: Bench) -> None:
    d1, d2, d3, d4 = device(), device(), device(), device()
    r1 = attempt(0, device_id=d1)
    r2 = attempt(10, device_id=d2, reason=Reason.CHALLENGE_LOCKED)
    r3 = attempt(20, device_id=d3)

    async with bench.running():
        await bench.publish(
            b"{not json",
            created(d1),
            r1,
            r1,  # redelivered: were it counted, r2 would make the crossing
            attempt(5, device_id=d1, reason=None),  # verified
            attempt(6, device_id=d1, reason=Reason.CHALLENGE_EXPIRED),
            attempt(7, device_id=None, person=None, reason=Reason.NOT_FOUND),
            r2,
        )
        await bench.caught_up()
        assert await bench.alerts() == []

        await bench.publish(r3)
        await bench.caught_up()
        [first] = await bench.alerts()

        await bench.publish(attempt(30, device_id=d4))  # the 4th within the window
        await bench.caught_up()
        assert len(await bench.alerts()) == 1

    assert first.key == PERSON.encode()
    assert first.event.data.scope is Scope.PERSON
    assert first.event.data.event_ids == [r1.id, r2.id, r3.id]
    assert (first.event.data.rejections, first.event.data.devices) == (3, 3)
    assert SIGNATURE not in first.event.model_dump_json()

    # While it is down: a second rejection on d1. Only the warm-up knows of the first one
    # (committed before the restart), and of the person's alert already raised.
    r5 = attempt(40, device_id=d1)
    await bench.publish(r5)
    async with bench.running():
        await bench.caught_up()
        alerts = await bench.alerts()

        assert alerts[0] == first
        assert len(alerts) == 2, "the person's crossing must not be published again"
        device_alert = alerts[1]
        assert device_alert.key == PERSON.encode()
        assert device_alert.event.data.scope is Scope.DEVICE
        assert device_alert.event.data.device_id == d1
        assert device_alert.event.data.event_ids == [r1.id, r5.id]

        # Past the window everything before 100 s has slid out: the person re-arms.
        later = [attempt(400 + 10 * n, device_id=device()) for n in range(3)]
        await bench.publish(*later)
        await bench.caught_up()
        alerts = await bench.alerts()

    assert len(alerts) == 3
    [_, second] = person_alerts(alerts)
    assert second.data.event_ids == [event.id for event in later]
    assert second.id != first.event.id


async def test_an_alert_whose_offsets_were_not_committed_is_published_again_with_its_id(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [attempt(n, device_id=device()) for n in range(3)]
    signals = FraudSignals(bench.settings)
    # Commits go through until an alert has been published; the commit after it fails,
    # as when the process dies between the two.
    sent_alert = asyncio.Event()
    publish, commit = signals._publish, signals._consumer.commit

    async def publish_and_note(alert: SuspiciousActivityEvent) -> None:
        await publish(alert)
        sent_alert.set()

    async def commit_unless_alerted(offsets: Any) -> None:
        if sent_alert.is_set():
            raise RuntimeError("broker gone before the commit")
        await commit(offsets)

    monkeypatch.setattr(signals, "_publish", publish_and_note)
    monkeypatch.setattr(signals._consumer, "commit", commit_unless_alerted)
    await signals.start()
    try:
        # Something committed first, so the restart resumes from a committed offset.
        await bench.publish(attempt(-5, device_id=device(), reason=None))
        await bench.caught_up()
        await bench.publish(*events)
        await asyncio.wait_for(asyncio.wait([signals.running]), timeout=30)
    finally:
        with pytest.raises(RuntimeError, match="before the commit"):
            await signals.stop()
    [published] = await bench.alerts()

    async with bench.running():
        await bench.caught_up()
        again = await bench.alerts()

    assert [alert.event for alert in again] == [published.event, published.event]
    assert published.event.data.event_ids == [event.id for event in events]
