"""The audit database: its tables, the triggers that make the chain append-only, the head.

Idempotent, and safe when several audit consumers start together (on PostgreSQL they take
turns under an advisory lock; SQLite's BEGIN IMMEDIATE serialises them already).
"""

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from audit.chain import GENESIS_HASH
from audit.tables import AuditBase, ChainHead
from worker.database import create_tables

HEAD_ID = 1
_SETUP_LOCK = 0x6175646974  # "audit"

_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS audit_records_no_{action.lower()}
        BEFORE {action} ON audit_records
        BEGIN SELECT RAISE(ABORT, 'audit_records is append-only'); END"""
    for action in ("UPDATE", "DELETE")
]
_POSTGRES_TRIGGERS = [
    """CREATE OR REPLACE FUNCTION audit_records_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit_records is append-only'; END $$""",
    """CREATE OR REPLACE TRIGGER audit_records_append_only
        BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_records
        FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only()""",
]


async def prepare_audit_database(engine: AsyncEngine) -> None:
    await create_tables(engine, AuditBase.metadata)
    async with engine.begin() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SETUP_LOCK}
            )
        for statement in _POSTGRES_TRIGGERS if postgres else _SQLITE_TRIGGERS:
            await connection.execute(text(statement))
        await _ensure_head(connection)


async def _ensure_head(connection: AsyncConnection) -> None:
    """The head row exists before any append, so appenders only ever lock and update it."""
    if await connection.scalar(select(ChainHead.id).where(ChainHead.id == HEAD_ID)) is None:
        await connection.execute(
            insert(ChainHead).values(id=HEAD_ID, seq=0, record_hash=GENESIS_HASH)
        )
