"""The stored chain against its checkpoints, without a broker: the checkpoints are handed
over as they would be read from the topic, the chain is a real database's (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from audit.anchoring import AnchorReport, verify_against_checkpoints
from audit.checkpoint_log import PublishedCheckpoint
from audit.signing import CheckpointSigner, CheckpointVerifier
from audit.tables import AuditRecord
from audit.trail import AuditTrail, Delivery
from audit.verification import verify_chain
from tests.support.audit_tampering import rewrite_record, truncate_chain
from tests.support.sample_events import attempt_event_json

pytestmark = pytest.mark.audit

CHAIN = "device-binding-audit"
AT = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
KEY = CheckpointSigner(Ed25519PrivateKey.generate())


async def stored_chain(engine: AsyncEngine, records: int) -> None:
    await AuditTrail(engine).append(
        [Delivery("events", 0, offset, attempt_event_json(offset)) for offset in range(records)]
    )


async def checkpoints_at(
    engine: AsyncEngine, *positions: int, signer: CheckpointSigner = KEY
) -> list[PublishedCheckpoint]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(AuditRecord.seq, AuditRecord.record_hash))
        hashes = {row.seq: row.record_hash for row in rows}
    return [
        PublishedCheckpoint(
            0, offset, signer.sign(chain=CHAIN, seq=seq, record_hash=hashes[seq], at=AT)
        )
        for offset, seq in enumerate(positions)
    ]


async def check(engine: AsyncEngine, published: list[PublishedCheckpoint]) -> AnchorReport:
    verifier = CheckpointVerifier([KEY.public_key()])
    return await verify_against_checkpoints(engine, published, verifier, chain_name=CHAIN)


async def test_an_untouched_chain_matches_every_checkpoint(audit_engine: AsyncEngine) -> None:
    await stored_chain(audit_engine, 50)
    published = await checkpoints_at(audit_engine, 10, 20, 30, 40)

    report = await check(audit_engine, published)

    assert report.intact, report.lines()
    assert (report.checkpoints, report.anchored, report.records) == (4, 40, 50)
    assert report.lines() == [
        f"checkpoints match: 4 checkpoints of chain {CHAIN} vouch for records 1..40; "
        "records 41..50 are not checkpointed yet"
    ]


async def test_a_consistent_rewrite_is_named_at_the_first_checkpoint_after_it(
    audit_engine: AsyncEngine,
) -> None:
    await stored_chain(audit_engine, 50)
    published = await checkpoints_at(audit_engine, 10, 20, 30, 40)

    await rewrite_record(audit_engine, 25, "someone-else")

    assert (await verify_chain(audit_engine)).intact  # the database alone cannot tell
    report = await check(audit_engine, published)
    assert not report.intact
    assert [finding.published.checkpoint.seq for finding in report.mismatched] == [30, 40]  # type: ignore[union-attr]
    assert report.anchored == 20
    first = report.lines()[0]
    assert first.startswith(
        "first checkpoint that no longer matches: checkpoint of record 30 signed at "
        "2026-12-06T18:00:00+00:00 (partition 0, offset 2): the stored record 30 has hash "
    )
    assert "the chain was rewritten at or before it" in first


async def test_records_cut_from_the_end_leave_checkpoints_past_it(
    audit_engine: AsyncEngine,
) -> None:
    await stored_chain(audit_engine, 50)
    published = await checkpoints_at(audit_engine, 10, 45, 50)

    await truncate_chain(audit_engine, 42)

    assert (await verify_chain(audit_engine)).intact
    report = await check(audit_engine, published)
    assert [finding.published.checkpoint.seq for finding in report.mismatched] == [45, 50]  # type: ignore[union-attr]
    assert report.lines()[0].endswith(
        "the stored chain ends at record 42: record 45 and any after record 42 were removed"
    )


async def test_a_checkpoint_signed_by_another_key_is_reported_as_forged(
    audit_engine: AsyncEngine,
) -> None:
    await stored_chain(audit_engine, 20)
    genuine = await checkpoints_at(audit_engine, 10)
    intruder = CheckpointSigner(Ed25519PrivateKey.generate())
    forged = await checkpoints_at(audit_engine, 20, signer=intruder)
    # An intruder who names the trusted key fares no better.
    impostor = PublishedCheckpoint(
        0,
        7,
        forged[0].checkpoint.model_copy(update={"key_id": KEY.key_id}),  # type: ignore[union-attr]
    )

    report = await check(audit_engine, [*genuine, *forged, impostor])

    assert not report.intact
    assert report.mismatched == []
    assert [finding.published.offset for finding in report.forged] == [0, 7]
    assert "not a trusted key" in report.forged[0].problem
    assert "does not verify" in report.forged[1].problem
    assert report.anchored == 10


async def test_a_stored_chain_with_no_checkpoint_is_not_called_anchored(
    audit_engine: AsyncEngine,
) -> None:
    await stored_chain(audit_engine, 3)

    report = await check(audit_engine, [])

    assert report.unanchored
    assert not report.intact
    assert report.lines() == [
        f"no checkpoint of chain {CHAIN} was published: its 3 records are anchored nowhere"
    ]


async def test_a_message_of_the_chain_that_is_not_a_checkpoint_is_reported(
    audit_engine: AsyncEngine,
) -> None:
    await stored_chain(audit_engine, 10)
    published = [
        *await checkpoints_at(audit_engine, 10),
        PublishedCheckpoint(0, 1, None, "not a checkpoint: missing or invalid signature"),
    ]

    report = await check(audit_engine, published)

    assert not report.intact
    assert [finding.describe() for finding in report.forged] == [
        "message at partition 0, offset 1: not a checkpoint: missing or invalid signature"
    ]
