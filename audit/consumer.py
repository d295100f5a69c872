"""The audit consumer: its own consumer group on the events topic, storing every event once.

Offsets are committed by hand, after the batch they cover is appended and committed to the
database; a crash in between redelivers that batch and the trail recognises every event in
it (see :mod:`audit.trail`). Several audit consumers may share the group: partitions are
split between them, and the chain head's lock orders their appends.

Plain aiokafka rather than FastStream: a batch must be stored in one transaction and its
offsets committed only after, per partition, which FastStream's per-message acknowledgement
does not express.
"""

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord

from audit.checkpoints import Checkpointer
from audit.database import prepare_audit_database
from audit.roles import connected_as_owner
from audit.settings import AuditSettings
from audit.signing import CheckpointSigner
from audit.topics import provision_checkpoints_topic
from audit.trail import AuditTrail, Delivery
from messaging import kafka_options
from storage.engine import create_engine

logger = logging.getLogger(__name__)

Batches = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class AuditConsumer:
    def __init__(self, settings: AuditSettings) -> None:
        self.settings = settings
        self.engine = create_engine(settings.audit_database_url)
        self.trail = AuditTrail(self.engine)
        self._consumer = AIOKafkaConsumer(
            settings.events_topic,
            **kafka_options(settings.kafka_bootstrap_servers),
            group_id=settings.audit_consumer_group,
            client_id="device-binding-audit",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.audit_session_timeout_ms,
        )
        self._stopping = asyncio.Event()
        key_file = settings.audit_signing_key_file
        # The key is read before anything starts: a bad key file stops the process at once.
        self.checkpointer = (
            Checkpointer(settings, self.engine, CheckpointSigner.from_file(key_file))
            if key_file is not None
            else None
        )

    async def start(self) -> None:
        await prepare_audit_database(self.engine, migrate=self.settings.audit_auto_migrate)
        if await connected_as_owner(self.engine):
            logger.warning(
                "the audit consumer connects as the owner of the audit tables: it could drop "
                "their triggers; connect as the runtime role (AUDIT_RUNTIME_ROLE of migrate)"
            )
        if self.checkpointer is not None:
            if self.settings.provision_topics:
                await provision_checkpoints_topic(self.settings)
            await self.checkpointer.start()
        else:
            logger.warning(
                "AUDIT_SIGNING_KEY_FILE is not set: no checkpoints, the chain is anchored "
                "nowhere but in its own database"
            )
        await self._consumer.start()
        logger.info(
            "audit consuming %s as group %s",
            self.settings.events_topic,
            self.settings.audit_consumer_group,
        )

    async def run(self) -> None:
        """Consumes until :meth:`request_stop`; the batch in hand is finished first."""
        while not self._stopping.is_set():
            batches: Batches = await self._consumer.getmany(
                timeout_ms=500, max_records=self.settings.audit_batch_max_records
            )
            if batches:
                await self._store(batches)
            if self.checkpointer is not None:
                self.checkpointer.poll()

    def request_stop(self) -> None:
        self._stopping.set()

    async def stop(self) -> None:
        await self._consumer.stop()
        if self.checkpointer is not None:
            await self.checkpointer.stop()
        await self.engine.dispose()

    async def _store(self, batches: Batches) -> None:
        deliveries = [
            Delivery(record.topic, record.partition, record.offset, record.value)
            for records in batches.values()
            for record in records
        ]
        try:
            result = await self.trail.append(deliveries)
        except Exception:
            logger.exception("appending %d events failed; reading them again", len(deliveries))
            await asyncio.sleep(self.settings.audit_retry_backoff_seconds)
            self._rewind(batches)
            return
        logger.info(
            "stored %d events (%d already stored, %d anomalies)",
            result.appended,
            result.duplicates,
            result.anomalies,
        )
        if self.checkpointer is not None:
            # Committed: a checkpoint may now cover these records.
            self.checkpointer.appended(result.appended)
        offsets = {partition: records[-1].offset + 1 for partition, records in batches.items()}
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError):
            # The group rebalanced meanwhile: the partition's new owner reads these records
            # again and finds them stored.
            logger.warning("offsets not committed (rebalance); the events are stored already")

    def _rewind(self, batches: Batches) -> None:
        for partition, records in batches.items():
            # A partition no longer ours raises: its new owner starts from the committed offset.
            with contextlib.suppress(IllegalStateError):
                self._consumer.seek(partition, records[0].offset)
