"""The worker's consumer loop: fetch → decide → announce → commit, as a pipeline.

One Kafka consumer per worker process, so a process joins the group once and takes its
partitions in one step; ``getmany`` returns whatever has arrived on all of them, handled as
one batch (each partition's records in their order). Three things overlap:

- the loop fetches and parses a batch and queues its decision (:mod:`worker.handling`);
- the announcer task hands the previous batch's events and replies to the producer once its
  decision is stored;
- :mod:`worker.commits` commits offsets in order, each only after its batch's
  acknowledgements came back.

Decisions run in the order the batches were fetched (:mod:`worker.attempts.runs`), so a
partition's commands are decided in order. At most ``max_in_flight`` batches wait to be
announced, and as many for acknowledgements: past that the loop waits (backpressure). A
batch that holds anything but signature attempts is handled in order once everything before
it is announced.

Failures (:mod:`worker.failures`): when a batch is not wholly handled (a transient failure,
logged and paused for where it happened), or an acknowledgement fails, the batches behind
it are dropped undecided or uncommitted; once everything in flight has settled, every
partition goes back to its committed offset and is read again. Stored decisions make the
repetition announce exactly what it announced the first time.

A rebalance waits, before it gives partitions away, until everything in flight is committed,
so nothing handled here is handed to another worker to redo. Shutdown (:meth:`drain`) stops
taking batches, lets those in flight finish and commit, and only then leaves the group.
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.structs import ConsumerRecord, TopicPartition

from worker.commits import CommitQueue
from worker.handling import Batch, BatchHandler, Handled

logger = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]

# How long an idle loop waits in getmany before it looks at its own state again; new
# records end the wait at once, so this costs no latency.
_IDLE_WAIT_MS = 500


class CommandConsumer:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        handler: BatchHandler,
        *,
        topic: str,
        max_records: int,
        max_in_flight: int,
        retry_backoff_seconds: float,
        rebalance_grace_seconds: float,
    ) -> None:
        self._consumer = consumer
        self._handler = handler
        self._topic = topic
        self._max_records = max_records
        self._backoff = retry_backoff_seconds
        self._rebalance_grace = rebalance_grace_seconds
        self._commits = CommitQueue(consumer, max_in_flight=max_in_flight)
        self._announcing: asyncio.Queue[Batch] = asyncio.Queue(maxsize=max_in_flight)
        self._tasks: list[asyncio.Task[None]] = []
        self._draining = False
        self._failed = False  # a batch was not wholly handled: read again from the commits
        self._handling = asyncio.Event()  # set while the loop handles a batch itself

    @property
    def in_flight(self) -> int:
        handling = 1 if self._handling.is_set() else 0
        return self._announcing.qsize() + self._commits.in_flight + handling

    async def start(self) -> None:
        self._consumer.subscribe([self._topic], listener=_Settle(self))
        await self._consumer.start()
        self._commits.start()
        self._tasks = [
            asyncio.create_task(self._consume_forever(), name="commands"),
            asyncio.create_task(self._announce_forever(), name="announcements"),
        ]

    async def drain(self, grace_seconds: float) -> None:
        """Stop taking batches; wait (at most ``grace_seconds``) for those in flight to be
        committed; then leave the group."""
        self._draining = True
        consume = self._tasks[0] if self._tasks else None
        try:
            async with asyncio.timeout(grace_seconds):
                if consume is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await consume  # it ends after the batch in hand
                await self.settle_in_flight()
        except TimeoutError:
            logger.warning(
                "%d batches still in flight after %ss; another worker will redo them",
                self.in_flight,
                grace_seconds,
            )
        finally:
            for task in self._tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._commits.stop()
            await self._consumer.stop()

    async def settle_in_flight(self) -> None:
        """Wait until nothing handled here is uncommitted."""
        while self._handling.is_set():
            await asyncio.sleep(0.005)
        await self._announcing.join()
        await self._commits.settled()

    async def settle(self) -> None:
        """Before partitions move: everything in flight committed, within the grace."""
        try:
            async with asyncio.timeout(self._rebalance_grace):
                await self.settle_in_flight()
        except TimeoutError:
            logger.warning("partitions move with %d batches uncommitted", self.in_flight)

    async def _consume_forever(self) -> None:
        while not self._draining:
            if self._failed or self._commits.failed is not None:
                await self._recover()
                continue
            fetched = await self._consumer.getmany(
                timeout_ms=_IDLE_WAIT_MS, max_records=self._max_records
            )
            if not fetched or self._draining or self._failed:
                continue  # left uncommitted: read again (after recovery, or by another worker)
            records = [record for partition in fetched.values() for record in partition]
            batch = self._handler.start(records, pipelined=not self._handler.careful)
            if batch.pipelined:
                await self._announcing.put(batch)
                continue
            # Anything else waits for everything before it to be announced: its own
            # announcements must follow theirs.
            await self._announcing.join()
            if self._failed:
                continue
            self._handling.set()
            try:
                await self._settle_batch(batch, await self._handler.finish(batch))
            finally:
                self._handling.clear()

    async def _announce_forever(self) -> None:
        while True:
            batch = await self._announcing.get()
            try:
                if self._failed:
                    # Behind a failure: its decision was halted (or is redone after the
                    # recovery, identically); it is read again.
                    if batch.decided is not None:
                        with contextlib.suppress(Exception):
                            await batch.decided
                    continue
                await self._settle_batch(batch, await self._handler.finish(batch))
            finally:
                self._announcing.task_done()

    async def _settle_batch(self, batch: Batch, handled: Handled) -> None:
        """Queue the handled records' offsets for commit; note a failure for recovery."""
        if handled.count:
            logger.info("handled %d commands", handled.count)
        offsets = _next_offsets(batch.records[: handled.count])
        if offsets or handled.acknowledgements:
            await self._commits.add(offsets, handled.acknowledgements, handled.acknowledged)
        if handled.count < len(batch.records):
            self._failed = True

    async def _recover(self) -> None:
        """After a failure: let everything in flight settle (the batches behind the failure
        dropped), go back to the committed offsets, and go on."""
        acknowledgement_failed = self._commits.failed is not None
        logger.warning("reading again from the committed offsets after a failure")
        await self._announcing.join()
        await self._commits.settled()
        for partition in self._consumer.assignment():
            committed = await self._consumer.committed(partition)
            if committed is None:
                # Nothing committed yet: the group starts at the beginning ("earliest").
                await self._consumer.seek_to_beginning(partition)
            else:
                self._consumer.seek(partition, committed)
        self._commits.reset()
        self._handler.resume()
        self._failed = False
        if acknowledgement_failed:
            # A handler failure paused where it happened; Kafka refusing acknowledgements
            # did not: pause here, or a broker outage becomes a hot loop.
            await asyncio.sleep(self._backoff)


def _next_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    """What to commit for ``records``: per partition, the offset after its last one."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
    return offsets


class _Settle(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions are taken away, everything handled on them is committed."""

    def __init__(self, consumer: CommandConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked:
            await self._consumer.settle()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        logger.info("assigned partitions %s", sorted(p.partition for p in assigned))
