"""The ``stack`` fixture: the product over HTTP on real Kafka (:mod:`tests.system.http_stack`)."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.system.http_stack import Stack, http_stack


@pytest.fixture
async def stack(kafka_bootstrap: str, database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with http_stack(kafka_bootstrap, database_url, tmp_path) as running:
        yield running
