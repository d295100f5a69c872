"""Alembic's entry into the audit trail's history (see storage.migrations.run_migrations_env)."""

from audit.database import AUDIT_MIGRATIONS
from audit.settings import AuditSettings
from storage.migrations import run_migrations_env

run_migrations_env(AUDIT_MIGRATIONS, lambda: AuditSettings().audit_database_url)
