"""The fault suite's fixtures: a fresh database per test on SQLite and on PostgreSQL, the very
fixtures the integration tests use."""

from tests.integration.conftest import database_server, database_url  # noqa: F401
