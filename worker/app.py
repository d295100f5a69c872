"""One worker process: its consumer, stores and outputs, wired together; ``start`` / ``stop``.

Delivery (SPEC §6), step by step:

1. :mod:`worker.consumer` takes a batch of commands (one consumer per process, manual
   commits, nothing auto-committed);
2. :mod:`worker.handling` parses them in one pass and decides them in order: the signature
   attempts of a run together, in one store transaction (:mod:`worker.attempts.store`), the
   other commands one by one (:mod:`worker.binding`); unparseable ones go to the DLQ;
3. the decisions are stored before anything is announced; events and replies are then
   handed to the producer together (``acks=all``, idempotent);
4. :mod:`worker.commits` commits the batch's offsets once all of them are acknowledged,
   while the next batch is already being decided.

A redelivered command finds its decision stored and announces it again, identically.

Why aiokafka here and not FastStream's subscriber: a FastStream handler acknowledges the
batch it was given when it returns, so the next batch cannot be decided while this one's
acknowledgements are in flight, and each subscriber is a group member of its own (three per
process joined one after another, each join redoing the batches in flight). The worker needs
one member per process and commits it controls; FastStream stays where it fits, in the
audit and fraud consumers.
"""

import asyncio
import logging
from datetime import timedelta

from aiokafka import AIOKafkaConsumer
from sqlalchemy import text

from messaging import kafka_options
from provisioning import provision_topics
from storage.engine import create_engine
from storage.migrations import prepare_database
from worker.answers import Clock, utc_now
from worker.attempts.runs import AttemptRuns
from worker.attempts.store import attempt_store
from worker.attempts.verification import BatchVerifier
from worker.binding import BindingService
from worker.consumer import CommandConsumer
from worker.dead_letters import DeadLetters
from worker.expiry import ExpirySweeper
from worker.handling import BatchHandler
from worker.lag import LagMonitor
from worker.migrations import WORKER_MIGRATIONS
from worker.otp_keyring import keyring_from
from worker.outbox import KafkaOutbox
from worker.probes import ProbeServer
from worker.retention import RefusalSweeper
from worker.settings import WorkerSettings
from worker.store import Store

logger = logging.getLogger(__name__)

_FETCH_MAX_BYTES = 4 * 1024 * 1024
# The broker answers a fetch as soon as a command arrives; this only bounds how long it holds
# one while none does, so an idle worker asks it twice a second.
_FETCH_MAX_WAIT_MS = 500


class Worker:
    def __init__(self, settings: WorkerSettings, *, clock: Clock = utc_now) -> None:
        self.settings = settings
        # First: without its keys the worker must not run at all (OtpKeysInvalid).
        keyring = keyring_from(settings.otp_encryption_keys)
        self.engine = create_engine(settings.database_url)
        self.outbox = outbox = KafkaOutbox(
            settings.kafka_bootstrap_servers,
            events_topic=settings.events_topic,
            otp_topic=settings.otp_deliveries_topic,
            replies_topic=settings.replies_topic,
            dead_letter_topic=settings.dead_letter_topic,
        )
        self.store = Store(self.engine)
        self.attempts = attempt_store(
            settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        self.verifier = BatchVerifier(settings.verify_processes)
        runs = AttemptRuns(
            self.attempts,
            outbox,
            verifier=self.verifier,
            keyring=keyring,
            clock=clock,
            person_lock=timedelta(seconds=settings.person_lock_seconds),
        )
        service = BindingService(
            self.store,
            outbox,
            keyring=keyring,
            challenge_ttl=timedelta(seconds=settings.challenge_ttl_seconds),
            otp_delivery_lease=timedelta(seconds=settings.otp_delivery_lease_seconds),
            clock=clock,
            otp_sends_per_hour=settings.otp_sends_per_hour,
            max_pending=settings.max_pending_challenges,
            person_lock=timedelta(seconds=settings.person_lock_seconds),
        )
        handler = BatchHandler(
            attempts=runs,
            service=service,
            dead_letters=DeadLetters(outbox, max_consecutive=settings.max_consecutive_dead_letters),
            retry_backoff_seconds=settings.retry_backoff_seconds,
        )
        self.consumer = CommandConsumer(
            AIOKafkaConsumer(
                **kafka_options(settings.kafka_bootstrap_servers),
                client_id="device-binding-worker",
                group_id=settings.consumer_group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=_FETCH_MAX_WAIT_MS,
                # What the consumer buffers ahead of its handler: aiokafka's 50 MiB default
                # holds tens of thousands of commands of a backlog in memory for nothing.
                fetch_max_bytes=_FETCH_MAX_BYTES,
                max_partition_fetch_bytes=_FETCH_MAX_BYTES,
            ),
            handler,
            topic=settings.commands_topic,
            max_records=settings.batch_max_records,
            max_in_flight=settings.batches_in_flight,
            retry_backoff_seconds=settings.retry_backoff_seconds,
            rebalance_grace_seconds=settings.shutdown_grace_seconds,
        )
        self.lag = LagMonitor(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.commands_topic,
            group=settings.consumer_group,
            interval=settings.lag_interval_seconds,
        )
        self.sweeper = RefusalSweeper(
            self.engine, retention=timedelta(seconds=settings.refusal_retention_seconds)
        )
        self.expiry = ExpirySweeper(
            self.engine, interval_seconds=settings.expiry_sweep_seconds, clock=clock
        )
        self.probes = ProbeServer(settings.worker_http_host, settings.worker_http_port, self.ready)
        self._draining = False

    async def ready(self) -> str | None:
        """None when this worker can take work now, else what is missing (the probe's reason)."""
        if self._draining:
            return "shutting down"
        timeout = self.settings.readiness_timeout_seconds
        if not await self.outbox.reachable(timeout):
            return "kafka unreachable"
        try:
            async with asyncio.timeout(timeout), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return "database unreachable"
        return None

    async def __aenter__(self) -> "Worker":
        try:
            await self.start()
        except BaseException:
            # Release what started: the verification process and the database's
            # connections would keep the process from exiting.
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        # The schema first: a worker that may not run should not touch Kafka at all.
        await prepare_database(self.engine, WORKER_MIGRATIONS, migrate=self.settings.auto_migrate)
        if self.settings.provision_topics:
            await provision_topics(
                self.settings,
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                partitions=self.settings.topic_partitions,
                replication_factor=self.settings.topic_replication_factor,
            )
        await self.outbox.start()
        await self.consumer.start()
        await self.lag.start()
        await self.sweeper.start()
        await self.expiry.start()
        await self.probes.start()
        logger.info("worker consuming %s", self.settings.commands_topic)

    async def stop(self) -> None:
        """Drain (see :meth:`CommandConsumer.drain`), then close everything."""
        self._draining = True
        await self.consumer.drain(self.settings.shutdown_grace_seconds)
        await self.outbox.stop()
        await self.lag.stop()
        await self.sweeper.stop()
        await self.expiry.stop()
        await self.probes.stop()
        await self.attempts.close()
        self.verifier.close()
        await self.engine.dispose()
