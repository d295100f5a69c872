"""Session-wide fixtures: the real Kafka broker every ``kafka``-marked test runs against."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from audit.database import prepare_audit_database
from harness.kafka import local_kafka
from harness.postgres import fresh_database, running_postgres
from storage.engine import create_engine
from tests.support.databases import BACKENDS, postgres_server

REPO_ROOT = Path(__file__).resolve().parent.parent
# CI checks the shared folder out beside the repository (see its README).
_DEFAULT_WYCHEPROOF_DIR = REPO_ROOT.parent / "shared" / "testdata" / "wycheproof"


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here rather than beside the verifier's tests: pytest reads options only from the root conftest
    # when it is run without a path.
    parser.addoption(
        "--wycheproof-dir",
        # Resolved here, once, so tests only ever read the option.
        default=os.environ.get("WYCHEPROOF_DIR") or str(_DEFAULT_WYCHEPROOF_DIR),
        help=(
            "folder holding the Wycheproof ECDSA/ECDH P-256 JSON files "
            "(default: $WYCHEPROOF_DIR, else <repo>/../shared/testdata/wycheproof)"
        ),
    )


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real broker's bootstrap address: ``KAFKA_BOOTSTRAP_SERVERS``, or a local one.

    A broker that cannot start fails every test that asks for it; nothing is skipped.
    """
    with local_kafka.running_kafka(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield str(bootstrap)


@pytest.fixture
async def own_broker(tmp_path: Path) -> AsyncIterator[local_kafka.LocalKafka]:
    """A broker of the test's own, to be stopped and restarted (an outage) without touching
    the session's broker that other tests share."""
    broker = local_kafka.LocalKafka(tmp_path / "kafka")
    await asyncio.to_thread(broker.start)
    try:
        yield broker
    finally:
        await asyncio.to_thread(broker.stop)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server's URL: ``DATABASE_URL_TEST``, or a throwaway local server.

    A server that cannot be found or started fails every test that asks for it; nothing is
    skipped.
    """
    with running_postgres() as url:
        yield url


# A fresh database per test, on each backend.


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
