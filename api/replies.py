"""Reads this replica's partitions of the replies topic and hands each reply to the request
waiting for it.

The replicas are one consumer group on the replies topic (``<topic>.api``), assigned by
:class:`~api.reply_partitions.StickyReplyAssignor`: each owns some partitions and keeps
them while the group changes. A request names :attr:`ReplyListener.partition` (the lowest
it owns) in its command's headers; the worker replies there, so a replica reads its own
replies and no other's, and adding replicas adds no read load to the others. Nothing is
committed: on being assigned a partition the listener starts at its end, so it reads only
replies to commands sent after it owned it; a partition it keeps through a rebalance is
resumed where it was.

A request registers its future with :meth:`ReplyListener.expect` *before* publishing the
command, so even an immediate reply finds it. A request whose partition moves to another
replica while it waits gets :class:`RepliesMoved` at once (the caller answers 503
``verification_pending``; the client's retry is answered from the stored outcome).
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TypeAlias
from uuid import UUID

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from api.reply_partitions import StickyReplyAssignor
from messaging import kafka_options
from schemas.replies import Reply
from schemas.topics import REPLY_TO_HEADER

logger = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]

_FETCH_TIMEOUT_MS = 1000
# The broker answers a fetch as soon as a reply arrives; idle, a replica asks twice a second.
_FETCH_MAX_WAIT_MS = 500
# A replica that joins or leaves is noticed by the others at their next heartbeat: short, so
# that a rebalance (replies paused for everyone) is short too.
_HEARTBEAT_MS = 500
_SESSION_TIMEOUT_MS = 10_000
_ERROR_BACKOFF_SECONDS = 0.5


class RepliesStopped(Exception):
    """The listener stopped while a request was waiting for its reply."""


class RepliesMoved(Exception):
    """The partition a request named went to another replica while it waited."""


def reply_group(topic: str) -> str:
    """The consumer group of the API replicas reading ``topic``."""
    return f"{topic}.api"


class ReplyListener:
    """Reads this replica's reply partitions; :meth:`start` may follow a :meth:`stop`."""

    def __init__(self, *, bootstrap_servers: str, topic: str, instance_id: str) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._instance_id = instance_id
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._assignor = StickyReplyAssignor()
        self._owned: list[int] = []
        self._positions: dict[int, int] = {}  # next offset to read, per owned partition
        self._waiting: dict[UUID, tuple[asyncio.Future[Reply], int | None]] = {}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def partition(self) -> int | None:
        """The partition this replica's commands name; None while it owns none."""
        return self._owned[0] if self._owned and self.running else None

    async def start(self) -> None:
        """Connect and join the group; reading goes on in a task. The partitions come with
        the group's assignment, shortly after (see :attr:`partition`).

        Raises a Kafka error or ``OSError`` if that fails; the caller bounds how long it may
        take.
        """
        await self.stop()
        consumer = AIOKafkaConsumer(
            **kafka_options(self._bootstrap_servers),
            client_id=self._instance_id,
            group_id=reply_group(self._topic),
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=_FETCH_MAX_WAIT_MS,
            heartbeat_interval_ms=_HEARTBEAT_MS,
            session_timeout_ms=_SESSION_TIMEOUT_MS,
            partition_assignment_strategy=(self._assignor,),
        )
        consumer.subscribe([self._topic], listener=_Ownership(self, consumer))
        self._consumer = consumer
        await consumer.start()
        self._task = asyncio.create_task(self._consume(consumer), name=f"replies:{self._topic}")
        self._task.add_done_callback(_on_consumer_end)

    async def stop(self) -> None:
        """Stop consuming and leave the group; requests still waiting get
        :class:`RepliesStopped`."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        self._owned = []
        self._positions.clear()
        self._assignor.owned = []
        for future, _ in self._waiting.values():
            if not future.done():
                future.set_exception(RepliesStopped())

    @contextlib.contextmanager
    def expect(self, command_id: UUID, partition: int | None) -> Iterator[asyncio.Future[Reply]]:
        """Register interest in the reply to ``command_id``, expected on ``partition``, for
        the duration of the block."""
        if command_id in self._waiting:
            raise ValueError(f"already waiting for a reply to command {command_id}")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = (future, partition)
        try:
            yield future
        finally:
            del self._waiting[command_id]
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # mark it retrieved: the block may have left early

    async def _take(self, consumer: AIOKafkaConsumer, assigned: list[TopicPartition]) -> None:
        """The group's new assignment: each partition is read from where it was if this
        replica kept it through the rebalance, else from its end."""
        positions: dict[int, int] = {}
        for partition in assigned:
            kept = self._positions.get(partition.partition)
            if kept is not None:
                consumer.seek(partition, kept)
                positions[partition.partition] = kept
            else:
                await consumer.seek_to_end(partition)
                positions[partition.partition] = await consumer.position(partition)
        self._positions = positions
        self._owned = sorted(positions)
        logger.info("owning reply partitions %s", self._owned)
        for future, named in self._waiting.values():
            if named is not None and named not in self._owned and not future.done():
                future.set_exception(RepliesMoved())

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
            for partition, records in batches.items():
                for record in records:
                    self._deliver(record)
                if records:
                    self._positions[partition.partition] = records[-1].offset + 1

    def _deliver(self, record: Record) -> None:
        # A reply addressed to another replica (its partition has moved here since) is
        # skipped by its header before paying for JSON parsing.
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
        waiting = self._waiting.get(reply.command_id)
        if waiting is None or waiting[0].done():
            logger.info("reply to command %s came after its request ended", reply.command_id)
            return
        waiting[0].set_result(reply)


class _Ownership(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, listener: ReplyListener, consumer: AIOKafkaConsumer) -> None:
        self._listener = listener
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass  # positions are kept by the listener as it reads

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._listener._take(self._consumer, assigned)


def _on_consumer_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        logger.error("the reply consumer stopped", exc_info=task.exception())
