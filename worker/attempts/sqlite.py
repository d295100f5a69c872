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

The statements are :mod:`worker.attempts.sqlite_statements`: each an index seek on its whole
predicate, so the cost of a batch does not grow with the number of devices stored.
"""

import asyncio
import json
import sqlite3
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.challenges import ChallengeStatus
from schemas.devices import DeviceStatus, KeyPurpose
from schemas.reasons import Reason
from storage.engine import SQLITE_BUSY_TIMEOUT_SECONDS, enable_wal, open_sqlite
from worker.attempts import sqlite_statements as sql
from worker.attempts.reads import BatchReads
from worker.attempts.transactions import Decide, TransactionQueue
from worker.attempts.verification import PendingKey
from worker.decisions.attempts import AttemptDecisions, AttemptState
from worker.state import (
    ChallengeKind,
    ChallengeState,
    DeviceState,
    PersonState,
    StoredAttempt,
    StoredRefusal,
)

# Batches of at least this many commit beside the loop; smaller ones commit on it.
COMMIT_BESIDE_FROM = 16


_CHALLENGE_STATUS = {status.value: status for status in ChallengeStatus}
_DEVICE_STATUS = {status.value: status for status in DeviceStatus}
_KEY_PURPOSE = {purpose.value: purpose for purpose in KeyPurpose}


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

    def submit(self, reads: BatchReads, decide: Decide) -> asyncio.Future[AttemptDecisions]:
        return self._queue.submit(lambda: self._transaction(reads, decide))

    def resume(self) -> None:
        self._queue.resume()

    async def pending_keys(self, reads: BatchReads) -> dict[str, PendingKey]:
        if self._reader is None:
            self._reader = open_sqlite(self._path)
        rows = self._reader.execute(
            sql.READ_PENDING_KEYS, (json.dumps(reads.binding), json.dumps(reads.device))
        )
        return {row[0]: PendingKey(row[1], row[2], row[3], ChallengeKind(row[4])) for row in rows}

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

    async def _transaction(self, reads: BatchReads, decide: Decide) -> AttemptDecisions:
        connection = self._connect()
        await self._begin(connection)
        try:
            decisions = await decide(read_state(connection, reads))
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


def read_state(connection: sqlite3.Connection, reads: BatchReads) -> AttemptState:
    challenges: dict[str, ChallengeState] = {}
    people: dict[tuple[str, str], PersonState] = {}
    for kind, statement, ids in (
        (ChallengeKind.BINDING, sql.READ_CHALLENGES, reads.binding),
        (ChallengeKind.DEVICE, sql.READ_DEVICE_CHALLENGES, reads.device),
    ):
        if ids:
            rows = connection.execute(statement, (json.dumps(ids),))
            challenges.update(_challenges(kind, rows, people))
    attempts = {
        (challenge_id, signature): StoredAttempt(
            verified=outcome == "verified", number=number, event_json=event_json
        )
        for challenge_id, signature, outcome, number, event_json in connection.execute(
            sql.READ_ATTEMPTS, (json.dumps(reads.binding), json.dumps(reads.device))
        )
    }
    refusals = {
        command_id: StoredRefusal(
            reason=Reason(reason), challenge_id=challenge_id, event_json=event_json
        )
        for command_id, reason, challenge_id, event_json in connection.execute(
            sql.READ_REFUSALS, (json.dumps(reads.commands),)
        )
    }
    # Only binding counts towards the limit of bound devices.
    owners = sorted(
        {c.device.owner for c in challenges.values() if c.kind is ChallengeKind.BINDING}
    )
    bound = {
        (client_id, person_id): count
        for client_id, person_id, count in connection.execute(sql.READ_BOUND, (json.dumps(owners),))
    }
    repeats = {
        (row[0], row[1], row[2]): StoredRefusal(
            reason=Reason(row[3]), challenge_id=row[0], event_json=row[4]
        )
        for row in connection.execute(sql.READ_REPEATS, (json.dumps(reads.requests),))
    }
    return AttemptState(
        challenges=challenges,
        attempts=attempts,
        refusals=refusals,
        bound_devices=bound,
        people=people,
        repeats=repeats,
    )


def _challenges(
    kind: ChallengeKind,
    rows: Iterable[tuple[Any, ...]],
    people: dict[tuple[str, str], PersonState],
) -> dict[str, ChallengeState]:
    """The challenges of ``rows``; the people's runs they carry go into ``people``."""
    challenges: dict[str, ChallengeState] = {}
    for row in rows:
        if row[12] is not None:  # the person has a row in person_limits
            locked_until = from_sqlite_time(row[13]) if row[13] else None
            people[(row[7], row[8])] = PersonState(row[12], locked_until, row[14], row[15])
        device = DeviceState(
            id=row[5],
            key_id=row[6],
            client_id=row[7],
            person_id=row[8],
            public_key=row[9],
            status=_DEVICE_STATUS[row[10]],
            key_purpose=_KEY_PURPOSE[row[11]],
        )
        challenges[row[0]] = ChallengeState(
            id=row[0],
            device=device,
            status=_CHALLENGE_STATUS[row[1]],
            failed_attempts=row[2],
            expires_at=from_sqlite_time(row[3]),
            digest=row[4],
            kind=kind,
        )
    return challenges


def write_decisions(connection: sqlite3.Connection, decisions: AttemptDecisions) -> None:
    stored = _Times()
    changes = {kind: [] for kind in ChallengeKind}  # type: dict[ChallengeKind, list[Any]]
    for change in decisions.challenges.values():
        changes[change.kind].append(
            (
                change.status.value,
                change.failed_attempts,
                change.digest is not None,  # kept, as stored, or dropped
                stored(change.decided_at) if change.decided_at else None,
                change.id,
            )
        )
    attempts = {kind: [] for kind in ChallengeKind}  # type: dict[ChallengeKind, list[Any]]
    for attempt in decisions.attempts:
        attempts[attempt.kind].append(
            (
                attempt.challenge_id,
                attempt.signature,
                attempt.outcome,
                attempt.number,
                attempt.event_json,
                stored(attempt.decided_at),
            )
        )
    writes = [
        (sql.WRITE_CHALLENGE, changes[ChallengeKind.BINDING]),
        (sql.WRITE_DEVICE_CHALLENGE, changes[ChallengeKind.DEVICE]),
        (sql.WRITE_BOUND, [(stored(b.bound_at), b.device_id) for b in decisions.bound]),
        (sql.WRITE_KEY_USED, [(stored(k.used_at), k.key_id) for k in decisions.keys_used]),
        (sql.WRITE_ATTEMPT, attempts[ChallengeKind.BINDING]),
        (sql.WRITE_DEVICE_ATTEMPT, attempts[ChallengeKind.DEVICE]),
        (
            sql.WRITE_REFUSAL,
            [
                (
                    refusal.command_id,
                    refusal.challenge_id,
                    refusal.reason.value,
                    refusal.event_json,
                    stored(refusal.decided_at),
                    refusal.signature,
                    refusal.client_id,
                )
                for refusal in decisions.refusals
            ],
        ),
        (
            sql.WRITE_PERSON,
            [
                (
                    change.client_id,
                    change.person_id,
                    change.state.consecutive_failures,
                    stored(change.state.locked_until) if change.state.locked_until else None,
                    change.state.locked_by,
                    change.state.lock_event_json,
                )
                for change in decisions.people.values()
            ],
        ),
    ]
    for statement, rows in writes:
        if rows:
            connection.executemany(statement, rows)
