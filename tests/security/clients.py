"""Kafka clients connected as one principal of a :class:`SecurePlane`: what it may do, tried."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from harness.kafka.secure_plane import SecurePlane
from messaging import KafkaConnection, kafka_options

# A refusal comes back at once; this only bounds a broken run.
WITHIN = 30.0


async def publish(
    plane: SecurePlane, principal: str, topic: str, value: bytes, *, key: bytes = b"k"
) -> Any:
    """One record as ``principal``. Not idempotent, so that a refusal is the topic's own
    (an idempotent producer with no WRITE anywhere is refused at its cluster-wide start)."""
    producer = AIOKafkaProducer(
        **kafka_options(plane.bootstrap, plane.connection(principal)),
        acks="all",
        enable_idempotence=False,
        request_timeout_ms=10_000,
    )
    try:
        # Inside the try: a refused start leaves connections that stop() closes.
        await producer.start()
        async with asyncio.timeout(WITHIN):
            return await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def consume(
    plane: SecurePlane, principal: str, topic: str, group: str, *, at_least: int = 0
) -> list[bytes]:
    """Join ``group`` on ``topic`` as ``principal``; read from the start until ``at_least``
    records came (what one poll brings if 0)."""
    consumer = AIOKafkaConsumer(
        topic,
        **kafka_options(plane.bootstrap, plane.connection(principal)),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    values: list[bytes] = []
    try:
        await consumer.start()
        async with asyncio.timeout(WITHIN):
            while True:
                batches = await consumer.getmany(timeout_ms=1_000)
                values += [r.value or b"" for records in batches.values() for r in records]
                if len(values) >= at_least:
                    return values
    finally:
        await consumer.stop()


async def list_topics(bootstrap: str, connection: KafkaConnection) -> list[str]:
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap, connection), request_timeout_ms=5_000)
    async with asyncio.timeout(WITHIN):
        await admin.start()
        try:
            return list(await admin.list_topics())
        finally:
            await admin.close()
