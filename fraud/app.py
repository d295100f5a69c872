"""The fraud-signal consumer process: result events in, alerts out: suspicious activity when
rejections within a window reach a threshold (``fraud/windows.py``), and each person the
service locked (``fraud/locks.py``).

One instance reads every partition of the events topic. Events are keyed by challenge id,
so one person's rejections land on any partition; a consumer group would split them over
members and no member would see a person's whole count. The partitions are therefore
assigned, not balanced, and the group id serves only to store the consumed offsets.

Delivery, at least once with stable ids:

- A batch of records is counted in event-time order, its alerts are published and
  acknowledged (``acks=all``, idempotent producer), and only then are its offsets
  committed. A crash in between publishes the same alerts again after a restart, with the
  same CloudEvents ids (see ``fraud/windows.py``, ``fraud/locks.py``), so consumers of the
  alerts deduplicate.
- The windows, and the locks seen, live in memory. On start they are rebuilt from the
  events just before the committed offsets, counted without publishing: those alerts went
  out before the commit. Publishing resumes at the committed offsets.
- Any failure while consuming ends the process (``stop`` raises it), to be restarted by
  its supervisor: after a half-handled batch the in-memory windows have counted events
  whose alerts may be unpublished, and only the warm-up rebuilds them faithfully.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import UnknownTopicOrPartitionError
from aiokafka.structs import TopicPartition

from fraud.attempts import REJECTED
from fraud.locks import LockAlerts
from fraud.records import ReadEvent, event_time, read_event
from fraud.settings import FraudSettings
from fraud.topics import provision_topics
from fraud.windows import RejectionWindows
from messaging import kafka_options
from schemas.events import CLOUDEVENTS_CONTENT_TYPE, PersonLockedEvent
from schemas.signals import PersonLockAlertEvent, SuspiciousActivityEvent

logger = logging.getLogger(__name__)

_CLIENT_ID = "device-binding-fraud-signals"
_POLL_MS = 1000

# An offset per partition. Offset ranges below are (start, end): start included, end not.
Offsets = dict[TopicPartition, int]
Signal = SuspiciousActivityEvent | PersonLockAlertEvent


def _event(record: Any) -> ReadEvent | None:
    return read_event(
        record.value, topic=record.topic, partition=record.partition, offset=record.offset
    )


class FraudSignals:
    """The consumer, the windows and the producer; ``start`` / ``stop`` around their life."""

    def __init__(self, settings: FraudSettings) -> None:
        self.settings = settings
        self._window = timedelta(seconds=settings.fraud_window_seconds)
        self._lateness = timedelta(seconds=settings.fraud_lateness_seconds)
        self.windows = RejectionWindows(
            window=self._window,
            person_threshold=settings.fraud_person_threshold,
            device_threshold=settings.fraud_device_threshold,
            reasons=settings.fraud_reasons,
            lateness=self._lateness,
        )
        self.locks = LockAlerts()
        self._consumer = AIOKafkaConsumer(
            **kafka_options(settings.kafka_bootstrap_servers),
            group_id=settings.fraud_consumer_group,
            enable_auto_commit=False,
            # Only reached when a stored offset has been deleted by retention meanwhile.
            auto_offset_reset="earliest",
            client_id=_CLIENT_ID,
        )
        self._producer = AIOKafkaProducer(
            **kafka_options(settings.kafka_bootstrap_servers),
            acks="all",
            enable_idempotence=True,
            client_id=_CLIENT_ID,
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> asyncio.Task[None]:
        """The consuming task: done only when stopped or failed."""
        if self._task is None:
            raise RuntimeError("not started")
        return self._task

    async def start(self) -> None:
        if self.settings.provision_topics:
            await provision_topics(self.settings)
        await self._producer.start()
        try:
            await self._consumer.start()
            partitions = await self._partitions()
            self._consumer.assign(partitions)
            beginnings: Offsets = await self._consumer.beginning_offsets(partitions)
            ends: Offsets = await self._consumer.end_offsets(partitions)
            resume = await self._resume_offsets(partitions, beginnings, ends)
            await self._warm_up(resume, beginnings)
            for partition, offset in resume.items():
                self._consumer.seek(partition, offset)
        except BaseException:
            await self._close()
            raise
        self._task = asyncio.create_task(self._consume(), name="fraud-signals")
        logger.info(
            "fraud signals: %s (%d partitions) -> %s",
            self.settings.events_topic,
            len(partitions),
            self.settings.signals_topic,
        )

    async def stop(self) -> None:
        """Stop consuming and close the clients; raise what made consuming fail, if it did."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # wait() rather than await: the task's cancellation is not ours to re-raise.
            await asyncio.wait([task])
        await self._close()
        if task is not None and not task.cancelled() and (error := task.exception()):
            raise error

    async def _close(self) -> None:
        try:
            await self._consumer.stop()
        finally:
            await self._producer.stop()

    async def _partitions(self) -> list[TopicPartition]:
        topic = self.settings.events_topic
        try:
            # The producer's lookup waits (request_timeout_ms) for a topic still being made.
            ids: set[int] = await self._producer.partitions_for(topic)
        except UnknownTopicOrPartitionError:
            raise RuntimeError(f"topic {topic} does not exist") from None
        # New partitions added later are picked up at the next start only.
        return [TopicPartition(topic, partition) for partition in sorted(ids)]

    async def _resume_offsets(
        self, partitions: list[TopicPartition], beginnings: Offsets, ends: Offsets
    ) -> Offsets:
        """Where publishing resumes: the committed offsets, within what the log still has."""
        resume: Offsets = {}
        fresh = []
        for partition in partitions:
            committed: int | None = await self._consumer.committed(partition)
            if committed is None:
                fresh.append(partition)
            else:
                resume[partition] = min(max(committed, beginnings[partition]), ends[partition])
        if fresh:
            # Never consumed (or the offsets expired): the rejections of one window back
            # may still complete a crossing; older ones never could.
            since = await self._consumer.offsets_for_times(
                {partition: self._ms_ago(self._window) for partition in fresh}
            )
            for partition in fresh:
                found = since.get(partition)
                resume[partition] = found.offset if found is not None else ends[partition]
            logger.info("no committed offsets for %d partitions: one window back", len(fresh))
        return resume

    async def _warm_up(self, resume: Offsets, beginnings: Offsets) -> None:
        """Count the events of the window before ``resume``, publishing nothing.

        The window that matters ends where consuming stopped, which is not now when the
        consumer was down for longer than a window: that point is the newest timestamp among
        the last consumed record of each partition.
        """
        stopped_ms: list[int] = []
        last_consumed = {
            partition: (offset - 1, offset)
            for partition, offset in resume.items()
            if offset > beginnings[partition]
        }
        await self._read(last_consumed, lambda record: stopped_ms.append(record.timestamp))
        if not stopped_ms:
            return
        # Lateness on top: record timestamps are not strictly in order within a partition.
        span_ms = int((self._window + self._lateness).total_seconds() * 1000)
        since = await self._consumer.offsets_for_times(
            {partition: max(0, max(stopped_ms) - span_ms) for partition in resume}
        )
        ranges = {}
        for partition, end in resume.items():
            found = since.get(partition)
            ranges[partition] = (min(found.offset, end) if found is not None else end, end)

        counted: list[ReadEvent] = []

        def keep(record: Any) -> None:
            event = _event(record)
            if event is not None and (
                isinstance(event, PersonLockedEvent) or event.type in REJECTED
            ):
                counted.append(event)

        await self._read(ranges, keep)
        # All partitions' events at once, in event time: the order they happened in, as
        # near as the event times tell, whatever order they were consumed in before.
        counted.sort(key=event_time)
        already_published = sum(len(self._observe(event)) for event in counted)
        logger.info(
            "warmed up on %d rejections and locks (%d alerts among them were published before)",
            len(counted),
            already_published,
        )

    async def _read(
        self, ranges: dict[TopicPartition, tuple[int, int]], handle: Callable[[Any], None]
    ) -> None:
        """Hand every record of the given offset ranges to ``handle``, partition by partition
        in offset order; the partitions' positions are left wherever reading stopped."""
        pending = {partition: end for partition, (start, end) in ranges.items() if start < end}
        if not pending:
            return
        for partition in pending:
            self._consumer.seek(partition, ranges[partition][0])
        assigned = list(self._consumer.assignment())
        # Fetching only what is read: the other partitions would fill the buffer for nothing.
        self._consumer.pause(*assigned)
        self._consumer.resume(*pending)
        try:
            while pending:
                batches = await self._consumer.getmany(*pending, timeout_ms=_POLL_MS)
                for partition, records in batches.items():
                    end = pending.get(partition)
                    for record in records:
                        # A fetch returns whole batches: some records lie past the range.
                        if end is not None and record.offset < end:
                            handle(record)
                for partition in list(pending):
                    position: int = await self._consumer.position(partition)
                    if position >= pending[partition]:
                        del pending[partition]
                        self._consumer.pause(partition)
        finally:
            self._consumer.resume(*assigned)

    @staticmethod
    def _ms_ago(span: timedelta) -> int:
        return max(0, int((time.time() - span.total_seconds()) * 1000))

    async def _consume(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=_POLL_MS)
            if batches:
                await self._handle(batches)

    async def _handle(self, batches: dict[TopicPartition, list[Any]]) -> None:
        events = [
            event
            for records in batches.values()
            for record in records
            if (event := _event(record)) is not None
        ]
        # Partitions are fetched side by side; ordering the batch by event time keeps the
        # windows' out-of-order handling for what spans batches.
        events.sort(key=event_time)
        for event in events:
            for alert in self._observe(event):
                await self._publish(alert)
        await self._consumer.commit(
            {partition: records[-1].offset + 1 for partition, records in batches.items() if records}
        )

    def _observe(self, event: ReadEvent) -> list[Signal]:
        """The alerts ``event`` raises: a lock's own, or a window's crossing of a threshold."""
        if isinstance(event, PersonLockedEvent):
            return [*self.locks.observe(event)]
        return [*self.windows.observe(event)]

    async def _publish(self, alert: Signal) -> None:
        await self._producer.send_and_wait(
            self.settings.signals_topic,
            value=alert.model_dump_json().encode(),
            # By person, whichever the alert: a person's alerts stay in order.
            key=alert.data.person_id.encode(),
            headers=[("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())],
        )
        if isinstance(alert, PersonLockAlertEvent):
            logger.info("alert %s: a person locked until %s", alert.id, alert.data.locked_until)
        else:
            logger.info(
                "alert %s: %s threshold %d reached",
                alert.id,
                alert.data.scope,
                alert.data.threshold,
            )
