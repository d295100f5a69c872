"""Every hot-path statement of the SQLite attempt store is an index seek on its whole
predicate: no table is scanned, so a batch costs the same with a million devices stored.

``EXPLAIN QUERY PLAN`` of each read on a database migrated to head; ``SCAN`` of anything but
the JSON list the ids arrive in (``json_each``) would grow with the table.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from storage.engine import create_engine
from storage.migrations import upgrade
from worker.attempts import sqlite_statements as sql
from worker.migrations import WORKER_MIGRATIONS

READS = {
    "challenges": (sql.READ_CHALLENGES, ('["c"]',)),
    "device challenges": (sql.READ_DEVICE_CHALLENGES, ('["c"]',)),
    "pending keys": (sql.READ_PENDING_KEYS, ('["c"]', '["d"]')),
    "attempts": (sql.READ_ATTEMPTS, ('["c"]', '["d"]')),
    "refusals": (sql.READ_REFUSALS, ('["r"]',)),
    "bound devices": (sql.READ_BOUND, ('[["bank-1", "p-1"]]',)),
    "identical requests": (sql.READ_REPEATS, ('[["c", "3006", "bank-1"]]',)),
}
WRITES = {
    "challenge": (sql.WRITE_CHALLENGE, ("pending", 0, None, None, "c")),
    "device challenge": (sql.WRITE_DEVICE_CHALLENGE, ("pending", 0, None, None, "c")),
    "bound": (sql.WRITE_BOUND, ("2026-12-01 00:00:00.000000", "d")),
    "key used": (sql.WRITE_KEY_USED, ("2026-12-01 00:00:00.000000", "k")),
}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plans") / "store.db"

    async def migrate() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine, WORKER_MIGRATIONS)
        await engine.dispose()

    asyncio.run(migrate())
    return path


def plan(path: Path, statement: str, parameters: tuple[object, ...]) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
    finally:
        connection.close()
    return [row[3] for row in rows]


@pytest.mark.parametrize("name", sorted(READS | WRITES))
def test_no_hot_statement_scans_a_table(database: Path, name: str) -> None:
    statement, parameters = (READS | WRITES)[name]
    steps = plan(database, statement, parameters)
    # The id list itself is scanned (json_each, a virtual table): that is the batch.
    scans = [
        step
        for step in steps
        if step.startswith("SCAN") and "json_each" not in step and "VIRTUAL TABLE" not in step
    ]
    assert scans == [], steps
    assert any("USING" in step for step in steps), steps


def test_the_plans_are_read_from_the_migrated_schema(database: Path) -> None:
    # A statement naming a table the migrations do not create fails here, not in production.
    with pytest.raises(sqlite3.OperationalError):
        plan(database, "SELECT * FROM no_such_table WHERE id = ?", ("x",))
