"""The workers' consumer lag, measured the way an autoscaler does: per partition, the end
offset of the commands topic minus the offset the group committed.

Every worker measures it (any of them may be the one scraped); a poll costs two requests to
Kafka every ``interval`` seconds.
"""

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from messaging import kafka_options
from worker.metrics import CONSUMER_LAG

logger = logging.getLogger(__name__)


class LagMonitor:
    def __init__(self, *, bootstrap_servers: str, topic: str, group: str, interval: float) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._group = group
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="consumer-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        admin = AIOKafkaAdminClient(**kafka_options(self._bootstrap))
        offsets = AIOKafkaConsumer(**kafka_options(self._bootstrap), enable_auto_commit=False)
        try:
            await admin.start()
            await offsets.start()
            while True:
                try:
                    await self.measure(admin, offsets)
                except Exception as exc:
                    # Lag is information, not a duty: a failed poll waits for the next one.
                    logger.warning("consumer lag not measured: %s", type(exc).__name__)
                await asyncio.sleep(self._interval)
        finally:
            await offsets.stop()
            await admin.close()

    async def measure(self, admin: AIOKafkaAdminClient, offsets: AIOKafkaConsumer) -> int:
        """Sets the gauge per partition; the total lag."""
        # Described each time, so partitions added since are measured too.
        [description] = await admin.describe_topics([self._topic])
        partitions = sorted(
            TopicPartition(self._topic, partition["partition"])
            for partition in description.get("partitions", [])
        )
        if not partitions:
            return 0
        ends = await offsets.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(self._group, partitions=partitions)
        total = 0
        for partition in partitions:
            position = committed.get(partition)
            done = position.offset if position is not None and position.offset >= 0 else 0
            lag = max(0, ends[partition] - done)
            CONSUMER_LAG.labels(str(partition.partition)).set(lag)
            total += lag
        return total
