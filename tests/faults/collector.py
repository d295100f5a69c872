"""Everything published on a few topics, read in the background for a whole test (the
outage and poison tests), and the small waits those tests poll with."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes | None
    headers: dict[str, bytes]
    value: Any  # the JSON, or None when the value is not JSON


def _json_or_none(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # the poison includes JSON nested 5,000 deep
        return None


class Collector:
    """Reads topics from their beginning for the whole test, in one background task.

    One task owns the consumer, so the waits of many concurrent flows never poll it at
    once; it survives a broker outage because the consumer reconnects by itself.
    """

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.records: dict[str, list[Received]] = {topic: [] for topic in topics}
        self._next: dict[TopicPartition, int] = {}
        self._consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            # The poison includes 100 KB messages; fetch them without a size retry.
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="collector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=200)
            except KafkaError:
                await asyncio.sleep(0.5)  # the broker is away; the consumer reconnects
                continue
            for partition, records in batches.items():
                for record in records:
                    self.records[record.topic].append(
                        Received(
                            topic=record.topic,
                            partition=record.partition,
                            offset=record.offset,
                            key=record.key,
                            raw=record.value,
                            headers=dict(record.headers),
                            value=_json_or_none(record.value),
                        )
                    )
                    self._next[partition] = record.offset + 1

    async def wait(self, check: Callable[[], bool], *, within: float, what: str) -> None:
        try:
            async with asyncio.timeout(within):
                while not check():
                    if self._task is not None and self._task.done():
                        self._task.result()  # the reader failed: say why, do not wait on
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"not within {within:.0f}s: {what}") from None

    async def drain(self, *, within: float = 120) -> None:
        """Wait until everything on the topics now has been read: afterwards, a record that is
        missing is missing, not late."""
        # The collector's own consumer: it has every partition of the topics assigned.
        partitions = sorted(self._consumer.assignment())
        assert {tp.topic for tp in partitions} == set(self.topics)
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(partitions)
        await self.wait(
            lambda: all(self._next.get(tp, 0) >= end for tp, end in ends.items()),
            within=within,
            what="reading every topic to its end",
        )

    def of(self, topic: str) -> list[Received]:
        return self.records[topic]


@asynccontextmanager
async def collecting(bootstrap: str, *topics: str) -> AsyncIterator[Collector]:
    collector = Collector(bootstrap, *topics)
    await collector.start()
    try:
        yield collector
    finally:
        await collector.stop()


async def until(condition: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    try:
        async with asyncio.timeout(within):
            while not await condition():
                await asyncio.sleep(0.25)
    except TimeoutError:
        raise AssertionError(f"not within {within:.0f}s: {what}") from None


async def probe_status(http: httpx.AsyncClient, url: str) -> int:
    try:
        return (await http.get(url, timeout=10)).status_code
    except httpx.TransportError:
        return 0
