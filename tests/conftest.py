"""Session-wide fixtures: the real Kafka broker every ``kafka``-marked test runs against."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.postgres import running_postgres

REPO_ROOT = Path(__file__).resolve().parent.parent
# CI checks the shared folder out beside the repository (see its README).
_DEFAULT_WYCHEPROOF_DIR = REPO_ROOT.parent / "shared" / "testdata" / "wycheproof"


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here rather than in tests/unit/: pytest reads options only from the root conftest
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


def _load_launcher() -> ModuleType:
    # deploy/ is not an import package (it is not shipped); load the launcher by its path.
    path = REPO_ROOT / "deploy" / "kafka" / "local_kafka.py"
    spec = importlib.util.spec_from_file_location("local_kafka", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["local_kafka"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real broker's bootstrap address: ``KAFKA_BOOTSTRAP_SERVERS``, or a local one.

    A broker that cannot start fails every test that asks for it; nothing is skipped.
    """
    launcher = _load_launcher()
    with launcher.running_kafka(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield str(bootstrap)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server's URL: ``DATABASE_URL_TEST``, or a throwaway local server.

    A server that cannot be found or started fails every test that asks for it; nothing is
    skipped.
    """
    with running_postgres() as url:
        yield url
