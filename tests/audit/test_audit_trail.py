"""The audit trail on a real database (SQLite and PostgreSQL): each event stored once, in an
append-only hash chain whose verification names the first broken or missing link."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from audit import chain
from audit.tables import Anomaly, AuditRecord
from audit.trail import AuditTrail, Delivery
from audit.verification import verify_chain
from storage.engine import create_engine
from tests.support.sample_events import attempt_event_json

pytestmark = pytest.mark.audit

ROOT = Path(__file__).resolve().parents[2]


def deliveries(numbers: range, *, first_offset: int = 0) -> list[Delivery]:
    return [
        Delivery("events", 0, first_offset + index, attempt_event_json(number))
        for index, number in enumerate(numbers)
    ]


async def stored_ids(audit_engine: AsyncEngine) -> list[str]:
    async with audit_engine.connect() as connection:
        return list(await connection.scalars(select(AuditRecord.event_id).order_by("seq")))


async def attacker(audit_engine: AsyncEngine, *statements: str | Executable) -> None:
    """Someone with the database's admin rights: past the triggers, straight to the rows."""
    async with audit_engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("ALTER TABLE audit_records DISABLE TRIGGER USER"))
        else:
            await connection.execute(text("DROP TRIGGER audit_records_no_update"))
            await connection.execute(text("DROP TRIGGER audit_records_no_delete"))
        for statement in statements:
            await connection.execute(text(statement) if isinstance(statement, str) else statement)


async def test_every_event_once_however_often_it_is_delivered(audit_engine: AsyncEngine) -> None:
    trail = AuditTrail(audit_engine)
    first = await trail.append(deliveries(range(10)))
    # A redelivered batch, overlapping the next one, with copies inside the batch too.
    again = await trail.append(
        deliveries(range(5, 15), first_offset=5) + deliveries(range(12, 15), first_offset=20)
    )
    assert (first.appended, first.duplicates) == (10, 0)
    assert (again.appended, again.duplicates, again.anomalies) == (5, 8, 0)
    expected = [json.loads(attempt_event_json(n))["id"] for n in range(15)]
    assert await stored_ids(audit_engine) == expected
    report = await verify_chain(audit_engine)
    assert report.intact, report.describe()
    assert report.records == 15


async def test_concurrent_appenders_chain_one_after_another(
    audit_engine: AsyncEngine, database_url: str
) -> None:
    # Two consumers of one group, each with its own audit_engine, racing on overlapping events.
    other = create_engine(database_url)
    try:
        results = await asyncio.gather(
            *(
                AuditTrail(e).append(deliveries(range(start, start + 10), first_offset=start))
                for start in (0, 5, 10, 15)
                for e in (audit_engine, other)
            )
        )
    finally:
        await other.dispose()
    assert sum(result.appended for result in results) == 25
    assert len(set(await stored_ids(audit_engine))) == 25
    report = await verify_chain(audit_engine)
    assert report.intact, report.describe()


async def test_what_cannot_be_chained_is_recorded_once(audit_engine: AsyncEngine) -> None:
    trail = AuditTrail(audit_engine)
    changed = json.loads(attempt_event_json(1))
    changed["data"]["reason"] = "challenge_locked"
    batch = [
        Delivery("events", 0, 0, attempt_event_json(1)),
        Delivery("events", 0, 1, b"not json, perhaps an OTP 123456"),
        Delivery("events", 0, 2, json.dumps(changed).encode()),
    ]
    await trail.append(batch)
    redelivered = await trail.append(batch)
    assert (redelivered.appended, redelivered.duplicates, redelivered.anomalies) == (0, 1, 2)
    async with audit_engine.connect() as connection:
        anomalies = (await connection.execute(select(Anomaly).order_by(Anomaly.offset))).all()
    assert [(a.kind, a.offset, a.event_id) for a in anomalies] == [
        ("unreadable", 1, None),
        ("conflicting_duplicate", 2, changed["id"]),
    ]
    assert anomalies[0].detail == "not JSON"
    assert "123456" not in " ".join(str(value) for row in anomalies for value in row)
    assert len(await stored_ids(audit_engine)) == 1


async def test_records_cannot_be_updated_or_deleted(audit_engine: AsyncEngine) -> None:
    await AuditTrail(audit_engine).append(deliveries(range(3)))
    for statement in (
        update(AuditRecord).where(AuditRecord.seq == 2).values(event="{}"),
        delete(AuditRecord).where(AuditRecord.seq == 3),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with audit_engine.begin() as connection:
                await connection.execute(statement)
    assert len(await stored_ids(audit_engine)) == 3


async def test_an_empty_trail_is_intact(audit_engine: AsyncEngine) -> None:
    report = await verify_chain(audit_engine)
    assert (report.intact, report.records) == (True, 0)


@pytest.fixture
async def ten_records(audit_engine: AsyncEngine) -> list[str]:
    await AuditTrail(audit_engine).append(deliveries(range(10)))
    assert (await verify_chain(audit_engine)).intact
    return await stored_ids(audit_engine)


async def test_a_modified_event_is_named(audit_engine: AsyncEngine, ten_records: list[str]) -> None:
    await attacker(
        audit_engine,
        "UPDATE audit_records SET event = REPLACE(event, 'invalid_signature', 'x') WHERE seq = 4",
    )
    report = await verify_chain(audit_engine)
    assert report.broken is not None
    assert (report.broken.seq, report.broken.event_id) == (4, ten_records[3])
    assert "event was changed" in report.broken.problem
    assert report.records == 3
    assert f"chain broken at record 4 (event {ten_records[3]})" in report.describe()


async def test_a_modified_event_with_its_hashes_redone_breaks_the_next_link(
    audit_engine: AsyncEngine, ten_records: list[str]
) -> None:
    async with audit_engine.connect() as connection:
        row = (await connection.execute(select(AuditRecord).where(AuditRecord.seq == 4))).one()
    forged = json.loads(row.event)
    forged["data"]["reason"] = "challenge_expired"
    canonical = chain.canonical_event(forged)
    digest = chain.event_hash(canonical)
    link = chain.record_hash(4, row.event_id, row.previous_hash, digest)
    await attacker(
        audit_engine,
        update(AuditRecord)
        .where(AuditRecord.seq == 4)
        .values(event=canonical, event_hash=digest, record_hash=link),
    )
    report = await verify_chain(audit_engine)
    assert report.broken is not None
    assert report.broken.seq == 5
    assert "does not follow record 4" in report.broken.problem


async def test_a_deleted_record_is_named(
    audit_engine: AsyncEngine, ten_records: list[str], database_url: str
) -> None:
    await attacker(audit_engine, "DELETE FROM audit_records WHERE seq = 6")
    report = await verify_chain(audit_engine)
    assert report.broken is not None
    assert (report.broken.seq, report.broken.event_id) == (7, ten_records[6])
    assert report.broken.problem == "record 6 missing before it"
    # The operator's command says the same, and fails.
    command = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "audit",
        "verify",
        env={**os.environ, "AUDIT_DATABASE_URL": database_url},
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(command.communicate(), 60)
    assert command.returncode == 1
    assert stdout.decode() == (
        f"chain broken at record 7 (event {ten_records[6]}): record 6 missing before it\n"
    )


async def test_records_deleted_from_the_end_are_noticed(
    audit_engine: AsyncEngine, ten_records: list[str]
) -> None:
    await attacker(audit_engine, "DELETE FROM audit_records WHERE seq >= 9")
    report = await verify_chain(audit_engine)
    assert report.broken is not None
    assert report.broken.seq == 10
    assert "chain head names record 10 but the chain ends at record 8" in report.broken.problem


async def test_reordered_records_are_named(
    audit_engine: AsyncEngine, ten_records: list[str]
) -> None:
    await attacker(
        audit_engine,
        "UPDATE audit_records SET seq = -1 WHERE seq = 3",
        "UPDATE audit_records SET seq = 3 WHERE seq = 7",
        "UPDATE audit_records SET seq = 7 WHERE seq = -1",
    )
    report = await verify_chain(audit_engine)
    assert report.broken is not None
    # Record 3 now holds the seventh event, whose link points at record 6.
    assert (report.broken.seq, report.broken.event_id) == (3, ten_records[6])
    assert "does not follow record 2" in report.broken.problem
