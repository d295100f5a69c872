"""The worker process: a FastStream subscriber in a consumer group on the commands topic.

Delivery (SPEC §6), chosen explicitly rather than left to FastStream's default (which
commits on receipt, at-most-once):

- ``AckPolicy.NACK_ON_ERROR``: a command's offset is committed only after its handler
  returned, that is after its outcome is stored and every event and reply it announced was
  acknowledged by Kafka (``acks=all``, idempotent producer).
- A transient failure (database, Kafka, contention) leaves the offset uncommitted and seeks
  back, after a pause, so the same command is processed again; the store makes that safe.
- A command that cannot be parsed is dead-lettered and committed; the worker goes on.

Shutdown (SIGTERM) drains before it closes: new deliveries are handed back uncommitted (the
group gives them to another worker), commands in progress finish and commit, and only then
do the consumers leave the group. FastStream's own stop would leave the group first, so the
commands finishing after it could no longer commit and would be done twice elsewhere.
"""

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from schemas.commands import COMMAND_ADAPTER
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


async def _raw_body(message: StreamMessage[ConsumerRecord[bytes, bytes]]) -> bytes:
    # Parsing is ours (see on_command): a malformed body must reach the DLQ, not an error log.
    return message.body


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
        outbox = KafkaOutbox(
            self.broker,
            events_topic=settings.events_topic,
            otp_topic=settings.otp_deliveries_topic,
            replies_topic=settings.replies_topic,
        )
        self.service = BindingService(
            Store(self.engine),
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
        self.broker.subscriber(
            settings.commands_topic,
            group_id=settings.consumer_group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            max_workers=settings.consumers_per_process,
            decoder=_raw_body,
        )(self.on_command)

    async def on_command(self, body: bytes, message: KafkaMessage) -> None:
        if self._draining:
            # Shutting down: hand it back uncommitted; the group gives it to another worker.
            # The pause keeps the consumer from spinning on it until it leaves the group.
            await asyncio.sleep(_DRAINING_PAUSE_SECONDS)
            await message.nack()
            return
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._process(body, message)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _process(self, body: bytes, message: KafkaMessage) -> None:
        try:
            command = COMMAND_ADAPTER.validate_json(body)
        except ValidationError as error:
            COMMANDS.labels("unparseable", "dead_lettered").inc()
            try:
                await self.dead_letters.send(message.raw_message, reason=_describe(error))
            except TooManyDeadLetters:
                # Halted on purpose (see worker/dead_letters.py); the pause keeps the halted
                # worker from spinning on the same command until someone steps in.
                await asyncio.sleep(self.settings.retry_backoff_seconds)
                raise
            return
        self.dead_letters.reset()
        started = time.perf_counter()
        with (
            log_context(**command_log_fields(command)),
            # The trace begun by the API request continues here (traceparent header).
            tracer().start_as_current_span(
                f"handle {command.type}",
                context=context_from_headers(message.headers),
                kind=SpanKind.CONSUMER,
            ),
        ):
            try:
                await self.service.handle(command)
            except Exception as error:
                if isinstance(error, DBAPIError) and _refused_data(error):
                    # The database refuses this command's values for good (too long, not
                    # representable): a retry would block its partition for ever. The DLQ
                    # keeps it for a human; nothing of it was stored.
                    COMMANDS.labels(command.type, "dead_lettered").inc()
                    reason = f"the store refused its data (SQLSTATE {_sqlstate(error)})"
                    await self.dead_letters.send(message.raw_message, reason=reason)
                    return
                COMMANDS.labels(command.type, "failed").inc()
                # Stored decisions make a retry safe; pausing keeps a database or broker
                # outage from turning into a hot loop. Raising leaves the offset uncommitted.
                logger.exception("command %s failed; retrying", command.command_id)
                await asyncio.sleep(self.settings.retry_backoff_seconds)
                raise
        COMMANDS.labels(command.type, "handled").inc()
        COMMAND_DURATION.labels(command.type).observe(time.perf_counter() - started)
        COMMAND_TO_EVENT.labels(command.type).observe(
            (datetime.now(UTC) - command.issued_at).total_seconds()
        )

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
        await self.lag.stop()
        await self.probes.stop()
        await self.engine.dispose()


def _sqlstate(error: DBAPIError) -> str | None:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code if isinstance(code, str) else None


def _refused_data(error: DBAPIError) -> bool:
    """PostgreSQL's class 22, data exceptions: the values themselves are refused (a string
    too long for its column, a character the encoding cannot hold), so no retry can succeed.
    Everything else (connections, locks, serialisation) may pass on a retry."""
    code = _sqlstate(error)
    return code is not None and code.startswith("22")
