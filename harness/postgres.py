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

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from harness.postgres_admin import execute_admin, run_blocking
from harness.postgres_server import URL_VARIABLE, ThrowawayPostgres

SESSION_DATABASE = "device_binding_test"


@contextlib.contextmanager
def running_postgres(*, durable: bool = False) -> Iterator[str]:
    """Yield a server's URL: ``DATABASE_URL_TEST`` if set, else a throwaway server's."""
    external = os.environ.get(URL_VARIABLE)
    if external:
        yield external
        return
    server = ThrowawayPostgres(durable=durable)
    server.start()
    try:
        run_blocking(
            lambda: execute_admin(server.url("postgres"), f'CREATE DATABASE "{SESSION_DATABASE}"')
        )
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
