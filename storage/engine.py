"""Engines on a store's database: SQLite by default, PostgreSQL in production.

Two ways in, for two kinds of work:

- :func:`create_engine`: SQLAlchemy's async engine, for everything that is not the hot path
  (registrations, reads, migrations, the audit trail).
- :func:`open_sqlite` and :func:`asyncpg_dsn`: the plain drivers, for the batched hot path
  of the worker, which runs a handful of set-based statements per batch and cannot afford
  SQLAlchemy's per-statement cost when a batch holds a single command.

Every SQLite connection, whichever way it is opened, gets the same settings
(:data:`SQLITE_PRAGMAS`), so the two ways agree on durability and locking.
"""

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

# Several worker processes may share one SQLite file: wait for its lock rather than fail.
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0

SQLITE_PRAGMAS = ("PRAGMA foreign_keys=ON",)
# How hard a commit waits for the disk (WAL mode). FULL syncs the WAL at every commit: a
# committed transaction survives a power cut. NORMAL syncs it only at checkpoints: a process
# crash loses nothing, but a power cut or an OS crash may roll back the last transactions
# (the database stays consistent). The connections of everything but the worker's hot path
# use FULL; the hot path chooses (SQLITE_SYNCHRONOUS, see worker.settings).
SQLITE_SYNCHRONOUS = ("FULL", "NORMAL")


def create_engine(database_url: str) -> AsyncEngine:
    # hide_parameters: a database error logged with its traceback must not carry the
    # statement's values (an OTP digest, a signature) into the log.
    if not database_url.startswith("sqlite"):
        return create_async_engine(database_url, pool_pre_ping=True, hide_parameters=True)
    engine = create_async_engine(
        database_url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        hide_parameters=True,
    )
    _configure_sqlite(engine.sync_engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (*SQLITE_PRAGMAS, "PRAGMA synchronous=FULL"):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Take the write lock up front: a deferred transaction that reads and then writes can
        # fail at once with SQLITE_BUSY when another process wrote in between.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def sqlite_path(database_url: str | URL) -> Path | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def open_sqlite(
    path: Path, *, synchronous: str = "FULL", check_same_thread: bool = True
) -> sqlite3.Connection:
    """A plain ``sqlite3`` connection with the store's settings, in autocommit mode: the
    caller writes ``BEGIN IMMEDIATE`` and ``COMMIT`` itself. ``synchronous``: one of
    :data:`SQLITE_SYNCHRONOUS`. ``check_same_thread=False`` only for a caller that hands it
    between threads one call at a time."""
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {SQLITE_SYNCHRONOUS}")
    connection = sqlite3.connect(
        path,
        timeout=SQLITE_BUSY_TIMEOUT_SECONDS,
        isolation_level=None,
        cached_statements=64,
        check_same_thread=check_same_thread,
    )
    for pragma in (*SQLITE_PRAGMAS, f"PRAGMA synchronous={synchronous}"):
        connection.execute(pragma)
    return connection


def asyncpg_dsn(database_url: str | URL) -> str:
    """The ``postgresql://`` DSN asyncpg takes, from SQLAlchemy's ``postgresql+asyncpg://``."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def enable_wal(path: str) -> None:
    """Readers never wait for the writer. The mode is stored in the file, so once suffices.

    Switching a new file to WAL ignores the busy timeout and fails at once ("database is
    locked") while another process does the same, as workers starting together do: retry.
    """
    for _ in range(200):
        try:
            with contextlib.closing(
                sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)
            ) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
            time.sleep(0.05)
    raise RuntimeError(f"could not switch {path} to WAL mode")


async def prepare_sqlite_file(engine: AsyncEngine) -> None:
    """WAL mode for a SQLite file (nothing for other databases)."""
    path = sqlite_path(engine.url)
    if path is not None:
        await asyncio.to_thread(enable_wal, str(path))
