"""Kafka from outside the product: private topics, filling one, reading one whole or from now
on, and watching a topic's end and a group's members and committed offsets (how far the
workers have got).

Every test and benchmark stage uses topics and a consumer group of its own, so runs on a
shared broker never read each other's records. Nothing here measures time to decide a
result: every wait is for a condition, bounded only so that a broken run ends.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from messaging import KafkaConnection, kafka_options

# Generous on purpose: the machine is shared, and these bound only a run that is broken.
GROUP_TIMEOUT = 240.0
DRAIN_TIMEOUT = 300.0


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Send keyed records the way the API does (acks=all, idempotent), batched; the count."""
    producer = AIOKafkaProducer(
        **kafka_options(bootstrap),
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    sent = 0
    try:
        pending: list[asyncio.Future[object]] = []
        for key, value in records:
            pending.append(await producer.send(topic, value, key=key))
            sent += 1
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


class OffsetWatch:
    """End offsets of topics and committed offsets of a group, summed over partitions."""

    def __init__(self, bootstrap: str, connection: KafkaConnection | None = None) -> None:
        self._bootstrap = bootstrap
        self._consumer = AIOKafkaConsumer(**kafka_options(bootstrap, connection), group_id=None)
        self._admin = AIOKafkaAdminClient(**kafka_options(bootstrap, connection))
        self._partitions: dict[str, list[TopicPartition]] = {}

    async def start(self) -> None:
        await self._consumer.start()
        await self._admin.start()

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def _partitions_of(self, topic: str) -> list[TopicPartition]:
        if topic not in self._partitions:
            described = await self._admin.describe_topics([topic])
            numbers = [
                partition["partition"]
                for description in described
                if description.get("error_code", 0) == 0
                for partition in description.get("partitions", [])
            ]
            if not numbers:
                return []  # not created yet
            self._partitions[topic] = [TopicPartition(topic, number) for number in numbers]
        return self._partitions[topic]

    async def end(self, topic: str) -> int:
        partitions = await self._partitions_of(topic)
        if not partitions:
            return 0
        ends = await self._consumer.end_offsets(partitions)
        return int(sum(ends.values()))

    async def committed(self, group: str, topic: str) -> int:
        """What ``group`` has committed on ``topic``; 0 while its coordinator is not found
        or still loading (a group that has just started), which is retriable."""
        try:
            offsets = await self._admin.list_consumer_group_offsets(group)
        except KafkaError as error:
            if getattr(error, "retriable", False):
                return 0
            raise
        return int(
            sum(
                meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0
            )
        )

    async def lag(self, group: str, topic: str) -> int:
        return await self.end(topic) - await self.committed(group, topic)

    async def wait_caught_up(self, group: str, topic: str, *, within: float) -> bool:
        """Until the group has committed everything on ``topic``; whether it did in time."""
        try:
            async with asyncio.timeout(within):
                while await self.lag(group, topic) > 0:
                    await asyncio.sleep(0.5)
        except TimeoutError:
            return False
        return True


async def read_all(
    bootstrap: str, topic: str, count: int, *, within: float
) -> list[tuple[int, bytes]]:
    """The first ``count`` records of ``topic`` (all partitions): (timestamp ms, value)."""
    consumer = AIOKafkaConsumer(
        topic,
        **kafka_options(bootstrap),
        group_id=None,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    found: list[tuple[int, bytes]] = []
    try:
        async with asyncio.timeout(within):
            while len(found) < count:
                batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for records in batches.values():
                    found.extend((record.timestamp, record.value or b"") for record in records)
    finally:
        await consumer.stop()
    return found


def unique_name(prefix: str) -> str:
    return f"test.{prefix}.{uuid.uuid4().hex[:12]}"


async def create_topics(bootstrap: str, *names: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        )
    finally:
        await admin.close()


async def tail(
    bootstrap: str, topic: str, connection: KafkaConnection | None = None
) -> AIOKafkaConsumer:
    """A started consumer positioned at the current end of every partition of ``topic``
    (connected with ``connection``, else the environment's settings)."""
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap, connection))
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] != 0:
        raise SystemExit(f"no topic {topic} at {bootstrap}: is `make run` running?")
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap, connection), group_id=None)
    await consumer.start()
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)  # resolve now: nothing published later is missed
    return consumer


async def wait_for_group(
    bootstrap: str,
    group: str,
    members: int,
    *,
    known: frozenset[str] = frozenset(),
    newcomers: int = 0,
    within: float = GROUP_TIMEOUT,
    connection: KafkaConnection | None = None,
) -> frozenset[str]:
    """Until the group is stable (every partition assigned) with exactly ``members`` members,
    at least ``newcomers`` of them not in ``known``; the members' ids.

    A killed member stays in the group until its session times out, so a count alone could
    be met by the survivors and the dead before the replacement even joined: ``known`` (the
    ids before the fault) and ``newcomers`` make it wait for the group that replaced it.
    """
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap, connection))
    await admin.start()
    try:
        async with asyncio.timeout(within):
            while True:
                try:
                    [description] = await admin.describe_consumer_groups([group])
                except KafkaError:
                    # The coordinator may be loading or moving while members come and go.
                    await asyncio.sleep(0.3)
                    continue
                _error, _group, state, _type, _protocol, found = description.groups[0]
                ids = frozenset(member[0] for member in found)
                if state == "Stable" and len(ids) == members and len(ids - known) >= newcomers:
                    return ids
                await asyncio.sleep(0.3)
    finally:
        await admin.close()


async def wait_until_drained(
    bootstrap: str, group: str, topic: str, within: float = DRAIN_TIMEOUT
) -> None:
    """Until the group has committed every command on ``topic``.

    A worker commits a command only after its event and reply were acknowledged (SPEC §6), so
    afterwards the events topic holds every event the load caused: reading it is complete.
    """
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    offsets = AIOKafkaConsumer(**kafka_options(bootstrap), enable_auto_commit=False)
    await admin.start()
    await offsets.start()
    try:
        partitions = await _partitions(admin, topic)
        async with asyncio.timeout(within):
            while True:
                ends = await offsets.end_offsets(partitions)
                committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
                behind = [
                    p
                    for p in partitions
                    if ends[p] > 0 and (committed.get(p) is None or committed[p].offset < ends[p])
                ]
                if not behind:
                    return
                await asyncio.sleep(0.5)
    finally:
        await offsets.stop()
        await admin.close()


async def _partitions(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
    [description] = await admin.describe_topics([topic])
    return sorted(TopicPartition(topic, p["partition"]) for p in description["partitions"])


@dataclass(frozen=True)
class TopicRecord:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None

    def json(self) -> Any:
        """The value as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.value) if self.value is not None else None
        except ValueError:
            return None


async def read_topic(
    bootstrap: str,
    topic: str,
    within: float = DRAIN_TIMEOUT,
    *,
    connection: KafkaConnection | None = None,
) -> list[TopicRecord]:
    """Every record on ``topic`` up to its end offsets as they are now, partition by partition.

    Reading to the end offsets, rather than for a while, makes the result complete.
    """
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap, connection))
    consumer = AIOKafkaConsumer(
        **kafka_options(bootstrap, connection), group_id=None, enable_auto_commit=False
    )
    await admin.start()
    await consumer.start()
    records: list[TopicRecord] = []
    try:
        partitions = await _partitions(admin, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        async with asyncio.timeout(within):
            while [p for p in partitions if await consumer.position(p) < ends[p]]:
                batches = await consumer.getmany(timeout_ms=500)
                for partition, batch in batches.items():
                    records.extend(
                        TopicRecord(partition.partition, r.offset, r.timestamp, r.key, r.value)
                        for r in batch
                        if r.offset < ends[partition]
                    )
    finally:
        await consumer.stop()
        await admin.close()
    return records
