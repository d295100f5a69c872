"""Who cannot even connect to the SASL_SSL broker: a client without credentials, with a wrong
password, or speaking plaintext. Each beside the same client with the right settings, which
connects: the refusal is the credential's, not the test's."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError
from pydantic import SecretStr

from harness.kafka.local_kafka import LocalKafka
from harness.kafka.secure_plane import SecurePlane
from messaging import KafkaConnection
from provisioning.acls import API
from tests.security.clients import list_topics

pytestmark = [pytest.mark.security, pytest.mark.kafka]


def _with(plane: SecurePlane, **changes: object) -> KafkaConnection:
    return plane.connection(API).model_copy(update=changes)


async def test_the_api_principal_with_its_password_connects(plane: SecurePlane) -> None:
    topics = set(await list_topics(plane.bootstrap, plane.connection(API)))
    # It sees the topics it was granted (other tests' planes grant it theirs too), and none
    # of the others: no events, OTPs, dead letters, signals or checkpoints.
    assert {plane.names.commands, plane.names.replies} <= topics
    assert all(topic.endswith((".commands", ".replies")) for topic in topics), topics


async def test_a_wrong_password_is_refused(plane: SecurePlane) -> None:
    wrong = _with(plane, sasl_password=SecretStr("not-the-password"))
    with pytest.raises(KafkaConnectionError):
        await list_topics(plane.bootstrap, wrong)


async def test_a_client_without_credentials_is_refused(plane: SecurePlane) -> None:
    # TLS with the right CA, but no SASL: the listener takes SASL_SSL only.
    anonymous = KafkaConnection(security_protocol="SSL", ssl_cafile=str(plane.credentials.ca_file))
    with pytest.raises(KafkaConnectionError):
        await list_topics(plane.bootstrap, anonymous)


async def test_a_plaintext_client_is_refused(plane: SecurePlane) -> None:
    with pytest.raises(KafkaConnectionError):
        await list_topics(plane.bootstrap, KafkaConnection())


async def test_a_client_that_does_not_trust_the_brokers_ca_is_refused(
    plane: SecurePlane, secure_broker: LocalKafka
) -> None:
    # The right password, but the system's roots: TLS fails before SASL is reached, so a
    # broker impersonating this one would never see the password.
    untrusting = _with(plane, ssl_cafile="")
    with pytest.raises(KafkaConnectionError):
        await list_topics(secure_broker.bootstrap_servers, untrusting)
