"""The attempt store on SQLite: plain ``sqlite3``, its statements on the event loop's thread.

A batch's reads and writes are a few set-based statements of a millisecond or so, run where
the rest of the batch's Python runs. On a thread of their own they were slower, not faster:
every ``sqlite3`` call releases the GIL and then waits to get it back from the event loop
(measured: the same drain rate as on the loop, at more CPU). What does run beside the loop:
the batch's ECDSA (:mod:`worker.attempts.verification`), which the transaction awaits
between its reads and its writes, holding SQLite's write lock meanwhile; and the ``COMMIT``,
one call that writes the WAL and syncs it to disk with the GIL released, so the loop goes on
announcing the previous batch meanwhile. Early snapshot reads (:meth:`pending_keys`) have a
connection of their own: WAL lets them read while the writer commits.

Lists are passed as one JSON array (``json_each``) so that each statement has one text
whatever the batch's size, prepared once and kept in the connection's statement cache.
Every lookup is an index seek on its whole predicate (``EXPLAIN QUERY PLAN`` in the tests):
the cost of a batch does not grow with the number of devices stored.
"""

import asyncio
import json
import sqlite3
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from schemas.challenges import ChallengeStatus
from schemas.devices import DeviceStatus
from schemas.reasons import Reason
from storage.engine import SQLITE_BUSY_TIMEOUT_SECONDS, enable_wal, open_sqlite
from worker.attempts.transactions import Decide, TransactionQueue
from worker.attempts.verification import PendingKey
from worker.decisions.attempts import AttemptDecisions, AttemptState
from worker.state import ChallengeState, DeviceState, StoredAttempt, StoredRefusal

# Batches of at least this many commit beside the loop; smaller ones commit on it.
COMMIT_BESIDE_FROM = 16

READ_CHALLENGES = """
SELECT c.id, c.status, c.failed_attempts, c.expires_at, c.otp_digest,
       d.id, d.key_id, d.client_id, d.person_id, d.public_key, d.status
FROM challenges AS c JOIN devices AS d ON d.id = c.device_id
WHERE c.id IN (SELECT value FROM json_each(?))
"""
READ_PENDING_KEYS = """
SELECT c.id, d.key_id, d.public_key, c.otp_digest
FROM challenges AS c JOIN devices AS d ON d.id = c.device_id
WHERE c.id IN (SELECT value FROM json_each(?)) AND c.status = 'pending'
  AND c.otp_digest IS NOT NULL
"""
READ_ATTEMPTS = """
SELECT challenge_id, signature, outcome, number, event_json FROM attempts
WHERE challenge_id IN (SELECT value FROM json_each(?))
"""
READ_REFUSALS = """
SELECT command_id, reason, challenge_id, event_json FROM refusals
WHERE command_id IN (SELECT value FROM json_each(?))
"""
# One count per (client, person): a seek on ix_devices_owner (client_id, person_id, status).
READ_BOUND = """
SELECT json_extract(owner.value, '$[0]'), json_extract(owner.value, '$[1]'),
       (SELECT count(*) FROM devices AS d
        WHERE d.client_id = json_extract(owner.value, '$[0]')
          AND d.person_id = json_extract(owner.value, '$[1]')
          AND d.status = 'bound')
FROM json_each(?) AS owner
"""
WRITE_CHALLENGE = """
UPDATE challenges SET status = ?, failed_attempts = ?, otp_digest = ?,
                      decided_at = coalesce(?, decided_at)
WHERE id = ?
"""
WRITE_BOUND = "UPDATE devices SET status = 'bound', bound_at = ? WHERE id = ?"
WRITE_ATTEMPT = """
INSERT INTO attempts (challenge_id, signature, outcome, number, event_json, decided_at)
VALUES (?, ?, ?, ?, ?, ?)
"""
WRITE_REFUSAL = """
INSERT INTO refusals (command_id, challenge_id, reason, event_json, decided_at)
VALUES (?, ?, ?, ?, ?)
"""


_CHALLENGE_STATUS = {status.value: status for status in ChallengeStatus}
_DEVICE_STATUS = {status.value: status for status in DeviceStatus}


def to_sqlite_time(moment: datetime) -> str:
    """The text SQLAlchemy's SQLite dialect stores a datetime as (UTC, microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class _Times:
    """Datetimes as stored text, each formatted once: a batch's rows share their time."""

    def __init__(self) -> None:
        self._texts: dict[datetime, str] = {}

    def __call__(self, moment: datetime) -> str:
        text = self._texts.get(moment)
        if text is None:
            text = self._texts[moment] = to_sqlite_time(moment)
        return text


def from_sqlite_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class SqliteAttemptStore:
    """An :class:`~worker.attempts.store.AttemptStore` on the SQLite file at ``path``."""

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self._path = path
        self._synchronous = synchronous
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._queue = TransactionQueue()
        # COMMIT runs here, the writer handed over for that one call (never two at once).
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-commit")

    def submit(
        self, challenge_ids: Collection[str], command_ids: Collection[str], decide: Decide
    ) -> asyncio.Future[AttemptDecisions]:
        return self._queue.submit(lambda: self._transaction(challenge_ids, command_ids, decide))

    def resume(self) -> None:
        self._queue.resume()

    async def pending_keys(self, challenge_ids: Collection[str]) -> dict[str, PendingKey]:
        if self._reader is None:
            self._reader = open_sqlite(self._path)
        rows = self._reader.execute(READ_PENDING_KEYS, (json.dumps(list(challenge_ids)),))
        return {row[0]: PendingKey(row[1], row[2], row[3]) for row in rows}

    async def close(self) -> None:
        self._committer.shutdown(wait=True)
        for connection in (self._writer, self._reader):
            if connection is not None:
                connection.close()
        self._writer = self._reader = None

    def _connect(self) -> sqlite3.Connection:
        if self._writer is None:
            enable_wal(str(self._path))
            self._writer = open_sqlite(
                self._path, synchronous=self._synchronous, check_same_thread=False
            )
            # Never wait inside SQLite for the write lock: that would stall the event loop,
            # and with it whoever holds the lock in this process (see _begin).
            self._writer.execute("PRAGMA busy_timeout=0")
        return self._writer

    async def _begin(self, connection: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, waiting for the write lock on the event loop, not in it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SQLITE_BUSY_TIMEOUT_SECONDS
        pause = 0.001
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or loop.time() > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def _transaction(
        self, challenge_ids: Collection[str], command_ids: Collection[str], decide: Decide
    ) -> AttemptDecisions:
        connection = self._connect()
        await self._begin(connection)
        try:
            decisions = await decide(read_state(connection, challenge_ids, command_ids))
            write_decisions(connection, decisions)
            if len(decisions.outcomes) < COMMIT_BESIDE_FROM:
                connection.execute("COMMIT")  # a few pages: quicker than a thread hand-over
            else:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._committer, connection.execute, "COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return decisions


def read_state(
    connection: sqlite3.Connection, challenge_ids: Collection[str], command_ids: Collection[str]
) -> AttemptState:
    ids = json.dumps(list(challenge_ids))
    challenges: dict[str, ChallengeState] = {}
    for row in connection.execute(READ_CHALLENGES, (ids,)):
        device = DeviceState(
            id=row[5],
            key_id=row[6],
            client_id=row[7],
            person_id=row[8],
            public_key=row[9],
            status=_DEVICE_STATUS[row[10]],
        )
        challenges[row[0]] = ChallengeState(
            id=row[0],
            device=device,
            status=_CHALLENGE_STATUS[row[1]],
            failed_attempts=row[2],
            expires_at=from_sqlite_time(row[3]),
            otp_digest=row[4],
        )
    attempts = {
        (challenge_id, signature): StoredAttempt(
            verified=outcome == "verified", number=number, event_json=event_json
        )
        for challenge_id, signature, outcome, number, event_json in connection.execute(
            READ_ATTEMPTS, (ids,)
        )
    }
    refusals = {
        command_id: StoredRefusal(
            reason=Reason(reason), challenge_id=challenge_id, event_json=event_json
        )
        for command_id, reason, challenge_id, event_json in connection.execute(
            READ_REFUSALS, (json.dumps(list(command_ids)),)
        )
    }
    owners = sorted({challenge.device.owner for challenge in challenges.values()})
    bound = {
        (client_id, person_id): count
        for client_id, person_id, count in connection.execute(READ_BOUND, (json.dumps(owners),))
    }
    return AttemptState(
        challenges=challenges, attempts=attempts, refusals=refusals, bound_devices=bound
    )


def write_decisions(connection: sqlite3.Connection, decisions: AttemptDecisions) -> None:
    stored = _Times()
    if decisions.challenges:
        connection.executemany(
            WRITE_CHALLENGE,
            [
                (
                    change.status.value,
                    change.failed_attempts,
                    change.otp_digest,
                    stored(change.decided_at) if change.decided_at else None,
                    change.id,
                )
                for change in decisions.challenges.values()
            ],
        )
    if decisions.bound:
        connection.executemany(
            WRITE_BOUND,
            [(stored(bound.bound_at), bound.device_id) for bound in decisions.bound],
        )
    if decisions.attempts:
        connection.executemany(
            WRITE_ATTEMPT,
            [
                (
                    attempt.challenge_id,
                    attempt.signature,
                    attempt.outcome,
                    attempt.number,
                    attempt.event_json,
                    stored(attempt.decided_at),
                )
                for attempt in decisions.attempts
            ],
        )
    if decisions.refusals:
        connection.executemany(
            WRITE_REFUSAL,
            [
                (
                    refusal.command_id,
                    refusal.challenge_id,
                    refusal.reason.value,
                    refusal.event_json,
                    stored(refusal.decided_at),
                )
                for refusal in decisions.refusals
            ],
        )
