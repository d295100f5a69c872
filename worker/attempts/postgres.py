"""The attempt store on PostgreSQL: asyncpg, arrays in and out, one statement per step.

A batch takes these round trips, whatever its size (the statements are
:mod:`worker.attempts.postgres_statements`): ``BEGIN``; the challenges of both kinds with
their devices and signing keys, locked; the people's advisory locks; the attempts,
refusals and bound-device counts, in one statement; all writes in one statement
(data-modifying CTEs over ``unnest``ed arrays); ``COMMIT``. Between the reads and the
writes the batch's signatures are verified beside the event loop
(:mod:`worker.attempts.verification`).
"""

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from schemas.challenges import ChallengeStatus
from schemas.devices import DeviceStatus, KeyPurpose
from schemas.reasons import Reason
from storage.engine import asyncpg_dsn
from worker.attempts import postgres_statements as sql
from worker.attempts.reads import BatchReads
from worker.attempts.transactions import Decide, TransactionQueue
from worker.attempts.verification import PendingKey
from worker.decisions.attempts import AttemptDecisions, AttemptState
from worker.state import (
    ChallengeChange,
    ChallengeKind,
    ChallengeState,
    DeviceState,
    NewAttempt,
    PersonState,
    StoredAttempt,
    StoredRefusal,
)


class PostgresAttemptStore:
    """An :class:`~worker.attempts.store.AttemptStore` on the PostgreSQL at ``database_url``:
    one transaction at a time, in the order queued, on one connection."""

    def __init__(self, database_url: str) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._queue = TransactionQueue()

    async def _connections(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                # One transaction at a time per worker process: a second connection is spare.
                self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=2)
            return self._pool

    def submit(self, reads: BatchReads, decide: Decide) -> asyncio.Future[AttemptDecisions]:
        return self._queue.submit(lambda: self._run(reads, decide))

    def resume(self) -> None:
        self._queue.resume()

    async def pending_keys(self, reads: BatchReads) -> dict[str, PendingKey]:
        pool = await self._connections()
        rows = await pool.fetch(sql.READ_PENDING_KEYS, reads.binding, reads.device)
        return {row[0]: PendingKey(row[1], row[2], row[3], ChallengeKind(row[4])) for row in rows}

    async def _run(self, reads: BatchReads, decide: Decide) -> AttemptDecisions:
        pool = await self._connections()
        async with pool.acquire() as connection, connection.transaction():
            state = await read_state(connection, reads)
            decisions = await decide(state)
            await write_decisions(connection, decisions)
        return decisions

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


async def read_state(connection: Any, reads: BatchReads) -> AttemptState:
    challenges: dict[str, ChallengeState] = {}
    for kind, statement, ids in (
        (ChallengeKind.BINDING, sql.READ_CHALLENGES, reads.binding),
        (ChallengeKind.DEVICE, sql.READ_DEVICE_CHALLENGES, reads.device),
    ):
        if ids:
            challenges.update(_challenges(kind, await connection.fetch(statement, ids)))
    # Every person of the batch, one at a time: their failures are counted here (SPEC §9),
    # and for binding their bound devices (two batches could each see four and make six).
    people = sorted({c.device.owner for c in challenges.values()})
    if people:
        await connection.execute(
            sql.LOCK_PEOPLE, [f"{client}/{person}" for client, person in people]
        )
    # Only binding counts towards the limit of bound devices.
    owners = sorted(
        {c.device.owner for c in challenges.values() if c.kind is ChallengeKind.BINDING}
    )
    attempts: dict[tuple[str, str], StoredAttempt] = {}
    refusals: dict[str, StoredRefusal] = {}
    bound: dict[tuple[str, str], int] = {}
    persons: dict[tuple[str, str], PersonState] = {}
    repeats: dict[tuple[str, str, str], StoredRefusal] = {}
    rows = await connection.fetch(
        sql.READ_DECIDED,
        reads.binding,
        reads.device,
        reads.commands,
        [client for client, _ in owners],
        [person for _, person in owners],
        [client for client, _ in people],
        [person for _, person in people],
        *(list(column) for column in zip(*reads.requests, strict=True))
        if reads.requests
        else ([], [], []),
    )
    for kind, first, second, third, number, event_json, moment, client in rows:
        if kind == "a":
            attempts[(first, second)] = StoredAttempt(
                verified=third == "verified", number=number, event_json=event_json
            )
        elif kind == "r":
            refusals[second] = StoredRefusal(
                reason=Reason(third), challenge_id=first, event_json=event_json
            )
        elif kind == "q":
            repeats[(first, second, client)] = StoredRefusal(
                reason=Reason(third), challenge_id=first, event_json=event_json
            )
        elif kind == "p":
            persons[(first, second)] = PersonState(number, moment, third, event_json)
        else:
            bound[(first, second)] = number
    return AttemptState(
        challenges=challenges,
        attempts=attempts,
        refusals=refusals,
        bound_devices=bound,
        people=persons,
        repeats=repeats,
    )


def _challenges(kind: ChallengeKind, rows: Sequence[Any]) -> dict[str, ChallengeState]:
    challenges: dict[str, ChallengeState] = {}
    for row in rows:
        device = DeviceState(
            id=row[5],
            key_id=row[6],
            client_id=row[7],
            person_id=row[8],
            public_key=row[9],
            status=DeviceStatus(row[10]),
            key_purpose=KeyPurpose(row[11]),
        )
        challenges[row[0]] = ChallengeState(
            id=row[0],
            device=device,
            status=ChallengeStatus(row[1]),
            failed_attempts=row[2],
            expires_at=row[3],
            digest=row[4],
            kind=kind,
        )
    return challenges


async def write_decisions(connection: Any, decisions: AttemptDecisions) -> None:
    changes = list(decisions.challenges.values())
    attempts = decisions.attempts
    refusals = decisions.refusals
    people = list(decisions.people.values())
    await connection.fetchrow(
        sql.WRITE,
        *_changes([c for c in changes if c.kind is ChallengeKind.BINDING]),
        *_changes([c for c in changes if c.kind is ChallengeKind.DEVICE]),
        [bound.device_id for bound in decisions.bound],
        [bound.bound_at for bound in decisions.bound],
        [used.key_id for used in decisions.keys_used],
        [used.used_at for used in decisions.keys_used],
        *_attempts([a for a in attempts if a.kind is ChallengeKind.BINDING]),
        *_attempts([a for a in attempts if a.kind is ChallengeKind.DEVICE]),
        [refusal.command_id for refusal in refusals],
        [refusal.challenge_id for refusal in refusals],
        [refusal.reason.value for refusal in refusals],
        [refusal.event_json for refusal in refusals],
        [refusal.decided_at for refusal in refusals],
        [refusal.signature for refusal in refusals],
        [refusal.client_id for refusal in refusals],
        [change.client_id for change in people],
        [change.person_id for change in people],
        [change.state.consecutive_failures for change in people],
        [change.state.locked_until for change in people],
        [change.state.locked_by for change in people],
        [change.state.lock_event_json for change in people],
    )


def _changes(changes: Sequence[ChallengeChange]) -> list[list[Any]]:
    return [
        [change.id for change in changes],
        [change.status.value for change in changes],
        [change.failed_attempts for change in changes],
        [change.digest is not None for change in changes],
        [change.decided_at for change in changes],
    ]


def _attempts(attempts: Sequence[NewAttempt]) -> list[list[Any]]:
    return [
        [attempt.challenge_id for attempt in attempts],
        [attempt.signature for attempt in attempts],
        [attempt.outcome for attempt in attempts],
        [attempt.number for attempt in attempts],
        [attempt.event_json for attempt in attempts],
        [attempt.decided_at for attempt in attempts],
    ]
