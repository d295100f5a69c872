"""Signature attempts decided under real concurrency, on SQLite and on PostgreSQL.

Several workers may decide attempts on one challenge at once (a rebalance hands commands to
two of them; every worker process shares the database), and several of a person's
challenges may bind at once on different partitions. Each batch of attempts decides under
the store's locks, so whatever the interleaving, the counts add up: one binding per
challenge, never more than five failures, never more bound devices than the limit.

Each racer is an attempt store of its own (its own connection, as another worker process
would have) running the real decision.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from harness.postgres import fresh_database
from schemas.challenges import MAX_FAILED_ATTEMPTS, ChallengeStatus
from schemas.commands import VerifySignature
from schemas.devices import MAX_BOUND_DEVICES_PER_PERSON, DeviceStatus, KeyPurpose
from storage.engine import create_engine
from storage.migrations import prepare_database, upgrade
from tests.support.worker import DeviceKey
from worker.attempts.reads import BatchReads
from worker.attempts.store import attempt_store
from worker.decisions.attempts import (
    AttemptDecisions,
    AttemptOutcome,
    AttemptState,
    decide_attempts,
)
from worker.decisions.registrations import binding_key
from worker.keys import PublicKeys
from worker.migrations import WORKER_MIGRATIONS
from worker.otp_delivery import otp_digest
from worker.signatures import signature_check
from worker.store import Binding, Store
from worker.tables import AttemptRow, ChallengeRow, DeviceRow

RACERS = 20
OTP = "123456"


class Racer:
    """One worker's attempt store on the shared database, for one batch."""

    def __init__(self, database_url: str, answers: list[AttemptOutcome]) -> None:
        self._database_url = database_url
        self._answers = answers

    async def verify_all(self, commands: list[VerifySignature]) -> None:
        store = attempt_store(self._database_url)
        check = signature_check(PublicKeys())

        async def decide(state: AttemptState) -> AttemptDecisions:
            # Other racers run meanwhile (their transactions wait for this one's locks).
            await asyncio.sleep(0)
            return decide_attempts(state, commands, now=datetime.now(UTC), signature_verifies=check)

        try:
            decisions = await store.submit(BatchReads.of(commands), decide)
        finally:
            await store.close()
        self._answers.extend(decisions.outcomes)


@dataclass
class Db:
    url: str
    engine: AsyncEngine
    store: Store
    answers: list[AttemptOutcome] = field(default_factory=list)

    def worker(self) -> Racer:
        """A worker of its own on the shared store, as another process would be."""
        return Racer(self.url, self.answers)

    async def attempts(self, challenge_id: str) -> list[AttemptRow]:
        async with AsyncSession(self.engine) as session:
            rows = await session.scalars(
                select(AttemptRow).where(AttemptRow.challenge_id == challenge_id)
            )
            return list(rows)

    async def attempt_count(self) -> int:
        async with self.engine.connect() as connection:
            return int(await connection.scalar(select(func.count()).select_from(AttemptRow)) or 0)

    async def binding(self, challenge_id: str) -> Binding:
        binding = await self.store.find_binding(challenge_id)
        assert binding is not None
        return binding

    def outcomes(self) -> Counter[str]:
        return Counter(a.reason or ("ok" if a.verified else "rejected") for a in self.answers)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Db]:
    engine = create_engine(database_url)
    await upgrade(engine, WORKER_MIGRATIONS)
    try:
        yield Db(database_url, engine, Store(engine))
    finally:
        await engine.dispose()


async def registered(store: Store, person_id: str = "person-1") -> tuple[Binding, DeviceKey]:
    """A pending device and its challenge for OTP, stored as ``BindingService.register``
    does, with the device's key."""
    now = datetime.now(UTC)
    key = DeviceKey()
    device = DeviceRow(
        id=str(uuid.uuid4()),
        key_id=str(uuid.uuid4()),
        client_id="bank-1",
        person_id=person_id,
        name=None,
        key_purpose=KeyPurpose.UNRESTRICTED.value,
        public_key=key.public_hex,
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
        otp_digest=otp_digest(OTP),
        otp_delivered=True,
        failed_attempts=0,
        created_at=now,
        expires_at=now + timedelta(seconds=300),
    )
    refused = await store.register(
        device,
        challenge,
        binding_key(device),
        max_bound=MAX_BOUND_DEVICES_PER_PERSON,
        # These tests race many challenges of one person: the person's caps are not theirs.
        otp_sends_per_hour=1_000,
        max_pending=1_000,
    )
    assert refused is None
    binding = await store.find_binding(challenge.id)
    assert binding is not None
    return binding, key


def attempt(binding: Binding, signature: str) -> VerifySignature:
    return VerifySignature(
        command_id=uuid.uuid4(),
        request_id="req-1",
        client_id="bank-1",
        reply_to="api-1",
        issued_at=datetime.now(UTC),
        challenge_id=uuid.UUID(binding.challenge.id),
        signature=signature,
    )


def distinct(key: DeviceKey, count: int) -> list[str]:
    """Distinct valid signatures of the OTP (ECDSA draws a new nonce each time)."""
    signatures: set[str] = set()
    while len(signatures) < count:
        signatures.add(key.sign(OTP))
    return sorted(signatures)


async def race(db: Db, commands: list[VerifySignature]) -> None:
    """Each command in a batch of its own, all at once, as that many workers would."""
    await asyncio.gather(*(db.worker().verify_all([command]) for command in commands))


async def test_of_concurrent_verifications_exactly_one_binds(db: Db) -> None:
    binding, key = await registered(db.store)

    await race(db, [attempt(binding, s) for s in distinct(key, RACERS)])

    assert db.outcomes() == {"ok": 1, "challenge_already_verified": RACERS - 1}
    after = await db.binding(binding.challenge.id)
    assert after.challenge.status == ChallengeStatus.VERIFIED
    assert after.challenge.otp_digest is None
    assert after.device.status == DeviceStatus.BOUND
    assert after.device.bound_at == after.challenge.decided_at
    [stored] = await db.attempts(binding.challenge.id)
    assert stored.outcome == "verified"


async def test_concurrent_failures_are_each_counted_once_up_to_the_lock(db: Db) -> None:
    binding, _ = await registered(db.store)
    impostor = DeviceKey()

    await race(db, [attempt(binding, s) for s in distinct(impostor, RACERS // 2)])

    remaining = sorted(r.attempts_remaining for r in db.answers if r.attempts_remaining)
    assert db.outcomes() == {
        "invalid_signature": MAX_FAILED_ATTEMPTS,
        "challenge_locked": RACERS // 2 - MAX_FAILED_ATTEMPTS,
    }
    # Each failure saw the one before it: 4, 3, 2, 1 attempts left (and 0, not listed).
    assert remaining == [1, 2, 3, 4]
    after = await db.binding(binding.challenge.id)
    assert (after.challenge.status, after.challenge.failed_attempts) == ("locked", 5)
    assert after.challenge.otp_digest is None
    stored = await db.attempts(binding.challenge.id)
    assert sorted(a.number for a in stored) == [1, 2, 3, 4, 5]


async def test_failures_and_verifications_racing_add_up(db: Db) -> None:
    binding, key = await registered(db.store)
    impostor = DeviceKey()
    commands = [attempt(binding, s) for s in distinct(key, RACERS // 2)]
    commands += [attempt(binding, s) for s in distinct(impostor, RACERS // 2)]

    await race(db, commands)

    after = await db.binding(binding.challenge.id)
    stored = await db.attempts(binding.challenge.id)
    outcomes = db.outcomes()
    failures = outcomes["invalid_signature"]
    assert failures == after.challenge.failed_attempts <= MAX_FAILED_ATTEMPTS
    assert outcomes["ok"] <= 1
    assert len(stored) == failures + outcomes["ok"]
    if outcomes["ok"]:
        assert (after.challenge.status, after.device.status) == ("verified", "bound")
    else:
        assert (after.challenge.status, after.device.status) == ("locked", "pending")


async def test_a_signature_already_counted_is_not_counted_again(db: Db) -> None:
    binding, _ = await registered(db.store)
    [signature] = distinct(DeviceKey(), 1)

    # The same wrong signature in several commands (a client's retries under new keys),
    # some in one batch, some racing in batches of their own.
    await db.worker().verify_all([attempt(binding, signature) for _ in range(3)])
    await race(db, [attempt(binding, signature) for _ in range(5)])

    after = await db.binding(binding.challenge.id)
    assert (after.challenge.status, after.challenge.failed_attempts) == ("pending", 1)
    assert await db.attempt_count() == 1
    # Every one answered as the first: one failure, four attempts left.
    assert {(r.reason, r.attempts_remaining) for r in db.answers} == {("invalid_signature", 4)}


@pytest.mark.postgres
async def test_workers_starting_together_on_postgres_create_the_tables_once(
    postgres_url: str, tmp_path: Path
) -> None:
    # PostgreSQL only: on SQLite, connections opening a new file together can fail to switch
    # it to WAL (SQLITE_BUSY without waiting), a separate matter from creating the tables.
    async with fresh_database(postgres_url, tmp_path) as url:
        engines = [create_engine(url) for _ in range(4)]
        try:
            await asyncio.gather(
                *(prepare_database(engine, WORKER_MIGRATIONS, migrate=True) for engine in engines)
            )
            assert await registered(Store(engines[0]))
        finally:
            for engine in engines:
                await engine.dispose()


async def test_two_devices_binding_at_once_cannot_pass_the_limit_together(db: Db) -> None:
    for _ in range(MAX_BOUND_DEVICES_PER_PERSON - 1):
        bound, key = await registered(db.store)
        await db.worker().verify_all([attempt(bound, key.sign(OTP))])
    assert db.outcomes() == {"ok": MAX_BOUND_DEVICES_PER_PERSON - 1}
    db.answers.clear()
    racers = [await registered(db.store) for _ in range(8)]

    # Half race in batches of their own, half share one batch.
    commands = [attempt(binding, key.sign(OTP)) for binding, key in racers]
    await asyncio.gather(race(db, commands[:4]), db.worker().verify_all(commands[4:]))

    assert db.outcomes() == {"ok": 1, "device_limit_reached": 7}
    states = [await db.binding(b.challenge.id) for b, _ in racers]
    assert sorted(s.device.status for s in states) == ["bound"] + ["pending"] * 7
    assert sorted(s.challenge.status for s in states) == ["pending"] * 7 + ["verified"]


async def test_a_device_unbound_before_its_attempt_is_not_bound(db: Db) -> None:
    binding, key = await registered(db.store)
    now = datetime.now(UTC)
    assert await db.store.unbind(binding.device.id, command_id="c", request_id="r", now=now)

    await db.worker().verify_all([attempt(binding, key.sign(OTP))])

    assert db.outcomes() == {"not_found": 1}
    after = await db.binding(binding.challenge.id)
    # Unbinding ended the pending challenge and dropped its digest (SPEC §4).
    assert (after.challenge.status, after.device.status) == ("expired", "unbound")
    assert after.challenge.otp_digest is None
    assert await db.attempt_count() == 0


async def test_database_errors_do_not_carry_statement_values(db: Db) -> None:
    now = datetime.now(UTC)
    binding, _ = await registered(db.store)
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
