"""Reading every checkpoint ever published for one chain, from the start of the topic.

Read with no consumer group (nothing committed, nothing to clean up) up to the end offsets
of the moment the read began. Messages of other chains are skipped; a message of this chain
that is not a checkpoint is kept as such, for the verifier to report: only a writer to the
topic could have put it there.
"""

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from messaging import kafka_options
from schemas.checkpoints import AuditCheckpoint

READ_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class PublishedCheckpoint:
    """One message of the chain's key: a checkpoint, or why it is not one."""

    partition: int
    offset: int
    checkpoint: AuditCheckpoint | None
    unreadable: str | None = None

    @property
    def where(self) -> str:
        return f"partition {self.partition}, offset {self.offset}"


class CheckpointTopicMissing(RuntimeError):
    """The checkpoints topic is not there for this principal: it does not exist (nothing was
    ever anchored there), or the principal may not describe it (an ACL)."""


async def read_checkpoints(
    bootstrap_servers: str, topic: str, chain: str
) -> list[PublishedCheckpoint]:
    partitions = await _partitions(bootstrap_servers, topic)
    consumer = AIOKafkaConsumer(
        **kafka_options(bootstrap_servers),
        client_id="device-binding-audit-verify",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        found: list[PublishedCheckpoint] = []
        key = chain.encode()
        # A broker that stops answering must not hang the verification for ever.
        async with asyncio.timeout(READ_TIMEOUT_SECONDS):
            while await _behind(consumer, ends):
                batches = await consumer.getmany(*partitions, timeout_ms=1000)
                for records in batches.values():
                    for record in records:
                        if record.offset >= ends[TopicPartition(record.topic, record.partition)]:
                            continue  # published after the read began
                        if record.key == key:
                            found.append(_parsed(record.partition, record.offset, record.value))
        return sorted(found, key=lambda published: (published.partition, published.offset))
    finally:
        await consumer.stop()


async def _partitions(bootstrap_servers: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap_servers))
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            raise CheckpointTopicMissing(
                f"the checkpoints topic {topic} does not exist, or this Kafka principal "
                "may not read it"
            )
        [description] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(TopicPartition(topic, p["partition"]) for p in description["partitions"])


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            return True
    return False


def _parsed(partition: int, offset: int, value: bytes | None) -> PublishedCheckpoint:
    if value is None:
        return PublishedCheckpoint(partition, offset, None, "no value (a tombstone)")
    try:
        return PublishedCheckpoint(partition, offset, AuditCheckpoint.model_validate_json(value))
    except ValidationError as error:
        fields = sorted({".".join(map(str, issue["loc"])) or "(value)" for issue in error.errors()})
        return PublishedCheckpoint(
            partition, offset, None, f"not a checkpoint: missing or invalid {', '.join(fields)}"
        )
