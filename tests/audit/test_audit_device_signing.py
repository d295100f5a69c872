"""The audit trail keeps the device signing events (SPEC §8) as it keeps every event: stored
once each, exactly as published, in the hash chain.

The trail reads of an event only its CloudEvents id, type and subject (audit/envelope.py):
nothing in it names an event type, so these tests show the four new types go through it
like the binding ones, on SQLite and PostgreSQL, and through the consumer on a real broker.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel
from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncEngine

from audit.envelope import read_event
from audit.settings import AuditSettings
from audit.tables import AuditRecord
from audit.trail import AuditTrail, Delivery
from audit.verification import verify_chain
from harness.topics import create_topics, unique_name
from tests.audit.test_audit_consumer import running_audit, wait_for_count
from tests.audit.test_audit_trail import attacker
from tests.support.sample_events import (
    attempt_event,
    device_attempt_event,
    device_challenge_created_event,
    key_added_event,
)

pytestmark = pytest.mark.audit

NEW_TYPES = [
    "mfa.device_binding.key_added",
    "mfa.device_binding.device_challenge_created",
    "mfa.device_binding.device_signature_rejected",
    "mfa.device_binding.device_signature_verified",
]


def device_signing(number: int) -> list[BaseModel]:
    """The ``number``-th device's signing, one event of each new type in :data:`NEW_TYPES`'
    order: its restricted key added, a payment challenge opened, a wrong signature on it, and
    a right one on the next challenge."""
    return [
        key_added_event(number),
        device_challenge_created_event(number),
        device_attempt_event(number),
        device_attempt_event(number + 1, reason=None),
    ]


def published(event: BaseModel) -> bytes:
    return event.model_dump_json().encode()


def subject_of(event: BaseModel) -> str:
    """Where the subject comes from: the device of a key added, else the challenge."""
    data = json.loads(published(event))["data"]
    return str(data["device_id"] if "signed_by_key_id" in data else data["challenge_id"])


def deliveries(events: Sequence[BaseModel], *, first_offset: int = 0) -> list[Delivery]:
    return [
        Delivery("events", 0, first_offset + index, published(event))
        for index, event in enumerate(events)
    ]


async def records(audit_engine: AsyncEngine) -> Sequence[Row[Any]]:
    async with audit_engine.connect() as connection:
        return (await connection.execute(select(AuditRecord).order_by(AuditRecord.seq))).all()


def test_each_new_type_is_read_with_its_type_and_subject() -> None:
    for event, event_type in zip(device_signing(1), NEW_TYPES, strict=True):
        document = json.loads(published(event))

        read = read_event(published(event))

        assert (read.event_id, read.event_type) == (document["id"], event_type)
        assert read.subject == document["subject"] == subject_of(event)
        assert json.loads(read.canonical) == document


async def test_device_signing_events_are_stored_once_and_chained(
    audit_engine: AsyncEngine,
) -> None:
    trail = AuditTrail(audit_engine)
    # Among binding events, as they share the topic.
    events = [attempt_event(0), *device_signing(1), attempt_event(1), *device_signing(3)]

    first = await trail.append(deliveries(events))
    again = await trail.append(deliveries(events[2:7], first_offset=2))

    assert (first.appended, first.duplicates, first.anomalies) == (10, 0, 0)
    assert (again.appended, again.duplicates, again.anomalies) == (0, 5, 0)
    rows = await records(audit_engine)
    assert [(row.seq, row.event_type, row.subject) for row in rows] == [
        (seq, json.loads(published(event))["type"], subject_of(event))
        for seq, event in enumerate(events, start=1)
    ]
    assert [row.event_type for row in rows[1:5]] == NEW_TYPES
    # Exactly as published: the payment and the text the device signed included.
    assert [json.loads(row.event) for row in rows] == [
        json.loads(published(event)) for event in events
    ]
    assert rows[2].event.count('"value":"12.30"') == 1
    # Each record linked to the one before it.
    assert [row.previous_hash for row in rows[1:]] == [row.record_hash for row in rows[:-1]]
    report = await verify_chain(audit_engine)
    assert report.intact, report.describe()
    assert report.records == 10


async def test_a_changed_payment_amount_is_named(audit_engine: AsyncEngine) -> None:
    await AuditTrail(audit_engine).append(deliveries(device_signing(1)))
    challenge = device_challenge_created_event(1)

    await attacker(
        audit_engine,
        "UPDATE audit_records SET event = REPLACE(event, '\"12.30\"', '\"1230.00\"') WHERE seq = 2",
    )

    report = await verify_chain(audit_engine)
    assert report.broken is not None
    assert (report.broken.seq, report.broken.event_id) == (2, challenge.id)
    assert "event was changed" in report.broken.problem


@pytest.mark.kafka
async def test_the_consumer_stores_the_device_signing_events(
    kafka_bootstrap: str, database_url: str, audit_engine: AsyncEngine
) -> None:
    topic = unique_name("audit-events")
    await create_topics(kafka_bootstrap, topic, partitions=3)
    events = [*device_signing(1), *device_signing(3)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            # Keyed as the worker keys them: the challenge, or the device for a key added.
            await producer.send(topic, published(event), key=subject_of(event).encode())
        await producer.flush()
    finally:
        await producer.stop()
    settings = AuditSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        audit_database_url=database_url,
        events_topic=topic,
        audit_consumer_group=unique_name("audit"),
    )

    async with running_audit(settings):
        await wait_for_count(audit_engine, len(events))

    rows = await records(audit_engine)
    # Partitions interleave: each event once, whatever the order across them.
    assert sorted((row.event_id, row.event_type, row.subject) for row in rows) == sorted(
        (json.loads(published(e))["id"], json.loads(published(e))["type"], subject_of(e))
        for e in events
    )
    assert {json.loads(row.event)["id"]: json.loads(row.event) for row in rows} == {
        json.loads(published(e))["id"]: json.loads(published(e)) for e in events
    }
    report = await verify_chain(audit_engine)
    assert report.intact, report.describe()
