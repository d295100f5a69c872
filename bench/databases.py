"""The databases a benchmark stage runs on: a SQLite file of its own, or a database of its own
on a PostgreSQL server (a throwaway one started for the run, durable as in production)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from harness.postgres import running_postgres
from harness.postgres_admin import execute_admin


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def fresh_sqlite(folder: Path, name: str) -> str:
    """A SQLite file ``name`` in ``folder``, any earlier one (and its WAL) removed."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"{name}*"):
        stale.unlink()
    return sqlite_url(folder / name)


def fresh_postgres(server_url: str) -> str:
    """A new, empty database on the server at ``server_url``; its URL."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(execute_admin(server_url, f'CREATE DATABASE "{name}"'))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the run (``DATABASE_URL_TEST``, or a throwaway durable one)."""
    with running_postgres(durable=True) as url:
        yield url
