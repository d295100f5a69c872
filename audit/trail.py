"""Appending delivered events to the chain, each event id once.

Kafka delivers at least once (a redelivery after a crash, a rebalance, a producer that
published the same event again); the trail stores each event id once, so storage is
exactly once. A batch is appended in one transaction holding the chain head's row lock,
then its offsets are committed (see :mod:`audit.consumer`): a crash in between redelivers
the batch, and every event in it is then found already stored.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from audit import chain
from audit.database import HEAD_ID
from audit.envelope import ReadEvent, Unreadable, read_event
from audit.tables import Anomaly, AuditRecord, ChainHead


@dataclass(frozen=True)
class Delivery:
    """One Kafka record as delivered."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass
class AppendResult:
    appended: int = 0
    duplicates: int = 0
    anomalies: int = 0


class AuditTrail:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def append(self, deliveries: Sequence[Delivery]) -> AppendResult:
        result = AppendResult()
        now = datetime.now(UTC)
        read: list[tuple[Delivery, ReadEvent | Unreadable]] = []
        for delivery in deliveries:
            try:
                read.append((delivery, read_event(delivery.value)))
            except Unreadable as unreadable:
                read.append((delivery, unreadable))
        async with self._engine.begin() as connection:
            # The row lock orders appenders: each chains onto the record the last one added.
            head = (
                await connection.execute(
                    select(ChainHead.seq, ChainHead.record_hash)
                    .where(ChainHead.id == HEAD_ID)
                    .with_for_update()
                )
            ).one()
            seq, previous = head.seq, head.record_hash
            records: list[dict[str, object]] = []
            stored = await _stored_hashes(
                connection, {event.event_id for _, event in read if isinstance(event, ReadEvent)}
            )
            for delivery, event in read:
                if isinstance(event, Unreadable):
                    await _record_anomaly(
                        connection, delivery, "unreadable", None, event.detail, now
                    )
                    result.anomalies += 1
                    continue
                digest = chain.event_hash(event.canonical)
                known = stored.get(event.event_id)
                if known == digest:
                    result.duplicates += 1
                    continue
                if known is not None:
                    await _record_anomaly(
                        connection,
                        delivery,
                        "conflicting_duplicate",
                        event.event_id,
                        "an event with this id and different content is already stored",
                        now,
                    )
                    result.anomalies += 1
                    continue
                seq += 1
                link = chain.record_hash(seq, event.event_id, previous, digest)
                records.append(
                    {
                        "seq": seq,
                        "event_id": event.event_id,
                        "event_type": event.event_type,
                        "subject": event.subject,
                        "event": event.canonical,
                        "event_hash": digest,
                        "previous_hash": previous,
                        "record_hash": link,
                        "topic": delivery.topic,
                        "partition": delivery.partition,
                        "offset": delivery.offset,
                        "recorded_at": now,
                    }
                )
                stored[event.event_id] = digest
                previous = link
            if records:
                # One statement for the batch (executemany): a round trip per record would
                # cost more than all the hashing.
                await connection.execute(insert(AuditRecord), records)
                result.appended = len(records)
                await connection.execute(
                    update(ChainHead)
                    .where(ChainHead.id == HEAD_ID)
                    .values(seq=seq, record_hash=previous)
                )
        return result

    async def record_count(self) -> int:
        async with self._engine.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(AuditRecord)) or 0)


async def _stored_hashes(connection: AsyncConnection, event_ids: set[str]) -> dict[str, str]:
    if not event_ids:
        return {}
    rows = await connection.execute(
        select(AuditRecord.event_id, AuditRecord.event_hash).where(
            AuditRecord.event_id.in_(sorted(event_ids))
        )
    )
    return {row.event_id: row.event_hash for row in rows}


async def _record_anomaly(
    connection: AsyncConnection,
    delivery: Delivery,
    kind: str,
    event_id: str | None,
    detail: str,
    now: datetime,
) -> None:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(Anomaly)
        .values(
            kind=kind,
            topic=delivery.topic,
            partition=delivery.partition,
            offset=delivery.offset,
            event_id=event_id,
            payload_hash=hashlib.sha256(delivery.value or b"").hexdigest(),
            detail=detail[:500],
            recorded_at=now,
        )
        # A redelivered message that was already found anomalous is that same anomaly.
        .on_conflict_do_nothing(index_elements=["topic", "partition", "offset"])
    )
    await connection.execute(statement)
