"""The worker process: a FastStream subscriber in a consumer group on the commands topic.

Delivery (SPEC §6), chosen explicitly rather than left to FastStream's default (which
commits on receipt, at-most-once):

- Commands come in batches (whatever has arrived, up to ``BATCH_MAX_RECORDS``), handled in
  their order. Runs of signature attempts are decided together in one transaction (see
  ``BindingService.verify_all``); other commands one by one.
- ``AckPolicy.NACK_ON_ERROR``: a batch's offsets are committed only after its handler
  returned, that is after every outcome is stored and every event and reply announced was
  acknowledged by Kafka (``acks=all``, idempotent producer).
- A transient failure (database, Kafka, contention) leaves the batch uncommitted and seeks
  back, after a pause, so the same commands are processed again; stored decisions make that
  safe (a command already decided announces the same outcome again).
- A command that cannot be parsed is dead-lettered; the worker goes on.

Shutdown (SIGTERM) drains before it closes: new deliveries are handed back uncommitted (the
group gives them to another worker), commands in progress finish and commit, and only then
do the consumers leave the group. FastStream's own stop would leave the group first, so the
commands finishing after it could no longer commit and would be done twice elsewhere.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from aiokafka.structs import ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from schemas.commands import COMMAND_ADAPTER, Command, VerifySignature
from telemetry.logs import command_log_fields, log_context
from telemetry.tracing import context_from_headers, tracer
from worker.binding import BindingService, Clock, utc_now
from worker.database import create_engine, prepare_database
from worker.dead_letters import DeadLetters, TooManyDeadLetters
from worker.lag import LagMonitor
from worker.metrics import COMMAND_DURATION, COMMAND_TO_EVENT, COMMANDS
from worker.outbox import KafkaOutbox
from worker.probes import ProbeServer
from worker.settings import WorkerSettings
from worker.store import Store
from worker.topics import provision_topics

logger = logging.getLogger(__name__)

_DRAINING_PAUSE_SECONDS = 0.2
_T = TypeVar("_T")
_FETCH_MAX_WAIT_MS = 100
_FETCH_MAX_BYTES = 4 * 1024 * 1024


async def _no_body(message: StreamMessage[tuple[ConsumerRecord[bytes, bytes], ...]]) -> None:
    # Parsing is ours, from the raw records (see on_batch): a malformed body must reach the
    # DLQ, not an error log.
    return None


def _describe(error: ValidationError) -> str:
    """Where and why a command is malformed, without echoing any of its values."""
    problems = [
        f"{'.'.join(str(part) for part in issue['loc']) or 'body'}: {issue['msg']}"
        for issue in error.errors(include_input=False, include_url=False)[:5]
    ]
    return "; ".join(problems)


class Worker:
    """One worker process's consumer, store and outputs; ``start`` / ``stop`` around its life."""

    def __init__(self, settings: WorkerSettings, *, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.engine = create_engine(settings.database_url)
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            client_id="device-binding-worker",
            logger=logger,
        )
        self.outbox = outbox = KafkaOutbox(
            settings.kafka_bootstrap_servers,
            events_topic=settings.events_topic,
            otp_topic=settings.otp_deliveries_topic,
            replies_topic=settings.replies_topic,
        )
        self.store = Store(self.engine)
        self.service = BindingService(
            self.store,
            outbox,
            challenge_ttl=timedelta(seconds=settings.challenge_ttl_seconds),
            otp_delivery_lease=timedelta(seconds=settings.otp_delivery_lease_seconds),
            clock=clock,
        )
        self.dead_letters = DeadLetters(
            self.broker,
            topic=settings.dead_letter_topic,
            max_consecutive=settings.max_consecutive_dead_letters,
        )
        self.lag = LagMonitor(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.commands_topic,
            group=settings.consumer_group,
            interval=settings.lag_interval_seconds,
        )
        self.probes = ProbeServer(settings.worker_http_host, settings.worker_http_port, self.ready)
        self._draining = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        for _ in range(settings.consumers_per_process):
            self.broker.subscriber(
                settings.commands_topic,
                group_id=settings.consumer_group,
                auto_offset_reset="earliest",
                ack_policy=AckPolicy.NACK_ON_ERROR,
                batch=True,
                max_records=settings.batch_max_records,
                # What has arrived is handled at once; this is only how long an idle consumer
                # waits for more before it asks again.
                batch_timeout_ms=settings.batch_wait_ms,
                # The broker answers a fetch as soon as a command arrives; this only bounds
                # how long it holds one while none does, so an idle worker polls it rarely.
                fetch_max_wait_ms=_FETCH_MAX_WAIT_MS,
                # What a consumer buffers ahead of its handler: aiokafka's 50 MiB default
                # holds tens of thousands of commands of a backlog in memory for nothing.
                fetch_max_bytes=_FETCH_MAX_BYTES,
                decoder=_no_body,
            )(self.on_batch)

    async def on_batch(self, body: None, message: KafkaMessage) -> None:
        records: tuple[ConsumerRecord[bytes, bytes], ...] = message.raw_message
        if self._draining:
            # Shutting down: hand it back uncommitted; the group gives it to another worker.
            # The pause keeps the consumer from spinning on it until it leaves the group.
            await asyncio.sleep(_DRAINING_PAUSE_SECONDS)
            await message.nack()
            return
        self._in_flight += 1
        self._idle.clear()
        try:
            handled = await self._process(records)
            if handled < len(records):
                # A command failed (and paused): commit what was handled before it, and begin
                # the next batch with it. Handing the whole batch back instead would do the
                # handled commands again, dead-lettering poison twice.
                _rewind(message, records[handled:])
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> int:
        """The batch in order: runs of attempts together, every other command alone. Returns
        how many records, from the first, are handled; fewer than all when one failed."""
        handled = 0
        run: list[tuple[VerifySignature, ConsumerRecord[bytes, bytes]]] = []
        try:
            for record in records:
                command = self._parse(record)
                if isinstance(command, VerifySignature):
                    run.append((command, record))
                    continue
                # What comes before is handled first, so that `handled` is a true prefix.
                handled += await self._handle_attempts(run)
                run = []
                if isinstance(command, ValidationError):
                    await self._dead_letter(record, command)
                else:
                    self.dead_letters.reset()
                    await self._handle([(command, record)], self.service.handle, command)
                handled += 1
            handled += await self._handle_attempts(run)
        except Exception:
            # Logged and paused where it happened; the records from here on are redone.
            return handled
        return handled

    def _parse(self, record: ConsumerRecord[bytes, bytes]) -> Command | ValidationError:
        try:
            return COMMAND_ADAPTER.validate_json(record.value or b"")
        except ValidationError as error:
            return error

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], error: ValidationError
    ) -> None:
        COMMANDS.labels("unparseable", "dead_lettered").inc()
        try:
            await self.dead_letters.send(record, reason=_describe(error))
        except TooManyDeadLetters:
            # Halted on purpose (see worker/dead_letters.py); the pause keeps the halted
            # worker from spinning on the same command until someone steps in.
            logger.exception("halted before command at offset %d", record.offset)
            await asyncio.sleep(self.settings.retry_backoff_seconds)
            raise

    async def _handle_attempts(
        self, run: list[tuple[VerifySignature, ConsumerRecord[bytes, bytes]]]
    ) -> int:
        if run:
            self.dead_letters.reset()
            await self._handle(run, self.service.verify_all, [command for command, _ in run])
        return len(run)

    async def _handle(
        self,
        items: Sequence[tuple[Command, ConsumerRecord[bytes, bytes]]],
        handler: Callable[[_T], Awaitable[None]],
        argument: _T,
    ) -> None:
        """Run ``handler(argument)`` for the commands of ``items``, with their logs, trace and
        metrics; a failure is retried (raised), or dead-lettered if it never can pass."""
        started = time.perf_counter()
        first, record = items[0]
        with (
            log_context(**command_log_fields(first)),
            # The trace begun by the API request continues here (traceparent header); a
            # batch continues its first command's.
            tracer().start_as_current_span(
                f"handle {first.type}" + (f" and {len(items) - 1} more" if len(items) > 1 else ""),
                context=context_from_headers(_headers(record)),
                kind=SpanKind.CONSUMER,
            ),
        ):
            try:
                await handler(argument)
            except Exception as error:
                if isinstance(error, DBAPIError) and _refused_data(error) and len(items) == 1:
                    # The database refuses this command's values for good (too long, not
                    # representable): a retry would block its partition for ever. The DLQ
                    # keeps it for a human; nothing of it was stored.
                    COMMANDS.labels(first.type, "dead_lettered").inc()
                    reason = f"the store refused its data (SQLSTATE {_sqlstate(error)})"
                    await self.dead_letters.send(record, reason=reason)
                    return
                if isinstance(error, DBAPIError) and _refused_data(error):
                    # One of several refused: each alone finds out which.
                    for command, one in items:
                        await self._handle([(command, one)], self.service.handle, command)
                    return
                for command, _ in items:
                    COMMANDS.labels(command.type, "failed").inc()
                # Stored decisions make a retry safe; pausing keeps a database or broker
                # outage from turning into a hot loop. Raising leaves the batch uncommitted.
                logger.exception("command %s failed; retrying", first.command_id)
                await asyncio.sleep(self.settings.retry_backoff_seconds)
                raise
        elapsed = time.perf_counter() - started
        now = datetime.now(UTC)
        for command, _ in items:
            COMMANDS.labels(command.type, "handled").inc()
            COMMAND_DURATION.labels(command.type).observe(elapsed / len(items))
            COMMAND_TO_EVENT.labels(command.type).observe((now - command.issued_at).total_seconds())

    async def ready(self) -> str | None:
        """None when this worker can take work now, else what is missing (the probe's reason)."""
        if self._draining:
            return "shutting down"
        timeout = self.settings.readiness_timeout_seconds
        if not await self.broker.ping(timeout):
            return "kafka unreachable"
        try:
            async with asyncio.timeout(timeout), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return "database unreachable"
        return None

    async def start(self) -> None:
        # The schema first: a worker that may not run should not touch Kafka at all.
        await prepare_database(self.engine, migrate=self.settings.auto_migrate)
        if self.settings.provision_topics:
            await provision_topics(self.settings)
        await self.outbox.start()
        await self.broker.start()
        await self.lag.start()
        await self.probes.start()
        logger.info("worker consuming %s", self.settings.commands_topic)

    async def stop(self) -> None:
        self._draining = True
        try:
            async with asyncio.timeout(self.settings.shutdown_grace_seconds):
                await self._idle.wait()
        except TimeoutError:
            logger.warning(
                "%d commands still in progress after %ss; another worker will redo them",
                self._in_flight,
                self.settings.shutdown_grace_seconds,
            )
        await self.broker.stop()
        await self.outbox.stop()
        await self.lag.stop()
        await self.probes.stop()
        await self.store.close()
        await self.engine.dispose()


def _rewind(message: KafkaMessage, unhandled: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
    """Move each partition back to its first record not handled, so that the commit after
    the handler covers exactly what was handled."""
    first: dict[TopicPartition, int] = {}
    for record in unhandled:
        first.setdefault(TopicPartition(record.topic, record.partition), record.offset)
    for partition, offset in first.items():
        message.consumer.seek(partition, offset)


def _headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {key: value.decode(errors="replace") for key, value in record.headers}


def _sqlstate(error: DBAPIError) -> str | None:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code if isinstance(code, str) else None


def _refused_data(error: DBAPIError) -> bool:
    """PostgreSQL's class 22, data exceptions: the values themselves are refused (a string
    too long for its column, a character the encoding cannot hold), so no retry can succeed.
    Everything else (connections, locks, serialisation) may pass on a retry."""
    code = _sqlstate(error)
    return code is not None and code.startswith("22")
