"""The foundation's proof that the broker is real: publish, consume in a group, commit."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker

from harness.topics import create_topics, unique_name

pytestmark = pytest.mark.kafka


def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def test_published_message_is_consumed_once_per_group(kafka_bootstrap: str) -> None:
    topic = unique_name("round-trip")
    group = unique_name("group")
    await create_topics(kafka_bootstrap, topic)

    async with KafkaBroker(kafka_bootstrap) as broker:
        await broker.publish(
            {"hello": "kafka"}, topic=topic, key=b"key-1", headers={"x-test": "first"}
        )

    first = _consumer(kafka_bootstrap, topic, group)
    await first.start()
    try:
        batches = await first.getmany(timeout_ms=10_000, max_records=10)
        records = [record for partition in batches.values() for record in partition]
        assert len(records) == 1
        record = records[0]
        assert record.value == b'{"hello":"kafka"}'
        assert record.key == b"key-1"
        assert ("x-test", b"first") in list(record.headers)
        await first.commit()
    finally:
        await first.stop()

    async with KafkaBroker(kafka_bootstrap) as broker:
        await broker.publish({"hello": "again"}, topic=topic, key=b"key-2")

    # Same group, new member: it resumes after the committed offset, so it sees only the
    # second message, never the first again.
    second = _consumer(kafka_bootstrap, topic, group)
    await second.start()
    try:
        batches = await second.getmany(timeout_ms=10_000, max_records=10)
        values = [record.value for partition in batches.values() for record in partition]
        assert values == [b'{"hello":"again"}']
    finally:
        await second.stop()
