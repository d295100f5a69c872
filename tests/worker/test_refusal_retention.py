"""Refusals past their retention are deleted, and only those; wrong key-addition signatures
count towards the person's run once per command, however often it is delivered (SQLite and
PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from schemas.reasons import Reason
from storage.engine import create_engine
from storage.migrations import upgrade
from worker.decisions.persons import MAX_CONSECUTIVE_FAILURES
from worker.migrations import WORKER_MIGRATIONS
from worker.people import person_state
from worker.retention import SLICE, RefusalSweeper
from worker.signing_store import SigningStore
from worker.tables import DeviceRow, RefusalRow

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=7)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await upgrade(engine, WORKER_MIGRATIONS)
    try:
        yield engine
    finally:
        await engine.dispose()


async def refusals(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(RefusalRow)) or 0)


async def test_only_refusals_past_their_retention_are_deleted(engine: AsyncEngine) -> None:
    old = [NOW - RETENTION - timedelta(minutes=n + 1) for n in range(SLICE + 5)]
    recent = [NOW - RETENTION + timedelta(minutes=1), NOW]
    async with engine.begin() as connection:
        await connection.execute(
            insert(RefusalRow),
            [
                {
                    "command_id": str(uuid.uuid4()),
                    "challenge_id": str(uuid.uuid4()),
                    "reason": Reason.NOT_FOUND.value,
                    "event_json": "{}",
                    "decided_at": moment,
                }
                for moment in old + recent
            ],
        )
    sweeper = RefusalSweeper(engine, retention=RETENTION)
    # More than a slice: several transactions, all of the old ones.
    assert await sweeper.sweep(NOW) == len(old)
    assert await refusals(engine) == len(recent)
    assert await sweeper.sweep(NOW) == 0


def bound_device() -> DeviceRow:
    return DeviceRow(
        id=str(uuid.uuid4()),
        key_id=str(uuid.uuid4()),
        client_id="bank-1",
        person_id="person-keys",
        key_purpose="unrestricted",
        public_key="04" + "ab" * 64,
        status="bound",
        created_at=NOW,
        created_by_command=str(uuid.uuid4()),
        created_by_request="r",
    )


async def test_a_wrong_key_addition_counts_once_per_command(engine: AsyncEngine) -> None:
    store = SigningStore(engine)
    device = bound_device()

    def lock_event(failures: int, at: datetime, until: datetime) -> str:
        return f"locked after {failures}"

    async def count(command_id: str) -> str | None:
        return await store.key_failures.count(
            device,
            command_id=command_id,
            now=NOW,
            lock_for=timedelta(minutes=15),
            lock_event=lock_event,
        )

    commands = [str(uuid.uuid4()) for _ in range(MAX_CONSECUTIVE_FAILURES)]
    for command_id in commands[:-1]:
        assert await count(command_id) is None
        assert await count(command_id) is None  # redelivered: not counted again
    assert await count(commands[-1]) == "locked after 5"
    # The locking command, redelivered, announces the same lock again; nothing more counts.
    assert await count(commands[-1]) == "locked after 5"
    person = await store.person("bank-1", "person-keys")
    assert person is not None
    assert (person.consecutive_failures, person.locked_until) == (0, NOW + timedelta(minutes=15))

    await store.key_failures.reset("bank-1", "person-keys")  # nothing to reset: no failures
    async with engine.connect() as connection, AsyncSession(connection) as session:
        assert (await person_state(session, "bank-1", "person-keys")) == person
