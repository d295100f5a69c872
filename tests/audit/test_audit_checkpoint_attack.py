"""The attack the checkpoints are for, against a real broker and the real consumer: someone
with write access to the audit database rewrites the chain consistently (triggers dropped,
a record changed, every hash after it recomputed, the head updated), or cuts records from
its end, or publishes a checkpoint of their own. Plain ``verify`` cannot tell; ``verify
--checkpoints``, run as an operator runs it with the public key only, names the first
checkpoint the chain no longer matches, and the forged one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncEngine

from audit.settings import AuditSettings
from audit.signing import CheckpointSigner, CheckpointVerifier, ensure_key_file
from harness.topics import create_topics, read_topic, unique_name
from schemas.checkpoints import AuditCheckpoint
from tests.audit.test_audit_consumer import publish, running_audit, wait_for_count
from tests.support.audit_tampering import rewrite_record, truncate_chain

pytestmark = [pytest.mark.audit, pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 300
CHAIN = "test-audit-chain"


@dataclass(frozen=True)
class AnchoredTrail:
    settings: AuditSettings
    public_key: Path
    checkpoints: list[AuditCheckpoint]  # as read back from the topic, in order

    def verify_environment(self) -> dict[str, str]:
        """What an auditor runs ``verify`` with: the public key, never the private one."""
        env = {name: value for name, value in os.environ.items() if not name.startswith("AUDIT_")}
        return env | {
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
            "AUDIT_DATABASE_URL": self.settings.audit_database_url,
            "AUDIT_CHECKPOINTS_TOPIC": self.settings.audit_checkpoints_topic,
            "AUDIT_CHAIN_NAME": self.settings.audit_chain_name,
            "AUDIT_VERIFY_KEY_FILE": str(self.public_key),
        }

    def first_checkpoint_from(self, seq: int) -> AuditCheckpoint:
        return min((c for c in self.checkpoints if c.seq >= seq), key=lambda c: c.seq)


async def verify(trail: AnchoredTrail, *arguments: str) -> tuple[int, list[str]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "audit",
        "verify",
        *arguments,
        env=trail.verify_environment(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    assert process.returncode in (0, 1), stderr.decode()
    assert b"Traceback" not in stderr, stderr.decode()[-3000:]
    return process.returncode, stdout.decode().splitlines()


async def published_checkpoints(bootstrap: str, topic: str) -> list[AuditCheckpoint]:
    records = await read_topic(bootstrap, topic)
    assert {record.key for record in records} == {CHAIN.encode()}
    return [AuditCheckpoint.model_validate_json(record.value or b"") for record in records]


@pytest.fixture
async def anchored_trail(
    kafka_bootstrap: str, database_url: str, audit_engine: AsyncEngine, tmp_path: Path
) -> AnchoredTrail:
    """Events consumed by the audit consumer, which checkpointed them as it went."""
    events_topic = unique_name("audit-events")
    await create_topics(kafka_bootstrap, events_topic, partitions=3)
    key_file = tmp_path / "audit-signing-key.pem"
    public_key = ensure_key_file(key_file)
    settings = AuditSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        audit_database_url=database_url,
        events_topic=events_topic,
        audit_consumer_group=unique_name("audit"),
        audit_batch_max_records=25,
        audit_chain_name=CHAIN,
        audit_signing_key_file=key_file,
        audit_checkpoint_records=50,
        audit_checkpoint_seconds=0.5,
        # The consumer creates it, as on a development broker.
        audit_checkpoints_topic=unique_name("audit-checkpoints"),
    )
    async with running_audit(settings) as consumer:
        # In two waves: checkpoints by count during the first, then by time at its end.
        await publish(kafka_bootstrap, events_topic, range(EVENTS // 2))
        await wait_for_count(audit_engine, EVENTS // 2)
        await publish(kafka_bootstrap, events_topic, range(EVENTS // 2, EVENTS))
        await wait_for_count(audit_engine, EVENTS)
        assert consumer.checkpointer is not None
        async with asyncio.timeout(30):
            while (
                consumer.checkpointer.last_published is None
                or consumer.checkpointer.last_published.seq < EVENTS
            ):
                await asyncio.sleep(0.05)
    checkpoints = await published_checkpoints(kafka_bootstrap, settings.audit_checkpoints_topic)
    return AnchoredTrail(settings, public_key, checkpoints)


async def test_checkpoints_are_signed_heads_published_as_the_chain_grows(
    anchored_trail: AnchoredTrail,
) -> None:
    checkpoints = anchored_trail.checkpoints
    positions = [checkpoint.seq for checkpoint in checkpoints]
    verifier = CheckpointVerifier.from_file(anchored_trail.public_key)

    for checkpoint in checkpoints:
        verifier.verify(checkpoint)
    assert positions == sorted(set(positions)), "one per head, in order, none repeated"
    assert positions[-1] == EVENTS
    # By count (every 50 records, at batch boundaries), not one per batch of 25.
    assert 4 <= len(positions) <= EVENTS // 50 + 2
    code, lines = await verify(anchored_trail, "--checkpoints")
    assert code == 0, lines
    assert lines == [
        f"chain intact: {EVENTS} records",
        f"checkpoints match: {len(checkpoints)} checkpoints of chain {CHAIN} vouch for "
        f"records 1..{EVENTS}",
    ]


async def test_a_consistent_rewrite_passes_plain_verify_and_fails_at_the_first_checkpoint_after_it(
    anchored_trail: AnchoredTrail, audit_engine: AsyncEngine
) -> None:
    changed = 77
    await rewrite_record(audit_engine, changed, "person-framed")

    assert await verify(anchored_trail) == (0, [f"chain intact: {EVENTS} records"])
    code, lines = await verify(anchored_trail, "--checkpoints")

    assert code == 1
    first = anchored_trail.first_checkpoint_from(changed)
    assert lines[0] == f"chain intact: {EVENTS} records"
    assert lines[1].startswith(
        "first checkpoint that no longer matches: "
        f"checkpoint of record {first.seq} signed at {first.signed_at.isoformat()} "
        "(partition 0, offset "
    ), lines
    assert f"the checkpoint signed {first.record_hash[:16]}…" in lines[1]
    later = [c for c in anchored_trail.checkpoints if c.seq > first.seq]
    assert len(lines) == 2 + len(later)
    assert all(line.startswith("also no longer matches: ") for line in lines[2:])


async def test_a_forged_checkpoint_is_reported_and_a_truncated_chain_is_caught(
    anchored_trail: AnchoredTrail, audit_engine: AsyncEngine
) -> None:
    settings = anchored_trail.settings
    # Someone who can write to the topic signs the head with a key of their own.
    last = anchored_trail.checkpoints[-1]
    forged = CheckpointSigner(Ed25519PrivateKey.generate()).sign(
        chain=CHAIN, seq=last.seq, record_hash=last.record_hash, at=datetime.now(UTC)
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.audit_checkpoints_topic,
            forged.model_dump_json().encode(),
            key=CHAIN.encode(),
        )
    finally:
        await producer.stop()

    code, lines = await verify(anchored_trail, "--checkpoints")

    assert code == 1
    offset = len(anchored_trail.checkpoints)  # one partition: the forged one comes last
    assert lines[1:] == [
        f"forged or unreadable: checkpoint of record {last.seq} signed at "
        f"{forged.signed_at.isoformat()} (partition 0, offset {offset}): signed by key "
        f"{forged.key_id[:16]}…, which is not a trusted key"
    ]

    keep = EVENTS - 30
    await truncate_chain(audit_engine, keep)

    assert await verify(anchored_trail) == (0, [f"chain intact: {keep} records"])
    code, lines = await verify(anchored_trail, "--checkpoints")
    assert code == 1
    first = anchored_trail.first_checkpoint_from(keep + 1)
    assert lines[1].startswith(
        f"first checkpoint that no longer matches: checkpoint of record {first.seq} "
    )
    assert lines[1].endswith(
        f"the stored chain ends at record {keep}: record {first.seq} and any after record "
        f"{keep} were removed"
    )
