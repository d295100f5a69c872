"""The audit consumer against a real Kafka broker: every event stored exactly once through
duplicate deliveries, crashes (SIGKILL) and restarts, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from audit.consumer import AuditConsumer
from audit.settings import AuditSettings
from audit.tables import AuditRecord
from audit.trail import AppendResult, AuditTrail, Delivery
from audit.verification import verify_chain
from harness.topics import create_topics, unique_name
from schemas.commands import VerifySignature
from tests.support.sample_events import attempt_event, attempt_event_json
from tests.support.worker import (
    DeviceKey,
    command_client,
    running_worker,
    worker_settings,
)
from tests.worker.test_worker_flow import register

pytestmark = [pytest.mark.audit, pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def events_topic(kafka_bootstrap: str) -> str:
    topic = unique_name("audit-events")
    await create_topics(kafka_bootstrap, topic, partitions=3)
    return topic


async def publish(bootstrap: str, topic: str, numbers: Sequence[int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for number in numbers:
            event = attempt_event(number)
            await producer.send(topic, event.model_dump_json().encode(), key=event.subject.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def stored_ids(audit_engine: AsyncEngine) -> list[str]:
    async with audit_engine.connect() as connection:
        return list(await connection.scalars(select(AuditRecord.event_id)))


async def wait_for_count(audit_engine: AsyncEngine, at_least: int) -> int:
    async with asyncio.timeout(60):
        while (count := await AuditTrail(audit_engine).record_count()) < at_least:
            await asyncio.sleep(0.02)
    return count


def event_ids(numbers: Sequence[int]) -> set[str]:
    return {json.loads(attempt_event_json(number))["id"] for number in numbers}


class AuditProcess:
    """``python -m audit`` as operators run it, its log kept for the failure message."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "audit"], env=env, cwd=ROOT, stdout=self._log, stderr=self._log
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._log.close()

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self._log.close()
        return code


async def test_killed_mid_stream_and_restarted_stores_each_event_once(
    kafka_bootstrap: str,
    events_topic: str,
    database_url: str,
    audit_engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AUDIT_DATABASE_URL": database_url,
        "EVENTS_TOPIC": events_topic,
        "AUDIT_CONSUMER_GROUP": unique_name("audit"),
        # Small batches, so that a kill lands between many appends and commits.
        "AUDIT_BATCH_MAX_RECORDS": "25",
        # The killed member's partitions move on after 6 s, the broker's minimum.
        "AUDIT_SESSION_TIMEOUT_MS": "6000",
    }
    log = tmp_path / "audit.log"
    # 2,000 events, and 500 of them published a second time (a producer's retry).
    await publish(kafka_bootstrap, events_topic, [*range(2000), *range(500)])

    first = AuditProcess(env, log)
    at_first_kill = await wait_for_count(audit_engine, 200)
    first.kill()
    await publish(kafka_bootstrap, events_topic, range(2000, 3000))  # while it is down
    second = AuditProcess(env, log)
    at_second_kill = await wait_for_count(audit_engine, at_first_kill + 500)
    second.kill()
    third = AuditProcess(env, log)
    try:
        await wait_for_count(audit_engine, 3000)
        await asyncio.sleep(1)  # anything left to store would show now
    finally:
        assert third.terminate() == 0, log.read_text()[-3000:]

    assert at_first_kill < at_second_kill < 3000, "both kills came mid-stream"
    ids = await stored_ids(audit_engine)
    assert len(ids) == 3000
    assert set(ids) == event_ids(range(3000))
    report = await verify_chain(audit_engine)
    assert report.intact, report.describe()
    verify = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "audit", "verify", env=env, cwd=ROOT, stdout=subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(verify.communicate(), 60)
    assert (verify.returncode, stdout) == (0, b"chain intact: 3000 records\n")


@asynccontextmanager
async def running_audit(settings: AuditSettings) -> AsyncIterator[AuditConsumer]:
    consumer = AuditConsumer(settings)
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        consumer.request_stop()
        await task
        await consumer.stop()


async def test_a_batch_stored_but_not_committed_is_recognised_when_delivered_again(
    kafka_bootstrap: str, database_url: str, audit_engine: AsyncEngine
) -> None:
    topic = unique_name("audit-events")
    await create_topics(kafka_bootstrap, topic, partitions=1)
    await publish(kafka_bootstrap, topic, range(100))
    # A consumer stored the first 60 and died before committing their offsets.
    await AuditTrail(audit_engine).append(
        [Delivery(topic, 0, offset, attempt_event_json(offset)) for offset in range(60)]
    )
    settings = AuditSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        audit_database_url=database_url,
        events_topic=topic,
        audit_consumer_group=unique_name("audit"),
    )
    results: list[AppendResult] = []
    async with running_audit(settings) as consumer:
        append = consumer.trail.append

        async def recording_append(deliveries: Sequence[Delivery]) -> AppendResult:
            results.append(await append(deliveries))
            return results[-1]

        consumer.trail.append = recording_append  # type: ignore[method-assign]
        await wait_for_count(audit_engine, 100)

    assert sum(result.duplicates for result in results) == 60
    assert sum(result.appended for result in results) == 40
    assert set(await stored_ids(audit_engine)) == event_ids(range(100))
    assert (await verify_chain(audit_engine)).intact


async def test_the_services_events_are_audited_without_the_otp(
    kafka_bootstrap: str, tmp_path: Path, database_url: str, audit_engine: AsyncEngine
) -> None:
    worker = worker_settings(kafka_bootstrap, tmp_path / "store.db")
    audit = AuditSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        audit_database_url=database_url,
        events_topic=worker.events_topic,
        audit_consumer_group=unique_name("audit"),
    )
    key = DeviceKey()
    async with (
        running_worker(worker),
        command_client(worker) as client,
        running_audit(audit),
    ):
        challenge_id, otp = await register(client, key)
        wrong = await client.send(
            VerifySignature(
                **client.header(), challenge_id=uuid.UUID(challenge_id), signature=key.sign("0")
            )
        )
        right = await client.send(
            VerifySignature(
                **client.header(), challenge_id=uuid.UUID(challenge_id), signature=key.sign(otp)
            )
        )
        await wait_for_count(audit_engine, 3)
    assert (wrong.outcome, right.outcome) == ("rejected", "ok")

    async with audit_engine.connect() as connection:
        records = (await connection.execute(select(AuditRecord).order_by(AuditRecord.seq))).all()
    assert [(r.event_type, r.subject) for r in records] == [
        ("mfa.device_binding.challenge_created", challenge_id),
        ("mfa.device_binding.signature_rejected", challenge_id),
        ("mfa.device_binding.signature_verified", challenge_id),
    ]
    assert all(otp not in record.event for record in records)
    assert json.loads(records[2].event)["data"]["attempt"] == 2
    assert (await verify_chain(audit_engine)).intact
