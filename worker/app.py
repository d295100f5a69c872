"""The worker process: a FastStream subscriber in a consumer group on the commands topic.

Delivery (SPEC §6), chosen explicitly rather than left to FastStream's default (which
commits on receipt, at-most-once):

- ``AckPolicy.NACK_ON_ERROR``: a command's offset is committed only after its handler
  returned, that is after its outcome is stored and every event and reply it announced was
  acknowledged by Kafka (``acks=all``, idempotent producer).
- A transient failure (database, Kafka, contention) leaves the offset uncommitted and seeks
  back, after a pause, so the same command is processed again; the store makes that safe.
- A command that cannot be parsed is dead-lettered and committed; the worker goes on.
"""

import asyncio
import logging
from datetime import timedelta

from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pydantic import ValidationError

from schemas.commands import COMMAND_ADAPTER
from worker.binding import BindingService, Clock, utc_now
from worker.database import create_engine, create_tables
from worker.dead_letters import DeadLetters
from worker.outbox import KafkaOutbox
from worker.settings import WorkerSettings
from worker.store import Store
from worker.topics import provision_topics

logger = logging.getLogger(__name__)


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
            clock=clock,
        )
        self.dead_letters = DeadLetters(
            self.broker,
            topic=settings.dead_letter_topic,
            max_consecutive=settings.max_consecutive_dead_letters,
        )
        self.broker.subscriber(
            settings.commands_topic,
            group_id=settings.consumer_group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            max_workers=settings.consumers_per_process,
            decoder=_raw_body,
        )(self.on_command)

    async def on_command(self, body: bytes, message: KafkaMessage) -> None:
        try:
            command = COMMAND_ADAPTER.validate_json(body)
        except ValidationError as error:
            await self.dead_letters.send(message.raw_message, reason=_describe(error))
            return
        self.dead_letters.reset()
        try:
            await self.service.handle(command)
        except Exception:
            # Stored decisions make a retry safe; pausing keeps a database or broker outage
            # from turning into a hot loop. Raising leaves the offset uncommitted.
            logger.exception("command %s failed; retrying", command.command_id)
            await asyncio.sleep(self.settings.retry_backoff_seconds)
            raise

    async def start(self) -> None:
        if self.settings.provision_topics:
            await provision_topics(self.settings)
        await create_tables(self.engine)
        await self.broker.start()
        logger.info("worker consuming %s", self.settings.commands_topic)

    async def stop(self) -> None:
        await self.broker.stop()
        await self.engine.dispose()
