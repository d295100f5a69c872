"""The attempt store on PostgreSQL: asyncpg, arrays in and out, one statement per step.

A batch takes these round trips, whatever its size: ``BEGIN``; the challenges with their
devices, locked; the people's advisory locks; the attempts, refusals and bound-device
counts, in one statement; all writes in one statement (data-modifying CTEs over
``unnest``ed arrays); ``COMMIT``. Between the reads and the writes the batch's signatures
are verified beside the event loop (:mod:`worker.attempts.verification`).
"""

import asyncio
from collections.abc import Collection
from typing import Any

import asyncpg

from schemas.challenges import ChallengeStatus
from schemas.devices import DeviceStatus
from schemas.reasons import Reason
from storage.engine import asyncpg_dsn
from worker.attempts.transactions import Decide, TransactionQueue
from worker.attempts.verification import PendingKey
from worker.decisions.attempts import AttemptDecisions, AttemptState
from worker.state import ChallengeState, DeviceState, StoredAttempt, StoredRefusal

# In id order: every batch locks rows in the same order, so two never wait in a circle.
READ_CHALLENGES = """
SELECT c.id, c.status, c.failed_attempts, c.expires_at, c.otp_digest,
       d.id, d.key_id, d.client_id, d.person_id, d.public_key, d.status
FROM challenges AS c JOIN devices AS d ON d.id = c.device_id
WHERE c.id = any($1::varchar[])
ORDER BY c.id
FOR UPDATE OF c
"""
# A person's challenges may bind on different partitions at once: one at a time, or two
# could each see four bound devices and make six. Sorted, for the same reason as above.
LOCK_PEOPLE = """
SELECT pg_advisory_xact_lock(hashtextextended(owner, 0))
FROM unnest($1::text[]) WITH ORDINALITY AS o(owner, position)
ORDER BY position
"""
# What was decided before, as three row kinds of one result: 'a' attempts, 'r' refusals,
# 'b' bound-device counts (a seek on ix_devices_owner per person).
READ_PENDING_KEYS = """
SELECT c.id, d.key_id, d.public_key, c.otp_digest
FROM challenges AS c JOIN devices AS d ON d.id = c.device_id
WHERE c.id = any($1::varchar[]) AND c.status = 'pending' AND c.otp_digest IS NOT NULL
"""
READ_DECIDED = """
SELECT 'a', challenge_id, signature, outcome, number, event_json
FROM attempts WHERE challenge_id = any($1::varchar[])
UNION ALL
SELECT 'r', challenge_id, command_id, reason, NULL, event_json
FROM refusals WHERE command_id = any($2::varchar[])
UNION ALL
SELECT 'b', o.client_id, o.person_id, NULL,
       (SELECT count(*) FROM devices AS d
        WHERE d.client_id = o.client_id AND d.person_id = o.person_id AND d.status = 'bound'),
       NULL
FROM unnest($3::varchar[], $4::varchar[]) AS o(client_id, person_id)
"""
WRITE = """
WITH changed AS (
    UPDATE challenges AS c
    SET status = u.status, failed_attempts = u.failed_attempts, otp_digest = u.otp_digest,
        decided_at = coalesce(u.decided_at, c.decided_at)
    FROM unnest($1::varchar[], $2::varchar[], $3::int[], $4::bytea[], $5::timestamptz[])
        AS u(id, status, failed_attempts, otp_digest, decided_at)
    WHERE c.id = u.id
    RETURNING 1
), bound AS (
    UPDATE devices AS d SET status = 'bound', bound_at = b.bound_at
    FROM unnest($6::varchar[], $7::timestamptz[]) AS b(id, bound_at)
    WHERE d.id = b.id
    RETURNING 1
), attempts AS (
    INSERT INTO attempts (challenge_id, signature, outcome, number, event_json, decided_at)
    SELECT * FROM unnest($8::varchar[], $9::varchar[], $10::varchar[], $11::int[],
                         $12::text[], $13::timestamptz[])
    RETURNING 1
), refusals AS (
    INSERT INTO refusals (command_id, challenge_id, reason, event_json, decided_at)
    SELECT * FROM unnest($14::varchar[], $15::varchar[], $16::varchar[], $17::text[],
                         $18::timestamptz[])
    RETURNING 1
)
SELECT (SELECT count(*) FROM changed), (SELECT count(*) FROM bound),
       (SELECT count(*) FROM attempts), (SELECT count(*) FROM refusals)
"""


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

    def submit(
        self, challenge_ids: Collection[str], command_ids: Collection[str], decide: Decide
    ) -> asyncio.Future[AttemptDecisions]:
        return self._queue.submit(lambda: self._run(challenge_ids, command_ids, decide))

    def resume(self) -> None:
        self._queue.resume()

    async def pending_keys(self, challenge_ids: Collection[str]) -> dict[str, PendingKey]:
        pool = await self._connections()
        rows = await pool.fetch(READ_PENDING_KEYS, list(challenge_ids))
        return {row[0]: PendingKey(row[1], row[2], row[3]) for row in rows}

    async def _run(
        self, challenge_ids: Collection[str], command_ids: Collection[str], decide: Decide
    ) -> AttemptDecisions:
        pool = await self._connections()
        async with pool.acquire() as connection, connection.transaction():
            state = await read_state(connection, challenge_ids, command_ids)
            decisions = await decide(state)
            await write_decisions(connection, decisions)
        return decisions

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


async def read_state(
    connection: Any, challenge_ids: Collection[str], command_ids: Collection[str]
) -> AttemptState:
    ids = sorted(challenge_ids)
    challenges: dict[str, ChallengeState] = {}
    for row in await connection.fetch(READ_CHALLENGES, ids):
        device = DeviceState(
            id=row[5],
            key_id=row[6],
            client_id=row[7],
            person_id=row[8],
            public_key=row[9],
            status=DeviceStatus(row[10]),
        )
        challenges[row[0]] = ChallengeState(
            id=row[0],
            device=device,
            status=ChallengeStatus(row[1]),
            failed_attempts=row[2],
            expires_at=row[3],
            otp_digest=row[4],
        )
    owners = sorted({challenge.device.owner for challenge in challenges.values()})
    if owners:
        await connection.execute(LOCK_PEOPLE, [f"{client}/{person}" for client, person in owners])
    attempts: dict[tuple[str, str], StoredAttempt] = {}
    refusals: dict[str, StoredRefusal] = {}
    bound: dict[tuple[str, str], int] = {}
    rows = await connection.fetch(
        READ_DECIDED,
        ids,
        list(command_ids),
        [client for client, _ in owners],
        [person for _, person in owners],
    )
    for kind, first, second, third, number, event_json in rows:
        if kind == "a":
            attempts[(first, second)] = StoredAttempt(
                verified=third == "verified", number=number, event_json=event_json
            )
        elif kind == "r":
            refusals[second] = StoredRefusal(
                reason=Reason(third), challenge_id=first, event_json=event_json
            )
        else:
            bound[(first, second)] = number
    return AttemptState(
        challenges=challenges, attempts=attempts, refusals=refusals, bound_devices=bound
    )


async def write_decisions(connection: Any, decisions: AttemptDecisions) -> None:
    changes = list(decisions.challenges.values())
    await connection.fetchrow(
        WRITE,
        [change.id for change in changes],
        [change.status.value for change in changes],
        [change.failed_attempts for change in changes],
        [change.otp_digest for change in changes],
        [change.decided_at for change in changes],
        [bound.device_id for bound in decisions.bound],
        [bound.bound_at for bound in decisions.bound],
        [attempt.challenge_id for attempt in decisions.attempts],
        [attempt.signature for attempt in decisions.attempts],
        [attempt.outcome for attempt in decisions.attempts],
        [attempt.number for attempt in decisions.attempts],
        [attempt.event_json for attempt in decisions.attempts],
        [attempt.decided_at for attempt in decisions.attempts],
        [refusal.command_id for refusal in decisions.refusals],
        [refusal.challenge_id for refusal in decisions.refusals],
        [refusal.reason.value for refusal in decisions.refusals],
        [refusal.event_json for refusal in decisions.refusals],
        [refusal.decided_at for refusal in decisions.refusals],
    )
