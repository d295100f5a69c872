"""``python -m bench.audit``: what the audit trail costs per event.

Starts its own Kafka broker (or uses ``KAFKA_BOOTSTRAP_SERVERS``), publishes ``--events``
result events to a fresh topic, and times, in the same run:

- baseline: a plain consumer reading them all, storing nothing;
- the audit consumer appending them to a fresh SQLite trail (canonical JSON, hashes, one
  transaction and one offset commit per batch, FULL synchronous writes);
- the same into another fresh trail with checkpoints (SPEC §9) at their default rate, one
  signed head every 1,000 records published with acks=all;
- ``verify``: recomputing the whole chain; ``verify --checkpoints``: the same walk, after
  reading and checking every checkpoint of the second trail.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy.ext.asyncio import AsyncEngine

from audit.anchoring import AnchorReport, verify_against_checkpoints
from audit.checkpoint_log import read_checkpoints
from audit.consumer import AuditConsumer
from audit.database import prepare_audit_database
from audit.settings import AuditSettings
from audit.signing import CheckpointVerifier, ensure_key_file
from audit.verification import verify_chain
from harness.kafka import local_kafka
from messaging import kafka_options
from schemas.events import CloudEvent, EventType, SignatureAttempt
from schemas.reasons import Reason
from storage.engine import create_engine


def _event(number: int) -> bytes:
    decided = datetime(2026, 11, 29, tzinfo=UTC) + timedelta(milliseconds=number)
    challenge = uuid.uuid4()
    return (
        CloudEvent[SignatureAttempt](
            id=str(uuid.uuid4()),
            type=EventType.SIGNATURE_REJECTED,
            subject=str(challenge),
            time=decided,
            data=SignatureAttempt(
                challenge_id=challenge,
                device_id=uuid.uuid4(),
                key_id=uuid.uuid4(),
                person_id=f"person-{number % 1000}",
                client_id="bank-app-1",
                outcome="rejected",
                reason=Reason.INVALID_SIGNATURE,
                attempt=1,
                attempts_remaining=4,
                device_data=None,
                signature="3045022100" + "ab" * 32 + "0220" + "cd" * 32,
                request_id=f"req-{number}",
                received_at=decided,
                decided_at=decided,
            ),
        )
        .model_dump_json()
        .encode()
    )


async def _publish(bootstrap: str, topic: str, events: int) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**kafka_options(bootstrap), acks="all", linger_ms=5)
    await producer.start()
    try:
        for number in range(events):
            await producer.send(topic, _event(number))
        await producer.flush()
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str, events: int) -> float:
    consumer = AIOKafkaConsumer(
        topic, **kafka_options(bootstrap), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        started, seen = time.perf_counter(), 0
        while seen < events:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            seen += sum(len(records) for records in batches.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def _audit_all(
    bootstrap: str,
    topic: str,
    events: int,
    database: str,
    key_file: Path | None = None,
    checkpoints_topic: str = "bench.audit-checkpoints.unused",
) -> float:
    settings = AuditSettings(
        kafka_bootstrap_servers=bootstrap,
        audit_database_url=database,
        events_topic=topic,
        audit_consumer_group=f"bench-{uuid.uuid4().hex[:8]}",
        audit_signing_key_file=key_file,
        audit_checkpoints_topic=checkpoints_topic,
    )
    consumer = AuditConsumer(settings)
    await consumer.start()
    running = asyncio.create_task(consumer.run())
    try:
        started = time.perf_counter()
        while await consumer.trail.record_count() < events:
            await asyncio.sleep(0.05)
        return time.perf_counter() - started
    finally:
        consumer.request_stop()
        await running
        await consumer.stop()


async def _run(bootstrap: str, events: int, folder: Path) -> list[tuple[str, float]]:
    topic = f"bench.audit.{uuid.uuid4().hex[:8]}"
    await _publish(bootstrap, topic, events)
    database = f"sqlite+aiosqlite:///{folder / 'audit.db'}"
    anchored = f"sqlite+aiosqlite:///{folder / 'audit-anchored.db'}"
    engine, anchored_engine = create_engine(database), create_engine(anchored)
    for each in (engine, anchored_engine):
        await prepare_audit_database(each, migrate=True)
    key_file = folder / "checkpoint-signing-key.pem"
    ensure_key_file(key_file)
    read = await _read_all(bootstrap, topic, events)
    audited = await _audit_all(bootstrap, topic, events, database)
    checkpoints_topic = f"bench.audit-checkpoints.{uuid.uuid4().hex[:8]}"
    checkpointed = await _audit_all(bootstrap, topic, events, anchored, key_file, checkpoints_topic)
    started = time.perf_counter()
    report = await verify_chain(engine)
    verified = time.perf_counter() - started
    if not report.intact or report.records != events:
        raise RuntimeError(f"the benchmark's trail is wrong: {report.describe()}")
    anchors, verified_anchors = await _verify_checkpoints(
        bootstrap, checkpoints_topic, anchored_engine, key_file
    )
    if not anchors.intact or anchors.anchored != events:
        raise RuntimeError(f"the benchmark's checkpoints are wrong: {anchors.lines()}")
    await engine.dispose()
    await anchored_engine.dispose()
    return [
        ("baseline: read every event, store nothing", read),
        ("audit consumer: append to the hash chain (SQLite)", audited),
        (f"  the same, checkpointed ({anchors.checkpoints} checkpoints)", checkpointed),
        ("audit verify: recompute the whole chain", verified),
        ("audit verify --checkpoints: read, check, walk", verified_anchors),
    ]


async def _verify_checkpoints(
    bootstrap: str, topic: str, engine: AsyncEngine, key_file: Path
) -> tuple[AnchorReport, float]:
    chain = AuditSettings().audit_chain_name  # as the consumer read it
    started = time.perf_counter()
    published = await read_checkpoints(bootstrap, topic, chain)
    verifier = CheckpointVerifier.from_file(key_file)
    report = await verify_against_checkpoints(engine, published, verifier, chain_name=chain)
    return report, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or str(
            stack.enter_context(local_kafka.running_kafka(folder / "kafka"))
        )
        rows = asyncio.run(_run(bootstrap, args.events, folder))
    baseline = args.events / rows[0][1]
    print(f"\n{args.events} events, one run; ratio = events/s against the baseline\n")
    print(f"{'case':<52} {'seconds':>8} {'events/s':>10} {'ratio':>6}")
    for name, seconds in rows:
        rate = args.events / seconds
        print(f"{name:<52} {seconds:>8.2f} {rate:>10.0f} {rate / baseline:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
