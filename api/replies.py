"""Listens to the replies topic and hands each reply to the request waiting for it.

Every API replica reads the *whole* replies topic: no consumer group, all partitions
assigned, starting at their end. :meth:`ReplyListener.start` returns only once the end
offset of every partition is resolved, so a reply to any command published afterwards is
at or after the position read from, and cannot be missed. A replica keeps only replies
addressed to it (``reply_to``) for commands it is still waiting on; it ignores the rest.

A request registers its future with :meth:`ReplyListener.expect` *before* publishing the
command, so even an immediate reply finds it.

The partitions are those the topic has at start-up: partitions added later are read only
after the replica restarts (add partitions to the replies topic with a rolling restart).
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from schemas.replies import Reply
from schemas.topics import REPLY_TO_HEADER

logger = logging.getLogger(__name__)

_FETCH_TIMEOUT_MS = 1000
_ERROR_BACKOFF_SECONDS = 0.5


class RepliesTopicMissing(LookupError):
    """The replies topic does not exist (yet): the worker provisions it."""


class RepliesStopped(Exception):
    """The listener stopped while a request was waiting for its reply."""


class ReplyListener:
    """Reads the replies topic; :meth:`start` may follow a :meth:`stop`."""

    def __init__(self, *, bootstrap_servers: str, topic: str, instance_id: str) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._instance_id = instance_id
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiting: dict[UUID, asyncio.Future[Reply]] = {}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Connect, take every partition from its current end, then consume in a task.

        Raises :class:`RepliesTopicMissing`, a Kafka error or ``OSError`` if that fails; the
        caller bounds how long it may take.
        """
        await self.stop()
        partitions = await self._partitions()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            client_id=self._instance_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        self._consumer = consumer
        await consumer.start()
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)
        self._task = asyncio.create_task(self._consume(consumer), name=f"replies:{self._topic}")
        self._task.add_done_callback(_on_consumer_end)

    async def stop(self) -> None:
        """Stop consuming; requests still waiting get :class:`RepliesStopped`."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(RepliesStopped())

    @contextlib.contextmanager
    def expect(self, command_id: UUID) -> Iterator[asyncio.Future[Reply]]:
        """Register interest in the reply to ``command_id`` for the duration of the block."""
        if command_id in self._waiting:
            raise ValueError(f"already waiting for a reply to command {command_id}")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = future
        try:
            yield future
        finally:
            del self._waiting[command_id]
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # mark it retrieved: the block may have left early

    async def _partitions(self) -> list[TopicPartition]:
        # A consumer without a subscription cannot list a topic's partitions; an admin can.
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._bootstrap_servers, client_id=self._instance_id
        )
        try:
            await admin.start()
            described: list[dict[str, Any]] = await admin.describe_topics([self._topic])
        finally:
            await admin.close()
        for topic in described:
            if topic["topic"] == self._topic and topic["error_code"] == 0 and topic["partitions"]:
                return [TopicPartition(self._topic, p["partition"]) for p in topic["partitions"]]
        raise RepliesTopicMissing(f"topic {self._topic} does not exist")

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        # Runs until cancelled: a request waiting for a reply depends on it.
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=_FETCH_TIMEOUT_MS)
            except KafkaError as exc:
                # The consumer reconnects by itself; keep reading from where it stands.
                logger.warning("reading replies failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(_ERROR_BACKOFF_SECONDS)
                continue
            except Exception:
                logger.exception("reading replies failed; retrying")
                await asyncio.sleep(_ERROR_BACKOFF_SECONDS)
                continue
            for records in batches.values():
                for record in records:
                    self._deliver(record)

    def _deliver(self, record: ConsumerRecord[bytes, bytes]) -> None:
        # Every replica reads every reply: skip the others' by their header before paying
        # for JSON parsing (a reply without the header is parsed and judged by its body).
        addressee = dict(record.headers).get(REPLY_TO_HEADER)
        if addressee is not None and addressee != self._instance_id.encode():
            return
        try:
            if record.value is None:
                raise ValueError("no value")
            reply = Reply.model_validate_json(record.value)
        except (ValidationError, ValueError):
            # Not ours to judge or fix: note where it is (never its content) and go on.
            logger.warning(
                "ignoring an unreadable reply at %s[%s]@%s",
                record.topic,
                record.partition,
                record.offset,
            )
            return
        if reply.reply_to != self._instance_id:
            return
        future = self._waiting.get(reply.command_id)
        if future is None or future.done():
            logger.info("reply to command %s came after its request ended", reply.command_id)
            return
        future.set_result(reply)


def _on_consumer_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        logger.error("the reply consumer stopped", exc_info=task.exception())
