"""A real PostgreSQL for the tests: a throwaway server per session, a fresh database per test.

``DATABASE_URL_TEST`` (``postgresql+asyncpg://user:pass@host:port/db``, a user allowed to
create databases) names a server to use instead; otherwise the session starts its own from
the binaries ``harness/ensure_postgres.sh`` installs: ``initdb`` into a temporary
folder, trust authentication, 127.0.0.1 and a free port only, its socket in that folder. Run
as root, the server runs as the ``postgres`` user (PostgreSQL refuses root).

No server outlives the run: it is stopped with ``pg_ctl stop -m fast`` at the end of the
session (or at exit), and the kernel interrupts it by itself should the test process die
without cleaning up (``PR_SET_PDEATHSIG``, as ``harness/kafka/local_kafka.py`` does).

A server that cannot be found or started fails the tests that need it; none is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

URL_VARIABLE = "DATABASE_URL_TEST"
SESSION_DATABASE = "device_binding_test"

T = TypeVar("T")


def run_blocking(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, event loop running or not."""

    async def main() -> T:
        return await make()

    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(main()))
        except BaseException as error:
            errors.append(error)

    # A thread of its own: a fixture may be set up while the test's loop is running.
    thread = threading.Thread(target=target, name="postgres-admin")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def admin_engine(url: str, *, connect_timeout: float = 10) -> AsyncEngine:
    """Autocommit connections to ``url``, for the statements no transaction may hold."""
    return create_async_engine(
        url,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"timeout": connect_timeout},
    )


async def execute_admin(url: str, statement: str) -> None:
    engine = admin_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@contextlib.contextmanager
def running_postgres(*, durable: bool = False) -> Iterator[str]:
    """Yield a server's URL: ``DATABASE_URL_TEST`` if set, else a throwaway server's."""
    external = os.environ.get(URL_VARIABLE)
    if external:
        yield external
        return
    from harness.postgres_server import ThrowawayPostgres  # its module imports this one

    server = ThrowawayPostgres(durable=durable)
    server.start()
    try:
        yield server.url(SESSION_DATABASE)
    finally:
        server.stop()


@asynccontextmanager
async def fresh_database(server_url: str | None, sqlite_dir: Path) -> AsyncIterator[str]:
    """A new, empty database: a SQLite file in ``sqlite_dir`` without a server URL, else a
    database of its own on that PostgreSQL server, dropped afterwards."""
    if server_url is None:
        yield f"sqlite+aiosqlite:///{sqlite_dir / 'store.db'}"
        return
    name = f"test_{uuid.uuid4().hex}"
    await execute_admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE: a connection a failed test left open must not keep the database.
        await execute_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
