"""OTP digests at rest (SPEC §4, §9), on a real store (SQLite, and PostgreSQL marked
``postgres``): registration, the batched attempt path, unbinding and the expiry sweep, as
the worker wires them, with only Kafka replaced by a recording outbox.

- a sealed digest copied to another challenge does not open there: the attempt is refused
  (``challenge_locked``), counts nothing, binds nothing;
- rotation (the new key first, the old second) keeps pending challenges verifiable and
  seals new ones with the new kid; the old key removed, its challenges are refused cleanly;
- unbinding a pending device ends its challenge and drops its digest;
- the sweep expires pending challenges past their expiry and drops their digests;
- the worker refuses to start without its keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from schemas.commands import (
    Command,
    OpenDeviceChallenge,
    RegisterDevice,
    UnbindDevice,
    VerifySignature,
)
from schemas.devices import DeviceRegistration
from storage.engine import create_engine
from storage.migrations import upgrade
from tests.conftest import REPO_ROOT
from tests.support.worker import DeviceKey
from tests.worker.test_binding_recovery import FlakyOutbox
from worker.attempts.runs import AttemptRuns
from worker.attempts.store import attempt_store
from worker.attempts.verification import BatchVerifier
from worker.binding import BindingService
from worker.expiry import ExpirySweeper
from worker.migrations import WORKER_MIGRATIONS
from worker.otp_keyring import OtpKeyring, kid_of, new_key_text
from worker.store import Store
from worker.tables import ChallengeRow, DeviceChallengeRow

TTL = timedelta(minutes=5)
OLD, NEW = new_key_text("old"), new_key_text("new")


class Worker:
    """A worker's two paths on the store, with ``keyring``: attempts batched through the
    attempt store, every other command through BindingService."""

    def __init__(self, engine: AsyncEngine, database_url: str, keyring: OtpKeyring) -> None:
        self.outbox = FlakyOutbox()
        self.binding = BindingService(
            Store(engine), self.outbox, keyring=keyring, challenge_ttl=TTL, otp_sends_per_hour=50
        )
        self.attempts = attempt_store(database_url)
        self._runs = AttemptRuns(
            self.attempts,
            self.outbox,
            verifier=BatchVerifier(0),
            keyring=keyring,
            clock=lambda: datetime.now(UTC),
        )

    async def handle(self, command: Command) -> None:
        if isinstance(command, VerifySignature):
            await asyncio.gather(*await self._runs.handle([(command, None)]))
        else:
            await self.binding.handle(command)

    async def register(self, key: DeviceKey, person_id: str = "person-1") -> tuple[str, str]:
        """Register a device with ``key``; its challenge id and OTP."""
        command = RegisterDevice(
            **_header(),
            device_id=uuid.uuid4(),
            key_id=uuid.uuid4(),
            challenge_id=uuid.uuid4(),
            registration=DeviceRegistration(
                person_id=person_id, key_type="ecdsa-p256", key=key.public_hex
            ),
        )
        await self.handle(command)
        [delivery] = [d for d in self.outbox.otps if d.challenge_id == command.challenge_id]
        return str(command.challenge_id), delivery.otp

    async def attempt(self, challenge_id: str, signature: str) -> Any:
        await self.handle(
            VerifySignature(**_header(), challenge_id=uuid.UUID(challenge_id), signature=signature)
        )
        return self.outbox.replies[-1]


def _header() -> dict[str, Any]:
    return {
        "command_id": uuid.uuid4(),
        "request_id": f"req-{uuid.uuid4().hex[:8]}",
        "client_id": "bank-1",
        "reply_to": "api-1",
        "issued_at": datetime.now(UTC),
    }


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await upgrade(engine, WORKER_MIGRATIONS)
    yield engine
    await engine.dispose()


@pytest.fixture
async def workers(engine: AsyncEngine, database_url: str) -> AsyncIterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        await worker.attempts.close()


def _worker(workers: list[Worker], engine: AsyncEngine, url: str, keys: str) -> Worker:
    worker = Worker(engine, url, OtpKeyring.parse(keys))
    workers.append(worker)
    return worker


async def _challenge(engine: AsyncEngine, challenge_id: str) -> ChallengeRow:
    async with AsyncSession(engine) as session:
        row = await session.get(ChallengeRow, challenge_id)
        assert row is not None
        return row


async def test_a_digest_copied_to_another_challenge_is_refused_not_verified(
    engine: AsyncEngine, database_url: str, workers: list[Worker]
) -> None:
    worker = _worker(workers, engine, database_url, NEW)
    attacker, victim = DeviceKey(), DeviceKey()
    # The attacker knows the OTP of their own challenge, and can write to the database.
    own_challenge, own_otp = await worker.register(attacker, person_id="attacker")
    target, _ = await worker.register(victim, person_id="victim")
    sealed = (await _challenge(engine, own_challenge)).otp_digest
    async with AsyncSession(engine) as session, session.begin():
        await session.execute(
            update(ChallengeRow).where(ChallengeRow.id == target).values(otp_digest=sealed)
        )

    reply = await worker.attempt(target, victim.sign(own_otp))

    assert (reply.outcome, reply.reason) == ("rejected", "challenge_locked")
    event: Any = worker.outbox.events[-1]
    assert event["data"]["reason"] == "challenge_locked"
    row = await _challenge(engine, target)
    # Nothing counted, nothing bound; the stored value is left as it was.
    assert (row.status, row.failed_attempts, row.otp_digest) == ("pending", 0, sealed)
    # The attacker's own challenge still verifies with its own value.
    assert (await worker.attempt(own_challenge, attacker.sign(own_otp))).outcome == "ok"


async def test_rotation_keeps_pending_challenges_verifiable_and_seals_with_the_new_kid(
    engine: AsyncEngine, database_url: str, workers: list[Worker]
) -> None:
    before = _worker(workers, engine, database_url, OLD)
    key = DeviceKey()
    pending, otp = await before.register(key, person_id="before")
    sealed_before = (await _challenge(engine, pending)).otp_digest
    assert sealed_before is not None
    assert kid_of(sealed_before) == "old"

    rotated = _worker(workers, engine, database_url, f"{NEW},{OLD}")
    newer_key = DeviceKey()
    newer, newer_otp = await rotated.register(newer_key, person_id="after")

    newer_sealed = (await _challenge(engine, newer)).otp_digest
    assert newer_sealed is not None
    assert kid_of(newer_sealed) == "new"
    assert (await rotated.attempt(pending, key.sign(otp))).outcome == "ok"
    assert (await rotated.attempt(newer, newer_key.sign(newer_otp))).outcome == "ok"
    for challenge_id in (pending, newer):
        row = await _challenge(engine, challenge_id)
        assert (row.status, row.otp_digest) == ("verified", None)


async def test_the_old_key_removed_its_challenges_are_refused_cleanly(
    engine: AsyncEngine, database_url: str, workers: list[Worker]
) -> None:
    before = _worker(workers, engine, database_url, OLD)
    key = DeviceKey()
    challenge_id, otp = await before.register(key)
    # A failed attempt first: the digest stays sealed as it was through a write.
    assert (await before.attempt(challenge_id, DeviceKey().sign(otp))).reason == (
        "invalid_signature"
    )

    after = _worker(workers, engine, database_url, NEW)
    reply = await after.attempt(challenge_id, key.sign(otp))

    assert (reply.outcome, reply.reason) == ("rejected", "challenge_locked")
    row = await _challenge(engine, challenge_id)
    assert (row.status, row.failed_attempts) == ("pending", 1)
    assert row.otp_digest is not None
    assert kid_of(row.otp_digest) == "old"
    # The key back (an operator's mistake undone): the challenge verifies again.
    restored = _worker(workers, engine, database_url, f"{NEW},{OLD}")
    assert (await restored.attempt(challenge_id, key.sign(otp))).outcome == "ok"


async def test_the_store_never_holds_the_digest_in_clear(
    engine: AsyncEngine, database_url: str, workers: list[Worker]
) -> None:
    worker = _worker(workers, engine, database_url, NEW)
    key = DeviceKey()
    challenge_id, otp = await worker.register(key)
    await worker.attempt(challenge_id, DeviceKey().sign(otp))  # failed: a write, pending

    row = await _challenge(engine, challenge_id)
    digest = hashlib.sha256(otp.encode()).digest()
    assert row.otp_digest is not None
    assert digest not in row.otp_digest
    assert OtpKeyring.parse(NEW).open(challenge_id, row.otp_digest) == digest


async def test_unbinding_a_pending_device_ends_its_challenge(
    engine: AsyncEngine, database_url: str, workers: list[Worker]
) -> None:
    worker = _worker(workers, engine, database_url, NEW)
    key = DeviceKey()
    challenge_id, otp = await worker.register(key)
    device_id = (await _challenge(engine, challenge_id)).device_id

    await worker.handle(UnbindDevice(**_header(), device_id=uuid.UUID(device_id)))
    assert worker.outbox.replies[-1].outcome == "ok"

    row = await _challenge(engine, challenge_id)
    assert (row.status, row.otp_digest) == ("expired", None)
    assert row.decided_at is not None
    # The correct signature afterwards: the device is gone for the client (SPEC §3: 404).
    reply = await worker.attempt(challenge_id, key.sign(otp))
    assert (reply.outcome, reply.reason) == ("rejected", "not_found")


async def test_the_sweep_expires_pending_challenges_past_their_expiry(
    engine: AsyncEngine, database_url: str, workers: list[Worker]
) -> None:
    worker = _worker(workers, engine, database_url, NEW)
    due, _ = await worker.register(DeviceKey(), person_id="due")
    fresh, _ = await worker.register(DeviceKey(), person_id="fresh")
    spent_key = DeviceKey()
    spent, spent_otp = await worker.register(spent_key, person_id="spent")
    assert (await worker.attempt(spent, spent_key.sign(spent_otp))).outcome == "ok"
    now = datetime.now(UTC)
    async with AsyncSession(engine) as session, session.begin():
        await session.execute(
            update(ChallengeRow)
            .where(ChallengeRow.id.in_([due, spent]))
            .values(expires_at=now - timedelta(seconds=1))
        )

    swept = await ExpirySweeper(engine, clock=lambda: now).sweep()

    assert swept == 1
    due_row, fresh_row, spent_row = [await _challenge(engine, c) for c in (due, fresh, spent)]
    assert (due_row.status, due_row.otp_digest, due_row.decided_at) == ("expired", None, now)
    assert fresh_row.status == "pending"
    assert fresh_row.otp_digest is not None
    assert spent_row.status == "verified"  # decided before: left alone
    assert await ExpirySweeper(engine, clock=lambda: now).sweep() == 0


async def test_the_sweep_expires_device_challenges_too(
    engine: AsyncEngine, database_url: str, workers: list[Worker]
) -> None:
    worker = _worker(workers, engine, database_url, NEW)
    key = DeviceKey()
    binding, otp = await worker.register(key, person_id="signer")
    assert (await worker.attempt(binding, key.sign(otp))).outcome == "ok"
    device_id = (await _challenge(engine, binding)).device_id
    opened = OpenDeviceChallenge(
        **_header(), challenge_id=uuid.uuid4(), device_id=uuid.UUID(device_id)
    )
    await worker.handle(opened)
    assert worker.outbox.replies[-1].outcome == "ok"
    later = datetime.now(UTC) + TTL + timedelta(seconds=1)

    assert await ExpirySweeper(engine, clock=lambda: later).sweep() == 1

    async with AsyncSession(engine) as session:
        row = await session.get(DeviceChallengeRow, str(opened.challenge_id))
    assert row is not None
    assert (row.status, row.message_digest, row.decided_at) == ("expired", None, later)


def test_the_worker_refuses_to_start_without_its_keys(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OTP_ENCRYPTION_KEYS"}
    env |= {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # refused before any broker is needed
        "PYTHONPATH": str(REPO_ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "worker"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "OTP_ENCRYPTION_KEYS is not set" in done.stderr
    assert "Traceback" not in done.stderr
