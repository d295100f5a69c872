"""Checks the whole chain and names the first broken or missing link.

Walks the records in ``seq`` order, recomputing every hash (see :mod:`audit.chain`), then
compares the end of the chain with the head row. Streams the records, so memory stays flat
however long the trail is.
"""

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncEngine

from audit import chain
from audit.database import HEAD_ID
from audit.tables import AuditRecord, ChainHead


@dataclass(frozen=True)
class BrokenLink:
    seq: int
    event_id: str | None
    problem: str


@dataclass(frozen=True)
class ChainReport:
    records: int
    broken: BrokenLink | None

    @property
    def intact(self) -> bool:
        return self.broken is None

    def describe(self) -> str:
        if self.broken is None:
            return f"chain intact: {self.records} records"
        where = f"record {self.broken.seq}"
        if self.broken.event_id:
            where += f" (event {self.broken.event_id})"
        return f"chain broken at {where}: {self.broken.problem}"


def link_problem(record: Row[Any], expected_seq: int, previous_hash: str) -> str | None:
    if record.seq != expected_seq:
        missing = (
            f"{expected_seq}"
            if record.seq == expected_seq + 1
            else (f"{expected_seq}..{record.seq - 1}")
        )
        return f"record {missing} missing before it"
    if chain.event_hash(record.event) != record.event_hash:
        return "its event was changed (event hash does not match)"
    if json.loads(record.event).get("id") != record.event_id:
        return "its event id column does not match its event"
    if record.previous_hash != previous_hash:
        return (
            f"it does not follow record {record.seq - 1}: a record was changed, removed, "
            "inserted or moved between them"
        )
    if chain.record_hash(record.seq, record.event_id, previous_hash, record.event_hash) != (
        record.record_hash
    ):
        return "its record hash does not match its contents"
    return None


async def verify_chain(engine: AsyncEngine) -> ChainReport:
    seq, previous = 0, chain.GENESIS_HASH
    async with engine.connect() as connection:
        records = await connection.stream(
            select(AuditRecord.__table__)
            .order_by(AuditRecord.seq)
            .execution_options(yield_per=1000)
        )
        async for record in records:
            problem = link_problem(record, seq + 1, previous)
            if problem is not None:
                return ChainReport(seq, BrokenLink(record.seq, record.event_id, problem))
            seq, previous = record.seq, record.record_hash
        head = (
            await connection.execute(
                select(ChainHead.seq, ChainHead.record_hash).where(ChainHead.id == HEAD_ID)
            )
        ).one_or_none()
    if head is None:
        return ChainReport(seq, BrokenLink(seq, None, "the chain head is missing"))
    if (head.seq, head.record_hash) != (seq, previous):
        return ChainReport(
            seq,
            BrokenLink(
                head.seq,
                None,
                f"the chain head names record {head.seq} but the chain ends at record {seq}: "
                "records were removed from its end",
            ),
        )
    return ChainReport(seq, None)
