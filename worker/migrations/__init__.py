"""The service store's Alembic history (tables of :mod:`worker.tables`).

A package so that it ships in the wheel with the code it migrates; :mod:`storage.migrations`
finds and runs it (``python -m worker migrate``).
"""

from storage.migrations import MigrationHistory
from worker.tables import Base

WORKER_MIGRATIONS = MigrationHistory(
    name="worker",
    package="worker.migrations",
    metadata=Base.metadata,
    version_table="alembic_version",
    # Any fixed number, the same in every process: the key of the advisory lock that lets
    # one migrator at a time into a PostgreSQL database.
    lock_key=0x6465766963652D62,
    command="python -m worker migrate",
    auto_migrate_variable="AUTO_MIGRATE",
)
