"""The SASL_SSL broker the ``security`` tests share (apart from the plaintext session broker),
and a plane of the test's own on it: its topics and ACLs, provisioned as ``admin``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from harness.kafka.local_kafka import LocalKafka
from harness.kafka.secure_plane import SecurePlane, prefixed_names, prefixed_settings, provision


@pytest.fixture(scope="session")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A local broker in SASL_SSL mode: a broker that cannot start fails every test that asks
    for it; nothing is skipped."""
    broker = LocalKafka(tmp_path_factory.mktemp("secure-kafka"), security="sasl_ssl")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def plane_prefix() -> str:
    return f"sec.{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def plane(secure_broker: LocalKafka, plane_prefix: str) -> SecurePlane:
    """The product's topics under the test's own prefix, and every principal's ACLs on them."""
    assert secure_broker.credentials is not None
    settings = prefixed_settings(secure_broker.bootstrap_servers, plane_prefix)
    return await provision(
        secure_broker.credentials, settings, prefixed_names(settings, plane_prefix)
    )
