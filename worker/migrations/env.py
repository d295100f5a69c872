"""Alembic's entry into the service store's history (see storage.migrations.run_migrations_env)."""

from storage.migrations import run_migrations_env
from worker.migrations import WORKER_MIGRATIONS
from worker.settings import WorkerSettings

run_migrations_env(WORKER_MIGRATIONS, lambda: WorkerSettings().database_url)
