"""The audit database's two PostgreSQL roles on a real server: the migration role owns the
schema and, migrating, grants the runtime role exactly what appending needs; the runtime role
then appends (the real consumer, with its checkpoints) but cannot rewrite the trail."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from asyncpg.exceptions import InsufficientPrivilegeError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from audit.roles import connected_as_owner
from audit.settings import AuditSettings
from audit.signing import ensure_key_file
from audit.trail import AuditTrail
from audit.verification import verify_chain
from harness.postgres_admin import execute_admin
from harness.topics import create_topics, read_topic, unique_name
from storage.engine import create_engine
from tests.audit.test_audit_consumer import publish, running_audit, wait_for_count

pytestmark = [pytest.mark.audit, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class AuditDatabase:
    migration_url: str  # the schema's owner
    runtime_url: str  # what the consumer connects as
    runtime_role: str


def as_role(server_url: str, role: str, database: str) -> str:
    url = make_url(server_url).set(username=role, password="test-only", database=database)
    return url.render_as_string(hide_password=False)


@pytest.fixture
async def audit_database(postgres_url: str) -> AsyncIterator[AuditDatabase]:
    """A database owned by a migration role, migrated by it with ``python -m audit migrate``
    (``AUDIT_RUNTIME_ROLE`` set), and a runtime role of no other rights."""
    suffix = uuid.uuid4().hex[:12]
    owner, runtime, name = f"audit_owner_{suffix}", f"audit_runtime_{suffix}", f"audit_{suffix}"
    await execute_admin(postgres_url, f'CREATE ROLE "{owner}" LOGIN')
    await execute_admin(postgres_url, f'CREATE ROLE "{runtime}" LOGIN')
    await execute_admin(postgres_url, f'CREATE DATABASE "{name}" OWNER "{owner}"')
    # As production sets it up: no one but the owner connects or creates unless granted.
    await execute_admin(postgres_url, f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
    await execute_admin(
        as_role(postgres_url, owner, name), "REVOKE CREATE ON SCHEMA public FROM PUBLIC"
    )
    database = AuditDatabase(
        as_role(postgres_url, owner, name), as_role(postgres_url, runtime, name), runtime
    )
    try:
        migrate = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "audit",
            "migrate",
            env={
                **os.environ,
                "AUDIT_DATABASE_URL": database.migration_url,
                "AUDIT_RUNTIME_ROLE": runtime,
            },
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(migrate.communicate(), 120)
        assert migrate.returncode == 0, stderr.decode()[-2000:]
        assert f"runtime role {runtime}: " in stdout.decode()
        yield database
    finally:
        await execute_admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for role in (runtime, owner):
            await execute_admin(postgres_url, f'DROP ROLE IF EXISTS "{role}"')


async def as_runtime(database: AuditDatabase, statement: str) -> None:
    engine = create_engine(database.runtime_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("UPDATE audit_records SET subject = 'x'", "permission denied for table audit_records"),
        ("DELETE FROM audit_records", "permission denied for table audit_records"),
        ("TRUNCATE audit_records", "permission denied for table audit_records"),
        (
            "DROP TRIGGER audit_records_append_only ON audit_records",
            "must be owner of",
        ),
        (
            "ALTER TABLE audit_records DISABLE TRIGGER audit_records_append_only",
            "must be owner of",
        ),
        ("DELETE FROM audit_chain_head", "permission denied for table audit_chain_head"),
        ("UPDATE audit_chain_head SET id = 2", "permission denied for table audit_chain_head"),
        ("DELETE FROM audit_anomalies", "permission denied for table audit_anomalies"),
        (
            "UPDATE audit_alembic_version SET version_num = '0000'",
            "permission denied for table audit_alembic_version",
        ),
        ("CREATE TABLE shadow (id int)", "permission denied for schema public"),
    ],
    ids=[
        "update-records",
        "delete-records",
        "truncate-records",
        "drop-trigger",
        "disable-trigger",
        "delete-head",
        "update-head-id",
        "delete-anomalies",
        "update-revision",
        "create-table",
    ],
)
async def test_the_runtime_role_cannot_rewrite_the_trail(
    audit_database: AuditDatabase, statement: str, refusal: str
) -> None:
    with pytest.raises(DBAPIError) as raised:
        await as_runtime(audit_database, statement)

    # asyncpg's own error, under the DBAPI adapter's: a refusal, not a missing object.
    assert isinstance(getattr(raised.value.orig, "__cause__", None), InsufficientPrivilegeError)
    assert refusal in str(raised.value)


@pytest.mark.kafka
async def test_the_consumer_runs_as_the_runtime_role_and_checkpoints(
    audit_database: AuditDatabase, kafka_bootstrap: str, tmp_path: Path
) -> None:
    events_topic = unique_name("audit-events")
    await create_topics(kafka_bootstrap, events_topic, partitions=2)
    key_file = tmp_path / "signing.pem"
    ensure_key_file(key_file)
    settings = AuditSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        audit_database_url=audit_database.runtime_url,
        events_topic=events_topic,
        audit_consumer_group=unique_name("audit"),
        audit_signing_key_file=key_file,
        audit_checkpoint_records=10,
        audit_checkpoints_topic=unique_name("audit-checkpoints"),
    )
    engine = create_engine(audit_database.runtime_url)
    try:
        async with running_audit(settings):
            await publish(kafka_bootstrap, events_topic, range(40))
            await wait_for_count(engine, 40)
        report = await verify_chain(engine)
        assert report.intact, report.describe()
        assert await AuditTrail(engine).record_count() == 40
    finally:
        await engine.dispose()
    checkpoints = await read_topic(kafka_bootstrap, settings.audit_checkpoints_topic)
    assert checkpoints, "the runtime role read and moved the head, and it was signed"


async def test_the_owner_is_told_apart_from_the_runtime_role(audit_database: AuditDatabase) -> None:
    for url, owner in ((audit_database.migration_url, True), (audit_database.runtime_url, False)):
        engine = create_engine(url)
        try:
            assert await connected_as_owner(engine) is owner
        finally:
            await engine.dispose()
