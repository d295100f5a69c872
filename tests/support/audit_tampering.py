"""What an attacker with write access to the audit database does to it, for the tests of
the checkpoints: the append-only triggers dropped, then the chain rewritten so that it is
consistent again (every hash recomputed, the head moved), or cut short."""

from __future__ import annotations

import json

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from audit import chain
from audit.database import HEAD_ID
from audit.tables import AuditRecord, ChainHead

_DROP_TRIGGERS = {
    "sqlite": [
        "DROP TRIGGER audit_records_no_update",
        "DROP TRIGGER audit_records_no_delete",
    ],
    "postgresql": ["DROP TRIGGER audit_records_append_only ON audit_records"],
}


async def _drop_triggers(connection: AsyncConnection) -> None:
    for statement in _DROP_TRIGGERS[connection.dialect.name]:
        await connection.execute(text(statement))


async def _hash_before(connection: AsyncConnection, seq: int) -> str:
    if seq == 1:
        return chain.GENESIS_HASH
    return str(
        await connection.scalar(select(AuditRecord.record_hash).where(AuditRecord.seq == seq - 1))
    )


async def rewrite_record(engine: AsyncEngine, seq: int, person_id: str) -> None:
    """Record ``seq``'s event now names ``person_id``; every hash from it on recomputed and
    the head updated, so the chain checks out on its own."""
    async with engine.begin() as connection:
        await _drop_triggers(connection)
        previous = await _hash_before(connection, seq)
        rows = (
            await connection.execute(
                select(AuditRecord.seq, AuditRecord.event_id, AuditRecord.event)
                .where(AuditRecord.seq >= seq)
                .order_by(AuditRecord.seq)
            )
        ).all()
        for row in rows:
            event = row.event
            if row.seq == seq:
                document = json.loads(event)
                document["data"]["person_id"] = person_id
                event = chain.canonical_event(document)
            digest = chain.event_hash(event)
            link = chain.record_hash(row.seq, row.event_id, previous, digest)
            await connection.execute(
                update(AuditRecord)
                .where(AuditRecord.seq == row.seq)
                .values(event=event, event_hash=digest, previous_hash=previous, record_hash=link)
            )
            previous = link
        await connection.execute(
            update(ChainHead).where(ChainHead.id == HEAD_ID).values(record_hash=previous)
        )


async def truncate_chain(engine: AsyncEngine, keep: int) -> None:
    """Records after ``keep`` deleted, the head moved back to record ``keep``."""
    async with engine.begin() as connection:
        await _drop_triggers(connection)
        await connection.execute(delete(AuditRecord).where(AuditRecord.seq > keep))
        last = await _hash_before(connection, keep + 1)
        await connection.execute(
            update(ChainHead).where(ChainHead.id == HEAD_ID).values(seq=keep, record_hash=last)
        )
