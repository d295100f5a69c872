"""Test harness: a worker on its own topics and database, and a client that talks to it
over Kafka the way the API does (commands out, replies and events in)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from harness.otp_keys import RUN_OTP_KEYS
from harness.topics import unique_name
from schemas.commands import COMMAND_ADAPTER, Command, command_key
from schemas.replies import Reply
from worker.app import Worker
from worker.settings import WorkerSettings


class ManualClock:
    """The worker's clock, moved by the test (for expiry)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def worker_settings(bootstrap: str, database: Path, **overrides: Any) -> WorkerSettings:
    prefix = unique_name("mfa")
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "database_url": f"sqlite+aiosqlite:///{database}",
        "consumer_group": f"{prefix}.workers",
        "commands_topic": f"{prefix}.commands",
        "events_topic": f"{prefix}.events",
        "otp_deliveries_topic": f"{prefix}.otp",
        "dead_letter_topic": f"{prefix}.commands.dlq",
        "replies_topic": f"{prefix}.replies",
        "topic_partitions": 2,
        "retry_backoff_seconds": 0.2,
        # A free port: tests may run beside `make run`, whose workers hold 8001 and up.
        "worker_http_port": 0,
        # A fresh database per test: the worker migrates it as it starts.
        "auto_migrate": True,
        # The run's key, which bench.seed seals with too.
        "otp_encryption_keys": RUN_OTP_KEYS,
    }
    values.update(overrides)
    return WorkerSettings(**values)


@dataclass
class TopicReader:
    """Everything published on one topic since the test began, as JSON with key/headers."""

    consumer: AIOKafkaConsumer
    records: list[dict[str, Any]] = field(default_factory=list)

    async def poll(self) -> None:
        batches = await self.consumer.getmany(timeout_ms=100)
        for partition in batches.values():
            for record in partition:
                self.records.append(
                    {
                        "key": record.key,
                        "headers": dict(record.headers),
                        "raw": record.value,
                        "value": _json_or_none(record.value),
                    }
                )

    async def wait_for(self, predicate: Any, *, count: int = 1) -> list[dict[str, Any]]:
        """The first ``count`` matching records; fails after 20 s without them."""
        found: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(20):
                while len(found) < count:
                    await self.poll()
                    found = [r for r in self.records if predicate(r)]
        except TimeoutError:
            raise AssertionError(f"{len(found)}/{count} matching records on the topic") from None
        return found[:count]


def _json_or_none(value: bytes | None) -> Any:
    try:
        return json.loads(value) if value is not None else None
    except ValueError:
        return None


async def start_reader(bootstrap: str, topic: str) -> TopicReader:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    return TopicReader(consumer)


@dataclass
class CommandClient:
    """Publishes commands and awaits their replies, as one API replica would."""

    settings: WorkerSettings
    producer: AIOKafkaProducer
    replies: TopicReader
    events: TopicReader
    otps: TopicReader
    dead_letters: TopicReader
    reply_to: str = "test-client"

    def header(self, client_id: str = "bank-1") -> dict[str, Any]:
        return {
            "command_id": uuid.uuid4(),
            "request_id": f"req-{uuid.uuid4().hex[:8]}",
            "client_id": client_id,
            "reply_to": self.reply_to,
            "issued_at": datetime.now(UTC),
        }

    async def send(self, command: Command) -> Reply:
        await self.producer.send_and_wait(
            self.settings.commands_topic,
            COMMAND_ADAPTER.dump_json(command),
            key=command_key(command),
        )
        [record] = await self.replies.wait_for(
            lambda r: r["value"] and r["value"]["command_id"] == str(command.command_id)
        )
        return Reply.model_validate(record["value"])

    async def send_raw(self, value: bytes, key: bytes | None = None) -> None:
        await self.producer.send_and_wait(self.settings.commands_topic, value, key=key)

    async def otp_for(self, challenge_id: str) -> str:
        [record] = await self.otps.wait_for(lambda r: r["value"]["challenge_id"] == challenge_id)
        otp: str = record["value"]["otp"]
        return otp

    async def events_of(self, challenge_id: str, *, count: int = 1) -> list[dict[str, Any]]:
        records = await self.events.wait_for(
            lambda r: r["value"]["subject"] == challenge_id, count=count
        )
        return [r["value"] for r in records]


@asynccontextmanager
async def running_worker(settings: WorkerSettings, **kwargs: Any) -> AsyncIterator[Worker]:
    worker = Worker(settings, **kwargs)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


@asynccontextmanager
async def command_client(settings: WorkerSettings) -> AsyncIterator[CommandClient]:
    bootstrap = settings.kafka_bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    readers = [
        await start_reader(bootstrap, topic)
        for topic in (
            settings.replies_topic,
            settings.events_topic,
            settings.otp_deliveries_topic,
            settings.dead_letter_topic,
        )
    ]
    replies, events, otps, dead_letters = readers
    try:
        yield CommandClient(settings, producer, replies, events, otps, dead_letters)
    finally:
        await producer.stop()
        for reader in readers:
            await reader.consumer.stop()


class DeviceKey:
    """The customer's device: a P-256 key that signs OTPs as a keystore would."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())

    @property
    def public_hex(self) -> str:
        point = self.private_key.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )
        return point.hex()

    def sign(self, otp: str) -> str:
        return self.private_key.sign(otp.encode("ascii"), ec.ECDSA(hashes.SHA256())).hex()

    def sign_text(self, text: str) -> str:
        """Sign a device challenge's ``string_to_sign``: its UTF-8 bytes (SPEC §8)."""
        return self.private_key.sign(text.encode("utf-8"), ec.ECDSA(hashes.SHA256())).hex()
