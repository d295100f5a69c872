"""Publishes commands to the commands topic (SPEC §5, §6).

The producer waits for every in-sync replica (``acks="all"``) and is idempotent, so a
command the broker acknowledged is not lost and a retried send is not duplicated. Each
publish is bounded: past ``timeout_seconds`` it raises :class:`CommandNotPublished`.
"""

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)

from api.metrics import COMMAND_PUBLISH_LATENCY
from messaging import kafka_options
from schemas.commands import Command, command_key
from schemas.topics import REPLY_PARTITION_HEADER
from telemetry.tracing import trace_headers

logger = logging.getLogger(__name__)


# The idempotent producer's sequence numbers or identity no longer match the broker's: sends
# abandoned during an outage leave a gap the restarted broker refuses, and aiokafka treats
# that as final for the producer. Only a new producer (a new producer id) gets past it.
_OUT_OF_STEP = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
)
_FIRST_RETRY_SECONDS = 0.5
_MAX_RETRY_SECONDS = 10.0


class CommandNotPublished(Exception):
    """Kafka did not acknowledge the command in time; the caller may retry."""


class CommandPublisher:
    """One Kafka producer for the commands topic; :meth:`start` may follow a :meth:`stop`."""

    def __init__(
        self, *, bootstrap_servers: str, topic: str, timeout_seconds: float, client_id: str
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._timeout = timeout_seconds
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._replacing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect; raises a Kafka error (or ``OSError``) if the cluster cannot be reached."""
        await self.stop()
        await self._open()

    async def stop(self) -> None:
        replacing, self._replacing = self._replacing, None
        if replacing is not None:
            replacing.cancel()
            await asyncio.gather(replacing, return_exceptions=True)
        await self._close()

    async def _open(self) -> None:
        self._producer = AIOKafkaProducer(
            **kafka_options(self._bootstrap_servers),
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            # The producer's own waits (metadata, produce requests) end with ours.
            request_timeout_ms=max(1, int(self._timeout * 1000)),
        )
        await self._producer.start()

    async def _close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            # Stopping flushes what is still buffered; with Kafka gone that could wait long.
            async with asyncio.timeout(self._timeout):
                await producer.stop()
        except TimeoutError:
            logger.warning("the command producer did not stop cleanly within %ss", self._timeout)

    async def publish(self, command: Command, *, reply_partition: int | None = None) -> None:
        """Send ``command`` keyed by :func:`~schemas.commands.command_key`; wait for the ack.
        ``reply_partition``: where the worker is to reply (the replica's own partition)."""
        producer = self._producer
        if producer is None:
            raise CommandNotPublished("the producer is not running")
        # The trace continues in the worker that takes the command (W3C traceparent).
        headers = [(name, value.encode()) for name, value in trace_headers().items()]
        if reply_partition is not None:
            headers.append((REPLY_PARTITION_HEADER, str(reply_partition).encode()))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                await producer.send_and_wait(
                    self._topic,
                    command.model_dump_json().encode(),
                    key=command_key(command),
                    headers=headers or None,
                )
        except (TimeoutError, KafkaError) as exc:
            COMMAND_PUBLISH_LATENCY.labels(command.type, "failed").observe(
                time.perf_counter() - started
            )
            # A send given up on here may still reach the topic later: harmless, because the
            # worker handles a command idempotently and the client retries the same call.
            logger.warning(
                "command %s (%s) not published: %s",
                command.command_id,
                command.type,
                type(exc).__name__,
            )
            if isinstance(exc, _OUT_OF_STEP):
                self._replace(producer)
            raise CommandNotPublished(type(exc).__name__) from exc
        COMMAND_PUBLISH_LATENCY.labels(command.type, "acknowledged").observe(
            time.perf_counter() - started
        )

    def _replace(self, broken: AIOKafkaProducer) -> None:
        """Swap ``broken`` for a new producer in the background; until then commands are
        refused (503) and readiness fails, so callers retry elsewhere."""
        if self._replacing is None or self._replacing.done():
            self._replacing = asyncio.create_task(self._reopen(broken), name="producer-reopen")

    async def _reopen(self, broken: AIOKafkaProducer) -> None:
        if self._producer is not broken:
            return  # already replaced
        logger.warning("the command producer is out of step with Kafka; starting a new one")
        await self._close()
        delay = _FIRST_RETRY_SECONDS
        while True:
            try:
                await self._open()
            except (KafkaError, OSError, TimeoutError) as exc:
                await self._close()
                logger.warning("a new command producer failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_SECONDS)
            else:
                logger.info("a new command producer is running")
                return

    async def reachable(self, timeout_seconds: float) -> bool:
        """Whether a Kafka broker answers a metadata request now (the readiness probe)."""
        producer = self._producer
        if producer is None:
            return False
        try:
            async with asyncio.timeout(timeout_seconds):
                await producer.client.fetch_all_metadata()
        except (TimeoutError, KafkaError, OSError):
            return False
        return True
