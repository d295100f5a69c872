"""The two Alembic histories (service store, audit trail) on SQLite and on PostgreSQL: the
head revision is exactly the models, every revision goes down and up again, the audit
triggers hold, and a process refuses a database that is not at the head."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, column, delete, insert, inspect, select, table, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from audit.chain import GENESIS_HASH
from audit.database import AUDIT_MIGRATIONS, HEAD_ID
from audit.tables import AuditRecord, ChainHead
from audit.trail import AuditTrail, Delivery
from harness.otp_keys import otp_environment
from storage.engine import create_engine
from storage.migrations import (
    MigrationHistory,
    SchemaNotCurrent,
    current_revisions,
    downgrade,
    prepare_database,
    upgrade,
)
from tests.conftest import REPO_ROOT
from tests.support.sample_events import attempt_event_json
from worker.migrations import WORKER_MIGRATIONS

HISTORIES = [
    pytest.param(WORKER_MIGRATIONS, id="worker"),
    pytest.param(AUDIT_MIGRATIONS, id="audit"),
]
APPEND_ONLY_TRIGGERS = {
    "sqlite": {"audit_records_no_update", "audit_records_no_delete"},
    "postgresql": {"audit_records_append_only"},
}


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def differences(engine: AsyncEngine, history: MigrationHistory) -> list[Any]:
    """What autogenerate would write to bring the database to the models: nothing, at head."""

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={"version_table": history.version_table, "compare_server_default": True},
        )
        return list(compare_metadata(context, history.metadata))

    async with engine.connect() as connection:
        return await connection.run_sync(compare)


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def trigger_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        else:
            query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        return set(await connection.scalars(text(query)))


async def postgres_functions(engine: AsyncEngine) -> set[str]:
    """The functions of the database's public schema (none on SQLite)."""
    if engine.dialect.name != "postgresql":
        return set()
    async with engine.connect() as connection:
        return set(
            await connection.scalars(
                text(
                    "SELECT proname FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace "
                    "WHERE nspname = 'public'"
                )
            )
        )


def heads(history: MigrationHistory) -> tuple[str, ...]:
    return tuple(history.script().get_heads())


@pytest.mark.parametrize("history", HISTORIES)
async def test_the_head_revision_is_exactly_the_models(
    engine: AsyncEngine, history: MigrationHistory
) -> None:
    assert await current_revisions(engine, history) == ()
    await upgrade(engine, history)
    assert await current_revisions(engine, history) == heads(history)
    assert await differences(engine, history) == []
    expected = {table.name for table in history.metadata.sorted_tables}
    assert await table_names(engine) == expected | {history.version_table}


@pytest.mark.parametrize("history", HISTORIES)
async def test_down_to_base_removes_everything_and_up_again_restores_it(
    engine: AsyncEngine, history: MigrationHistory
) -> None:
    await upgrade(engine, history)
    await downgrade(engine, history, "base")
    assert await current_revisions(engine, history) == ()
    # Alembic keeps its (now empty) version table; nothing else is left, triggers included.
    assert await table_names(engine) == {history.version_table}
    assert await trigger_names(engine) == set()
    assert await postgres_functions(engine) == set()

    await upgrade(engine, history)
    assert await current_revisions(engine, history) == heads(history)
    assert await differences(engine, history) == []


async def test_the_audit_trail_is_append_only_from_its_first_revision(
    engine: AsyncEngine,
) -> None:
    await upgrade(engine, AUDIT_MIGRATIONS)
    assert await trigger_names(engine) == APPEND_ONLY_TRIGGERS[engine.dialect.name]
    async with engine.connect() as connection:
        head = (await connection.execute(select(ChainHead))).one()
    # The revision's literals agree with the code that chains onto them.
    assert (head.id, head.seq, head.record_hash) == (HEAD_ID, 0, GENESIS_HASH)

    await AuditTrail(engine).append([Delivery("events", 0, 0, attempt_event_json(1))])
    refused: list[Executable] = [update(AuditRecord).values(event="{}"), delete(AuditRecord)]
    if engine.dialect.name == "postgresql":
        refused.append(text("TRUNCATE audit_records"))
    for statement in refused:
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(statement)
    assert await AuditTrail(engine).record_count() == 1


@pytest.mark.parametrize("history", HISTORIES)
async def test_the_start_up_check_refuses_a_database_not_migrated(
    engine: AsyncEngine, history: MigrationHistory
) -> None:
    with pytest.raises(SchemaNotCurrent) as refused:
        await prepare_database(engine, history, migrate=False)
    message = str(refused.value)
    assert f"the {history.name} database has not been migrated" in message
    assert f"run `{history.command}` first" in message
    assert f"{history.auto_migrate_variable}=true" in message
    # Checking changed nothing.
    assert await table_names(engine) == set()

    await upgrade(engine, history)
    await prepare_database(engine, history, migrate=False)


@pytest.mark.parametrize("history", HISTORIES)
async def test_the_start_up_check_refuses_a_revision_it_does_not_know(
    engine: AsyncEngine, history: MigrationHistory
) -> None:
    await upgrade(engine, history)
    async with engine.begin() as connection:
        # As a newer release would leave it, migrated past this release's head.
        version = table(history.version_table, column("version_num"))
        await connection.execute(update(version).values(version_num="from-the-future"))
    with pytest.raises(SchemaNotCurrent, match="at revision from-the-future, which this release"):
        await prepare_database(engine, history, migrate=False)


@pytest.mark.parametrize("history", HISTORIES)
async def test_processes_starting_together_migrate_once(
    database_url: str, history: MigrationHistory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alembic.runtime.migration")
    # One engine each, as separate processes have: they meet only in the database.
    engines = [create_engine(database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(prepare_database(e, history, migrate=True) for e in engines))
        assert await current_revisions(engines[0], history) == heads(history)
        assert await differences(engines[0], history) == []
    finally:
        for engine in engines:
            await engine.dispose()
    ran = [record for record in caplog.records if record.getMessage().startswith("Running upgrade")]
    # One line per revision applied: by one of the four, the others finding the work done.
    assert len(ran) == len(list(history.script().walk_revisions())), ran


@pytest.mark.parametrize("history", HISTORIES)
async def test_a_database_made_before_migrations_is_adopted(
    engine: AsyncEngine, history: MigrationHistory
) -> None:
    # What the processes created at start-up before Alembic: the models' tables (and, for
    # the audit trail, its head's row), but no revision.
    async with engine.begin() as connection:
        await connection.run_sync(history.metadata.create_all)
        if history is AUDIT_MIGRATIONS:
            await connection.execute(
                insert(ChainHead).values(id=HEAD_ID, seq=0, record_hash=GENESIS_HASH)
            )
    await upgrade(engine, history)
    assert await current_revisions(engine, history) == heads(history)
    assert await differences(engine, history) == []
    if history is AUDIT_MIGRATIONS:
        assert await trigger_names(engine) == APPEND_ONLY_TRIGGERS[engine.dialect.name]
        async with engine.connect() as connection:
            assert len((await connection.execute(select(ChainHead))).all()) == 1


# The commands, as operators (and the Kubernetes Job) run them: from another directory, so
# that nothing is found relative to the working directory.


async def run(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        # The repository's packages importable as an installed wheel's are, whatever the
        # state of the virtualenv's editable install.
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


COMMANDS = [
    pytest.param("worker", "DATABASE_URL", WORKER_MIGRATIONS, id="worker"),
    pytest.param("audit", "AUDIT_DATABASE_URL", AUDIT_MIGRATIONS, id="audit"),
]


@pytest.mark.parametrize(("package", "variable", "history"), COMMANDS)
async def test_the_process_refuses_to_start_until_migrated_by_the_command(
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    package: str,
    variable: str,
    history: MigrationHistory,
) -> None:
    env = {
        variable: database_url,
        # Refused before any broker is needed: nothing listens there.
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "PROVISION_TOPICS": "false",
        # The worker refuses to start without its keys first: given, to reach the schema.
        **otp_environment(),
    }
    code, _, stderr = await run(tmp_path, env, "-m", package)
    assert code == 1, stderr
    assert f"run `python -m {package} migrate` first" in stderr
    assert "Traceback" not in stderr

    [head] = heads(history)
    code, stdout, stderr = await run(tmp_path, env, "-m", package, "migrate")
    assert code == 0, stderr
    assert stdout.splitlines()[1:] == [
        "revision before: none",
        f"revision after: {head} (head)",
    ]
    assert await differences(engine, history) == []

    code, stdout, stderr = await run(tmp_path, env, "-m", package, "migrate", "--downgrade", "base")
    assert code == 0, stderr
    assert stdout.splitlines()[1:] == [
        f"revision before: {head} (head)",
        "revision after: none",
    ]
    assert await table_names(engine) == {history.version_table}


async def test_device_signing_gives_every_device_not_unbound_its_binding_key(
    engine: AsyncEngine,
) -> None:
    await upgrade(engine, WORKER_MIGRATIONS, "0002")
    devices = table(
        "devices",
        *(
            column(name)
            for name in (
                "id",
                "key_id",
                "client_id",
                "person_id",
                "key_purpose",
                "public_key",
                "status",
                "created_at",
                "created_by_command",
                "created_by_request",
            )
        ),
    )
    async with engine.begin() as connection:
        for number, status in enumerate(("pending", "bound", "unbound")):
            await connection.execute(
                insert(devices).values(
                    id=f"d-{status}",
                    key_id=f"k-{status}",
                    client_id="bank-1",
                    person_id="p-1",
                    key_purpose="restricted" if number else "unrestricted",
                    public_key="04" + "ab" * 64,
                    status=status,
                    created_at=datetime(2026, 12, 1, tzinfo=UTC),
                    created_by_command=f"c-{status}",
                    created_by_request="r-1",
                )
            )
    await upgrade(engine, WORKER_MIGRATIONS)
    async with engine.connect() as connection:
        keys = (
            await connection.execute(
                text("SELECT id, device_id, key_purpose, used_at FROM device_keys ORDER BY id")
            )
        ).all()
    assert [tuple(row) for row in keys] == [
        ("k-bound", "d-bound", "restricted", None),
        ("k-pending", "d-pending", "unrestricted", None),
    ]
