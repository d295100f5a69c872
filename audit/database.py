"""The audit database's schema: Alembic's, from the history in ``audit/migrations``.

Its tables, the triggers that make the chain append-only and the chain head's row are all
created by that history's revisions (``python -m audit migrate``); the consumer only checks
at start-up that the database is at the head revision, or upgrades it itself when
``audit_auto_migrate`` is set (development, tests).
"""

from sqlalchemy.ext.asyncio import AsyncEngine

from audit.tables import AuditBase
from storage.migrations import MigrationHistory, prepare_database

# The chain head's only row, inserted by the first revision.
HEAD_ID = 1

AUDIT_MIGRATIONS = MigrationHistory(
    name="audit",
    package="audit.migrations",
    metadata=AuditBase.metadata,
    # Prefixed as its tables are: never mistaken for the service store's alembic_version.
    version_table="audit_alembic_version",
    lock_key=0x6175646974,  # any fixed number: the key of its migrators' advisory lock
    command="python -m audit migrate",
    auto_migrate_variable="AUDIT_AUTO_MIGRATE",
)


async def prepare_audit_database(engine: AsyncEngine, *, migrate: bool = False) -> None:
    """At start-up: upgrade to the head if ``migrate``, else refuse a database not there."""
    await prepare_database(engine, AUDIT_MIGRATIONS, migrate=migrate)
