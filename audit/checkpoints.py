"""Publishing checkpoints: the chain head, signed, on the checkpoints topic (SPEC §9).

A checkpoint is taken every ``audit_checkpoint_records`` records appended, or
``audit_checkpoint_seconds`` after the last one when records were appended since; never
when nothing is new. It signs the head row as committed in the database, so it only ever
covers records that are stored: the consumer tells this module about an append after its
transaction commits.

Publishing runs beside the consumer, one checkpoint at a time, and never holds up an
append: a broker that refuses or times out delays the checkpoint, not the trail. A failed
checkpoint is not queued but taken again, from the head as it is then, after a backoff that
grows to a minute: a checkpoint is re-derivable from the chain, and a newer head vouches for
every record an older one did. On a graceful stop the head is anchored one last time.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from audit.database import HEAD_ID
from audit.settings import AuditSettings
from audit.signing import CheckpointSigner
from audit.tables import ChainHead
from messaging import kafka_options
from schemas.checkpoints import AuditCheckpoint

logger = logging.getLogger(__name__)

# Retries of a failed checkpoint wait 1, 2, 4, ... seconds, at most this long.
MAX_RETRY_BACKOFF_SECONDS = 60.0
# How long a stopping consumer waits to anchor its last records.
FINAL_CHECKPOINT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Head:
    seq: int
    record_hash: str


async def read_head(engine: AsyncEngine) -> Head:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(ChainHead.seq, ChainHead.record_hash).where(ChainHead.id == HEAD_ID)
            )
        ).one()
    return Head(row.seq, row.record_hash)


class Publisher(Protocol):
    """What the checkpointer needs of aiokafka's producer."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> Any: ...


class Checkpointer:
    """Decides when a checkpoint is due and publishes it; driven by the consumer's loop."""

    def __init__(
        self,
        settings: AuditSettings,
        engine: AsyncEngine,
        signer: CheckpointSigner,
        *,
        clock: Callable[[], float] = time.monotonic,
        producer: Publisher | None = None,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._signer = signer
        self._clock = clock
        self._producer: Publisher = producer or AIOKafkaProducer(
            **kafka_options(settings.kafka_bootstrap_servers),
            client_id="device-binding-audit-checkpoints",
            acks="all",
            enable_idempotence=True,
        )
        self._started = False
        self._appended_since = 0
        self._last_at = clock()
        # None until the first checkpoint of this process: after a restart the head is
        # anchored once, after the interval, even with nothing new (the last process may
        # have died before anchoring it).
        self._anchored_seq: int | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._publishing: asyncio.Task[None] | None = None
        self.last_published: AuditCheckpoint | None = None

    async def start(self) -> None:
        await self._producer.start()
        self._started = True
        logger.info(
            "checkpoints of chain %s signed by key %s on %s",
            self._settings.audit_chain_name,
            self._signer.key_id,
            self._settings.audit_checkpoints_topic,
        )

    def appended(self, records: int) -> None:
        """Records were appended and committed."""
        self._appended_since += records

    def poll(self) -> None:
        """Start publishing a checkpoint if one is due and none is under way."""
        if self._publishing is not None and not self._publishing.done():
            return
        if self._due(self._clock()):
            self._publishing = asyncio.create_task(self._checkpoint())

    async def stop(self) -> None:
        if self._publishing is not None:
            await self._publishing
        if self._started and self._appended_since:
            # Anchor what this process appended; a broker that is gone costs a bounded wait.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._checkpoint(), FINAL_CHECKPOINT_TIMEOUT_SECONDS)
        if self._started:
            await self._producer.stop()
            self._started = False

    def _due(self, now: float) -> bool:
        if now < self._retry_at:
            return False
        if self._appended_since >= self._settings.audit_checkpoint_records:
            return True
        something_new = self._appended_since > 0 or self._anchored_seq is None
        return something_new and now - self._last_at >= self._settings.audit_checkpoint_seconds

    async def _checkpoint(self) -> None:
        covered = self._appended_since
        try:
            head = await read_head(self._engine)
            if head.seq == 0 or head.seq == self._anchored_seq:
                self._settled(covered, head.seq)  # nothing new to anchor
                return
            checkpoint = self._signer.sign(
                chain=self._settings.audit_chain_name,
                seq=head.seq,
                record_hash=head.record_hash,
                at=datetime.now(UTC),
            )
            await self._producer.send_and_wait(
                self._settings.audit_checkpoints_topic,
                checkpoint.model_dump_json().encode(),
                key=checkpoint.chain.encode(),
            )
        except Exception as error:
            self._failures += 1
            backoff = min(2.0 ** (self._failures - 1), MAX_RETRY_BACKOFF_SECONDS)
            self._retry_at = self._clock() + backoff
            logger.warning(
                "checkpoint not published (%s); taken again from the head in %.0f s",
                type(error).__name__,
                backoff,
            )
            return
        self.last_published = checkpoint
        self._settled(covered, head.seq)
        logger.info("checkpoint: record %d of chain %s signed", head.seq, checkpoint.chain)

    def _settled(self, covered: int, seq: int) -> None:
        # Records appended while this checkpoint was being taken count towards the next.
        self._appended_since = max(0, self._appended_since - covered)
        self._anchored_seq = seq
        self._last_at = self._clock()
        self._failures = 0
        self._retry_at = 0.0
