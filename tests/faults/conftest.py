"""The fault suite's fixtures: a fresh database per test on SQLite and on PostgreSQL, the very
fixtures the integration tests use, and the same per module for a stack a module shares."""

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from harness.postgres import fresh_database
from tests.support.databases import BACKENDS, postgres_server


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_server(request: pytest.FixtureRequest) -> str | None:
    """A module's tests run once on SQLite and once on PostgreSQL (marked ``postgres``)."""
    return postgres_server(request)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_database_url(
    module_database_server: str | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A new, empty database shared by one module's tests."""
    directory = tmp_path_factory.mktemp("store")
    async with fresh_database(module_database_server, directory) as url:
        yield url
