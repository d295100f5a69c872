"""Per-test topics on the real broker: each test makes its own, so tests never see each
other's messages."""

from __future__ import annotations

import uuid

from aiokafka.admin import AIOKafkaAdminClient, NewTopic


def unique_name(prefix: str) -> str:
    return f"test.{prefix}.{uuid.uuid4().hex[:12]}"


async def create_topics(bootstrap: str, *names: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        )
    finally:
        await admin.close()
