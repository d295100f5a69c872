"""The store's guarded transitions under real concurrency, on SQLite and on PostgreSQL.

Several workers may decide attempts on one challenge at once (a rebalance hands a command to
two of them; every worker process shares the database), each from what it read before. Of
those that read the same state, exactly one transition may happen.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from schemas.challenges import MAX_FAILED_ATTEMPTS, ChallengeStatus
from schemas.devices import MAX_BOUND_DEVICES_PER_PERSON, DeviceStatus, KeyPurpose
from tests.integration.stack import DeviceKey
from tests.postgres import fresh_database
from worker.binding import otp_digest
from worker.database import create_engine, prepare_database, upgrade
from worker.errors import DeviceLimitReached
from worker.store import Binding, Store
from worker.tables import AttemptRow, ChallengeRow, DeviceRow

RACERS = 20


@dataclass
class Db:
    engine: AsyncEngine
    store: Store

    async def attempts(self, challenge_id: str) -> list[AttemptRow]:
        async with AsyncSession(self.engine) as session:
            rows = await session.scalars(
                select(AttemptRow).where(AttemptRow.challenge_id == challenge_id)
            )
            return list(rows)

    async def attempt_count(self) -> int:
        async with self.engine.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(AttemptRow)) or 0)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Db]:
    engine = create_engine(database_url)
    await upgrade(engine)
    try:
        yield Db(engine, Store(engine))
    finally:
        await engine.dispose()


async def registered(store: Store, now: datetime) -> Binding:
    """A pending device and its challenge, stored as ``BindingService.register`` does."""
    device = DeviceRow(
        id=str(uuid.uuid4()),
        key_id=str(uuid.uuid4()),
        client_id="bank-1",
        person_id="person-1",
        name=None,
        key_purpose=KeyPurpose.UNRESTRICTED.value,
        public_key=DeviceKey().public_hex,
        status=DeviceStatus.PENDING.value,
        device_data=None,
        created_at=now,
        created_by_command=str(uuid.uuid4()),
        created_by_request="req-1",
    )
    challenge = ChallengeRow(
        id=str(uuid.uuid4()),
        device_id=device.id,
        status=ChallengeStatus.PENDING.value,
        otp_digest=otp_digest("123456"),
        otp_delivered=False,
        failed_attempts=0,
        created_at=now,
        expires_at=now + timedelta(seconds=300),
    )
    assert await store.register(device, challenge, max_bound=MAX_BOUND_DEVICES_PER_PERSON)
    binding = await store.find_binding(challenge.id)
    assert binding is not None
    return binding


def attempt(binding: Binding, signature: str, now: datetime, outcome: str) -> AttemptRow:
    """An attempt row as ``BindingService._attempt_row`` builds it (the first attempt)."""
    return AttemptRow(
        challenge_id=binding.challenge.id,
        signature=signature,
        outcome=outcome,
        number=1,
        event_json=f'{{"signature": "{signature}"}}',
        decided_at=now,
    )


def signatures(count: int) -> list[str]:
    return [f"{n:02x}" * 72 for n in range(count)]  # 144 hex digits, the longest there is


async def test_of_concurrent_verifications_exactly_one_binds(db: Db) -> None:
    now = datetime.now(UTC)
    binding = await registered(db.store, now)

    results = await asyncio.gather(
        *(
            db.store.record_verified(
                binding, attempt(binding, signature, now, "verified"), seen_failures=0
            )
            for signature in signatures(RACERS)
        )
    )

    assert results.count(True) == 1
    after = await db.store.find_binding(binding.challenge.id)
    assert after is not None
    assert after.challenge.status == ChallengeStatus.VERIFIED
    assert after.challenge.otp_digest is None
    assert after.challenge.decided_at == now
    assert after.device.status == DeviceStatus.BOUND
    assert after.device.bound_at == now
    [stored] = await db.attempts(binding.challenge.id)
    assert stored.signature == signatures(RACERS)[results.index(True)]
    assert stored.outcome == "verified"


async def test_of_concurrent_failures_seen_at_the_same_count_exactly_one_counts(db: Db) -> None:
    now = datetime.now(UTC)
    binding = await registered(db.store, now)

    results = await asyncio.gather(
        *(
            db.store.record_failed(
                binding,
                attempt(binding, signature, now, "rejected"),
                seen_failures=0,
                max_failures=MAX_FAILED_ATTEMPTS,
            )
            for signature in signatures(RACERS // 2)
        )
    )

    assert results.count(True) == 1
    after = await db.store.find_binding(binding.challenge.id)
    assert after is not None
    assert after.challenge.failed_attempts == 1
    assert after.challenge.status == ChallengeStatus.PENDING
    assert after.challenge.otp_digest == otp_digest("123456")
    assert after.device.status == DeviceStatus.PENDING
    assert [a.outcome for a in await db.attempts(binding.challenge.id)] == ["rejected"]


async def test_a_failure_and_a_verification_racing_cannot_both_happen(db: Db) -> None:
    now = datetime.now(UTC)
    binding = await registered(db.store, now)
    good, bad = signatures(RACERS)[: RACERS // 2], signatures(RACERS)[RACERS // 2 :]

    verified, failed = await asyncio.gather(
        asyncio.gather(
            *(
                db.store.record_verified(
                    binding, attempt(binding, signature, now, "verified"), seen_failures=0
                )
                for signature in good
            )
        ),
        asyncio.gather(
            *(
                db.store.record_failed(
                    binding,
                    attempt(binding, signature, now, "rejected"),
                    seen_failures=0,
                    max_failures=MAX_FAILED_ATTEMPTS,
                )
                for signature in bad
            )
        ),
    )

    assert verified.count(True) + failed.count(True) == 1
    after = await db.store.find_binding(binding.challenge.id)
    assert after is not None
    [stored] = await db.attempts(binding.challenge.id)
    if True in verified:
        assert (after.challenge.status, after.challenge.failed_attempts) == ("verified", 0)
        assert (after.device.status, stored.outcome) == ("bound", "verified")
    else:
        assert (after.challenge.status, after.challenge.failed_attempts) == ("pending", 1)
        assert (after.device.status, stored.outcome) == ("pending", "rejected")


async def test_a_signature_already_counted_is_not_counted_again(db: Db) -> None:
    now = datetime.now(UTC)
    binding = await registered(db.store, now)
    [signature] = signatures(1)

    first = attempt(binding, signature, now, "rejected")
    assert await db.store.record_failed(
        binding, first, seen_failures=0, max_failures=MAX_FAILED_ATTEMPTS
    )
    # Another worker, having read the new count but not the attempt, stores it again: the
    # unique (challenge, signature) constraint undoes its whole transaction, count included.
    again = attempt(binding, signature, now, "rejected")
    assert not await db.store.record_failed(
        binding, again, seen_failures=1, max_failures=MAX_FAILED_ATTEMPTS
    )
    assert not await db.store.record_verified(
        binding, attempt(binding, signature, now, "verified"), seen_failures=1
    )

    after = await db.store.find_binding(binding.challenge.id)
    assert after is not None
    assert (after.challenge.status, after.challenge.failed_attempts) == ("pending", 1)
    assert after.device.status == DeviceStatus.PENDING
    assert await db.attempt_count() == 1


@pytest.mark.postgres
async def test_workers_starting_together_on_postgres_create_the_tables_once(
    postgres_url: str, tmp_path: Path
) -> None:
    # PostgreSQL only: on SQLite, connections opening a new file together can fail to switch
    # it to WAL (SQLITE_BUSY without waiting), a separate matter from creating the tables.
    async with fresh_database(postgres_url, tmp_path) as url:
        engines = [create_engine(url) for _ in range(4)]
        try:
            await asyncio.gather(*(prepare_database(engine, migrate=True) for engine in engines))
            assert await registered(Store(engines[0]), datetime.now(UTC))
        finally:
            for engine in engines:
                await engine.dispose()


async def test_two_devices_binding_at_once_cannot_pass_the_limit_together(db: Db) -> None:
    now = datetime.now(UTC)
    for _ in range(MAX_BOUND_DEVICES_PER_PERSON - 1):
        bound = await registered(db.store, now)
        assert await db.store.record_verified(
            bound, attempt(bound, "aa" * 70, now, "verified"), seen_failures=0
        )
    racers = [await registered(db.store, now) for _ in range(8)]

    outcomes = await asyncio.gather(
        *(
            db.store.record_verified(
                binding, attempt(binding, "bb" * 70, now, "verified"), seen_failures=0
            )
            for binding in racers
        ),
        return_exceptions=True,
    )

    assert outcomes.count(True) == 1
    assert sum(isinstance(o, DeviceLimitReached) for o in outcomes) == len(racers) - 1
    states = [await db.store.find_binding(b.challenge.id) for b in racers]
    assert sorted(s.device.status for s in states if s) == ["bound"] + ["pending"] * 7
    assert sorted(s.challenge.status for s in states if s) == ["pending"] * 7 + ["verified"]


async def test_database_errors_do_not_carry_statement_values(db: Db) -> None:
    now = datetime.now(UTC)
    binding = await registered(db.store, now)
    digest = otp_digest("123456")
    duplicate = ChallengeRow(
        id=binding.challenge.id,  # the primary key again: the insert must fail
        device_id=str(uuid.uuid4()),
        status=ChallengeStatus.PENDING.value,
        otp_digest=digest,
        otp_delivered=False,
        failed_attempts=0,
        created_at=now,
        expires_at=now,
    )
    async with AsyncSession(db.engine) as session:
        session.add(duplicate)
        with pytest.raises(IntegrityError) as raised:
            await session.commit()
    message = str(raised.value)
    assert "parameters hidden" in message
    assert digest.hex() not in message
    assert repr(digest)[2:20] not in message


async def test_a_device_unbound_after_it_was_read_is_not_bound(db: Db) -> None:
    now = datetime.now(UTC)
    binding = await registered(db.store, now)
    assert await db.store.unbind(binding.device.id, command_id="c", request_id="r", now=now)

    stored = await db.store.record_verified(
        binding, attempt(binding, "cc" * 70, now, "verified"), seen_failures=0
    )

    assert not stored
    after = await db.store.find_binding(binding.challenge.id)
    assert after is not None
    assert (after.challenge.status, after.device.status) == ("pending", "unbound")
    assert await db.attempt_count() == 0
