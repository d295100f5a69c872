"""The Kafka side of a benchmark: private topic names, filling a topic, and watching a
topic's end and a group's committed offsets (how far the workers have got) from outside.

Every stage uses topics and a consumer group of its own (``bench.<stage>.<random>``), so
runs on a shared or external cluster never read each other's records.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError


@dataclass(frozen=True)
class BenchTopics:
    """The product's topics and worker group under one private prefix."""

    prefix: str

    @classmethod
    def fresh(cls, stage: str) -> BenchTopics:
        return cls(f"bench.{stage}.{uuid.uuid4().hex[:8]}")

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def replies(self) -> str:
        return f"{self.prefix}.replies"

    @property
    def otp(self) -> str:
        return f"{self.prefix}.otp"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.commands.dlq"

    @property
    def group(self) -> str:
        return f"{self.prefix}.workers"

    def worker_env(self) -> dict[str, str]:
        """What ``python -m worker`` reads to use these topics and this group."""
        return {
            "CONSUMER_GROUP": self.group,
            "COMMANDS_TOPIC": self.commands,
            "EVENTS_TOPIC": self.events,
            "OTP_DELIVERIES_TOPIC": self.otp,
            "DEAD_LETTER_TOPIC": self.dead_letters,
            "REPLIES_TOPIC": self.replies,
        }

    def api_env(self) -> dict[str, str]:
        return {"COMMANDS_TOPIC": self.commands, "REPLIES_TOPIC": self.replies}


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
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
        bootstrap_servers=bootstrap,
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

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
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
        bootstrap_servers=bootstrap,
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
