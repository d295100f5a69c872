"""The async engine: SQLite by default, PostgreSQL in production, tables created at start-up."""

import asyncio
import contextlib
import sqlite3
import time
from typing import Any

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from worker.tables import Base


def create_engine(database_url: str) -> AsyncEngine:
    # hide_parameters: a database error logged with its traceback must not carry the
    # statement's values (an OTP digest, a signature) into the log.
    if not database_url.startswith("sqlite"):
        return create_async_engine(database_url, pool_pre_ping=True, hide_parameters=True)
    # Several worker processes may share one SQLite file: wait for its lock rather than fail.
    engine = create_async_engine(database_url, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Take the write lock up front: a deferred transaction that reads and then writes can
        # fail at once with SQLITE_BUSY when another process wrote in between.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# Any fixed number, the same in every worker: the key of the advisory lock below.
_CREATE_TABLES_LOCK = 0x6465766963652D62  # "device-b"


def _enable_wal(path: str) -> None:
    """Readers never wait for the writer. The mode is stored in the file, so once suffices.

    Switching a new file to WAL ignores the busy timeout and fails at once ("database is
    locked") while another process does the same, as workers starting together do: retry.
    """
    for _ in range(200):
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=30)) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
            time.sleep(0.05)
    raise RuntimeError(f"could not switch {path} to WAL mode")


async def create_tables(engine: AsyncEngine, metadata: MetaData = Base.metadata) -> None:
    """Creates what is missing of ``metadata`` (the service's tables unless told otherwise)."""
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        await asyncio.to_thread(_enable_wal, str(engine.url.database))
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Workers starting together on an empty database would all find no tables and
            # race to create them (a unique violation in pg_type for all but one). One at a
            # time instead: the lock lasts until this transaction, DDL included, commits.
            # (SQLite needs nothing: its BEGIN IMMEDIATE already serialises them.)
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_TABLES_LOCK}
            )
        await connection.run_sync(metadata.create_all)
