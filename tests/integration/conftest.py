"""Fixtures of the integration tests: a fresh database per test, on each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from audit.database import prepare_audit_database
from storage.engine import create_engine
from tests.postgres import BACKENDS, fresh_database, postgres_server


@pytest.fixture(params=BACKENDS)
def database_server(request: pytest.FixtureRequest) -> str | None:
    """Tests that ask for a database run on SQLite and on PostgreSQL (marked ``postgres``)."""
    return postgres_server(request)


@pytest.fixture
async def database_url(database_server: str | None, tmp_path: Path) -> AsyncIterator[str]:
    """A new, empty database for each test; the worker creates its tables."""
    async with fresh_database(database_server, tmp_path) as url:
        yield url


@pytest.fixture
async def audit_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh, migrated audit database."""
    engine = create_engine(database_url)
    await prepare_audit_database(engine, migrate=True)
    yield engine
    await engine.dispose()
