"""Offsets committed in the order their batches were taken, each only once every message the
batch announced is acknowledged by Kafka (SPEC §6), while later batches are already decided.

Commits are coalesced: at most one every ``interval`` seconds, unless the window of batches
in flight is full or someone waits for everything to be committed (a rebalance, shutdown).
A commit is a request to the broker and a write to its offsets topic; under a trickle of
requests each batch is a single command, and one commit per command cost the broker more
than the command itself. Committing later is always allowed (never earlier); it only bounds
what a crashed worker's successor redoes.

:class:`CommitQueue` keeps the batches in flight in the order they were handled. Its task
waits for the oldest batch's acknowledgements, then commits the offsets of every batch that
is complete by then in one request (a commit of offset *n* covers everything before it).
When an acknowledgement fails, nothing from that batch on is committed and the queue says
so (:attr:`CommitQueue.failed`): the consumer then waits for the batches in flight to
settle and goes back to the committed offsets, and stored decisions make the repetition
announce exactly what it announced the first time.
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from worker.outbox import Acknowledgement

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _InFlight:
    offsets: Mapping[TopicPartition, int]  # the next offset to read, per partition
    acknowledgements: list[Acknowledgement]
    on_acknowledged: Callable[[], None] | None


class CommitQueue:
    def __init__(
        self, consumer: AIOKafkaConsumer, *, max_in_flight: int, interval: float = 0.1
    ) -> None:
        self._consumer = consumer
        self._max_in_flight = max_in_flight
        self._interval = interval
        self._batches: deque[_InFlight] = deque()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._last_commit = 0.0
        self._settling = 0  # callers of settled() waiting: commit at once
        self.failed: BaseException | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._commit_forever(), name="commits")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def in_flight(self) -> int:
        return len(self._batches)

    async def add(
        self,
        offsets: Mapping[TopicPartition, int],
        acknowledgements: list[Acknowledgement],
        on_acknowledged: Callable[[], None] | None = None,
    ) -> None:
        """Queue a handled batch, then wait while too many are in flight (backpressure).
        After a failure, until :meth:`reset`, a batch is dropped instead: committing it would
        skip the failed one, which the consumer reads again from the committed offsets."""
        async with self._changed:
            if self.failed is not None:
                for acknowledgement in acknowledgements:
                    acknowledgement.add_done_callback(_retrieve)
                return
            self._batches.append(_InFlight(offsets, acknowledgements, on_acknowledged))
            self._changed.notify_all()
            await self._changed.wait_for(lambda: len(self._batches) < self._max_in_flight)

    async def settled(self) -> None:
        """Wait until every batch in flight is committed, or dropped after a failure."""
        async with self._changed:
            self._settling += 1
            self._changed.notify_all()
            try:
                await self._changed.wait_for(lambda: not self._batches)
            finally:
                self._settling -= 1

    def reset(self) -> None:
        """After a failure has been dealt with: commit again from the next batch on."""
        self.failed = None

    async def _commit_forever(self) -> None:
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: bool(self._batches))
                oldest = self._batches[0]
            try:
                await asyncio.gather(*oldest.acknowledgements)
            except Exception as error:
                await self._fail(error)
                continue
            await self._until_due()
            await self._commit_complete()

    async def _until_due(self) -> None:
        """Wait out the rest of the interval since the last commit, unless it is urgent."""
        loop = asyncio.get_running_loop()

        def urgent() -> bool:
            return self._settling > 0 or len(self._batches) >= self._max_in_flight

        async with self._changed:
            remaining = self._last_commit + self._interval - loop.time()
            if remaining > 0 and not urgent():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._changed.wait_for(urgent)

    async def _commit_complete(self) -> None:
        """Commit the oldest batch and every batch after it whose acknowledgements are in."""
        offsets: dict[TopicPartition, int] = {}
        done: list[_InFlight] = []
        for batch in self._batches:
            if done and not all(_succeeded(ack) for ack in batch.acknowledgements):
                break
            offsets.update(batch.offsets)
            done.append(batch)
        try:
            if offsets:
                self._last_commit = asyncio.get_running_loop().time()
                await self._consumer.commit(offsets)
        except KafkaError as error:
            # The partitions moved to another worker (a rebalance), or the coordinator is
            # away: that worker redoes these commands, finding their decisions stored.
            logger.warning("offsets not committed (%s); they will be redone", type(error).__name__)
        for batch in done:
            if batch.on_acknowledged is not None:
                batch.on_acknowledged()
        async with self._changed:
            for _ in done:
                self._batches.popleft()
            self._changed.notify_all()

    async def _fail(self, error: BaseException) -> None:
        logger.warning("an announcement was not acknowledged (%s)", type(error).__name__)
        # Every batch from the failed one on is dropped uncommitted; their remaining
        # acknowledgements still complete (or fail) on their own.
        for batch in self._batches:
            for ack in batch.acknowledgements:
                ack.add_done_callback(_retrieve)  # retrieved: nobody else will ask
        async with self._changed:
            self.failed = error
            self._batches.clear()
            self._changed.notify_all()


def _succeeded(acknowledgement: Acknowledgement) -> bool:
    return (
        acknowledgement.done()
        and not acknowledgement.cancelled()
        and acknowledgement.exception() is None
    )


def _retrieve(acknowledgement: Acknowledgement) -> None:
    if not acknowledgement.cancelled():
        acknowledgement.exception()
