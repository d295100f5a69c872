"""Alembic's entry into the service store's history (see worker.database.run_migrations_env)."""

from worker.database import WORKER_MIGRATIONS, run_migrations_env
from worker.settings import WorkerSettings

run_migrations_env(WORKER_MIGRATIONS, lambda: WorkerSettings().database_url)
