"""The floor under the stack's idle latency, measured on the same broker in the same run: a
bare aiokafka ping-pong, two ``acks=all`` hops (request topic, echo, reply topic), at the
rate the idle step offers. A PUT makes those same two hops, plus HTTP, a decision and its
storage; whatever the stack takes above this floor is ours, the floor is the broker's and the
kernel's."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from messaging import KafkaConnection, kafka_options

_SETTLE_SECONDS = 2.0


def _producer(bootstrap: str, connection: KafkaConnection | None) -> AIOKafkaProducer:
    # The product's producers' settings (api.commands, worker.outbox): acks=all, no linger.
    return AIOKafkaProducer(
        **kafka_options(bootstrap, connection), acks="all", enable_idempotence=True, linger_ms=0
    )


async def _echo(
    bootstrap: str, connection: KafkaConnection | None, requests: str, replies: str
) -> None:
    consumer = AIOKafkaConsumer(
        requests, **kafka_options(bootstrap, connection), auto_offset_reset="earliest"
    )
    producer = _producer(bootstrap, connection)
    await consumer.start()
    await producer.start()
    try:
        async for message in consumer:
            await producer.send_and_wait(replies, message.value)
    finally:
        await consumer.stop()
        await producer.stop()


async def _round_trips(
    bootstrap: str, connection: KafkaConnection | None, *, rate: float, count: int
) -> list[float]:
    requests, replies = (f"bench.floor.{name}.{uuid.uuid4().hex[:8]}" for name in ("in", "out"))
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap, connection))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(requests, 1, 1), NewTopic(replies, 1, 1)])
    finally:
        await admin.close()
    loop = asyncio.get_running_loop()
    waiting: dict[bytes, asyncio.Future[float]] = {}
    consumer = AIOKafkaConsumer(
        replies, **kafka_options(bootstrap, connection), auto_offset_reset="earliest"
    )
    producer = _producer(bootstrap, connection)

    async def read_replies() -> None:
        async for message in consumer:
            future = waiting.pop(message.value or b"", None)
            if future is not None:
                future.set_result(time.perf_counter())

    echo = asyncio.create_task(_echo(bootstrap, connection, requests, replies))
    await consumer.start()
    await producer.start()
    reader = asyncio.create_task(read_replies())
    try:
        await asyncio.sleep(_SETTLE_SECONDS)  # both consumers assigned and fetching
        latencies = []
        for _ in range(count):
            key = uuid.uuid4().bytes
            answered = waiting[key] = loop.create_future()
            started = time.perf_counter()
            await producer.send(requests, key)
            latencies.append((await asyncio.wait_for(answered, 10.0) - started) * 1000)
            await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
        return latencies
    finally:
        for task in (reader, echo):
            task.cancel()
        await asyncio.gather(reader, echo, return_exceptions=True)
        await consumer.stop()
        await producer.stop()


def measure_floor(
    bootstrap: str,
    *,
    rate: float,
    count: int = 100,
    connection: KafkaConnection | None = None,
) -> dict[str, Any]:
    """``count`` ping-pongs at ``rate`` per second: their p50 and p90 in milliseconds
    (connected as ``connection``, else as the environment says)."""
    latencies = sorted(asyncio.run(_round_trips(bootstrap, connection, rate=rate, count=count)))
    return {
        "rate": rate,
        "round_trips": count,
        "p50_ms": round(statistics.median(latencies), 3),
        "p90_ms": round(latencies[int(len(latencies) * 0.9)], 3),
    }
