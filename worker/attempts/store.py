"""Where a batch of signature attempts is read, decided and written: one transaction each.

:class:`AttemptStore` is the contract; :mod:`worker.attempts.sqlite` and
:mod:`worker.attempts.postgres` keep it, each with the plain driver of its database and a
fixed handful of set-based statements per batch, whatever its size:

1. lock, then read the batch's challenges (binding and device challenges) with their
   devices and signing keys, the attempts and refusals already stored for them, and the
   bound devices of their people;
2. hand that state to the decision (:func:`worker.decisions.attempts.decide_attempts`),
   which runs off the event loop: it verifies signatures;
3. write what it decided, and commit.

Transactions are queued (:meth:`AttemptStore.submit`) and run one after another in the
order they were queued (:mod:`worker.attempts.transactions`), so a partition's commands are
decided in order however many batches are in flight. When one fails, those queued behind
it are not run at all (they raise ``Halted``) until :meth:`AttemptStore.resume`: the
consumer reads them again, in order, from the failed one on.

Commands for one challenge arrive in order on one partition, but a rebalance can hand the
same commands to two workers for a moment, and every worker process shares the database, so
the read is made under locks that hold until the commit: SQLite's ``BEGIN IMMEDIATE``; on
PostgreSQL the challenge rows ``FOR UPDATE`` and each person's advisory lock, both taken in
a fixed order so that two batches never wait for each other in a circle. A unique constraint
on (challenge, signature) still makes counting an attempt twice impossible.
"""

import asyncio
from typing import Protocol

from storage.engine import sqlite_path
from worker.attempts.reads import BatchReads
from worker.attempts.transactions import Decide
from worker.attempts.verification import PendingKey
from worker.decisions.attempts import AttemptDecisions


class AttemptStore(Protocol):
    def submit(self, reads: BatchReads, decide: Decide) -> asyncio.Future[AttemptDecisions]:
        """Queue one transaction: read the state of ``reads`` under the batch's locks, run
        ``decide`` on it, store its decisions. It starts once every transaction queued
        before it has ended. The future raises what the database raised, with nothing
        stored, or :class:`~worker.attempts.transactions.Halted`."""
        ...

    def resume(self) -> None:
        """Run queued transactions again after a failure (the consumer reads them again)."""
        ...

    async def pending_keys(self, reads: BatchReads) -> dict[str, PendingKey]:
        """The signing key and digest of each challenge of ``reads`` that is pending, as
        committed now (no lock): what verifying its signatures early needs."""
        ...

    async def close(self) -> None: ...


def attempt_store(database_url: str, *, sqlite_synchronous: str = "FULL") -> AttemptStore:
    """The store for ``database_url``: plain sqlite3 for a SQLite file (committing with
    ``sqlite_synchronous``), else asyncpg."""
    # Imported here: each module loads only its own driver's code.
    path = sqlite_path(database_url)
    if path is not None:
        from worker.attempts.sqlite import SqliteAttemptStore

        return SqliteAttemptStore(path, synchronous=sqlite_synchronous)
    if database_url.startswith("postgresql"):
        from worker.attempts.postgres import PostgresAttemptStore

        return PostgresAttemptStore(database_url)
    raise ValueError("DATABASE_URL must be a SQLite file or a PostgreSQL database")
