"""What each principal may do on the broker, tried against it (SPEC §9): the api principal
writes commands and reads replies, and nothing a worker does; no principal but the worker can
publish a reply or an event, so a forged ``{"outcome": "ok"}`` never reaches an API replica;
no principal but the api publishes commands, so none can bind or unbind past the token check;
only the SMS gateway reads OTP deliveries, and nothing else."""

from __future__ import annotations

import json

import pytest
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from harness.kafka.secure_plane import SecurePlane
from provisioning.acls import API, AUDIT, DEMO, FRAUD, SMS_GATEWAY, WORKER
from tests.security.clients import consume, publish

pytestmark = [pytest.mark.security, pytest.mark.kafka]

FORGED_REPLY = json.dumps({"outcome": "ok"}).encode()


async def test_the_api_principal_writes_commands_and_reads_replies(plane: SecurePlane) -> None:
    names = plane.names
    await publish(plane, API, names.commands, b"{}")
    await publish(plane, WORKER, names.replies, b"{}")
    assert await consume(plane, API, names.replies, names.api_group, at_least=1) == [b"{}"]


@pytest.mark.parametrize("topic", ["replies", "events", "otp_deliveries", "dead_letters"])
async def test_the_api_principal_cannot_write_what_a_worker_writes(
    plane: SecurePlane, topic: str
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await publish(plane, API, getattr(plane.names, topic), FORGED_REPLY)


async def test_the_api_principal_cannot_read_otp_deliveries(plane: SecurePlane) -> None:
    names = plane.names
    await publish(plane, WORKER, names.otp_deliveries, b'{"otp": "123456"}')
    # In its own group, which it may use: the topic is what is refused.
    with pytest.raises(TopicAuthorizationFailedError):
        await consume(plane, API, names.otp_deliveries, names.api_group)


@pytest.mark.parametrize("principal", [API, AUDIT, FRAUD, SMS_GATEWAY, DEMO])
async def test_a_reply_forged_by_a_principal_other_than_the_worker_is_refused(
    plane: SecurePlane, principal: str
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await publish(plane, principal, plane.names.replies, FORGED_REPLY)
    # Only the worker's reply is on the topic.
    await publish(plane, WORKER, plane.names.replies, b'{"from": "worker"}')
    replies = await consume(plane, API, plane.names.replies, plane.names.api_group, at_least=1)
    assert replies == [b'{"from": "worker"}']


@pytest.mark.parametrize("principal", [WORKER, AUDIT, FRAUD, SMS_GATEWAY, DEMO])
async def test_a_command_forged_by_a_principal_other_than_the_api_is_refused(
    plane: SecurePlane, principal: str
) -> None:
    # An UnbindDevice or VerifySignature for any client_id would skip the API's token check.
    with pytest.raises(TopicAuthorizationFailedError):
        await publish(plane, principal, plane.names.commands, b'{"type": "unbind_device"}')


@pytest.mark.parametrize("principal", [API, AUDIT, FRAUD, SMS_GATEWAY, DEMO])
async def test_an_event_forged_by_a_principal_other_than_the_worker_is_refused(
    plane: SecurePlane, principal: str
) -> None:
    # Audit and fraud pipelines take the events topic as the record of what was decided.
    with pytest.raises(TopicAuthorizationFailedError):
        await publish(plane, principal, plane.names.events, b'{"type": "signature_verified"}')


@pytest.mark.parametrize(
    ("principal", "group"),
    [(WORKER, "worker_group"), (AUDIT, "audit_group"), (FRAUD, "fraud_group")],
)
async def test_no_principal_but_the_sms_gateway_reads_otp_deliveries(
    plane: SecurePlane, principal: str, group: str
) -> None:
    names = plane.names
    await publish(plane, WORKER, names.otp_deliveries, b'{"otp": "123456"}')
    # In the principal's own group, which it may use: the topic is what is refused.
    with pytest.raises(TopicAuthorizationFailedError):
        await consume(plane, principal, names.otp_deliveries, getattr(names, group))


async def test_the_sms_gateway_reads_otp_deliveries(plane: SecurePlane) -> None:
    names = plane.names
    await publish(plane, WORKER, names.otp_deliveries, b'{"otp": "123456"}')
    delivered = await consume(
        plane, SMS_GATEWAY, names.otp_deliveries, names.sms_gateway_group, at_least=1
    )
    assert delivered == [b'{"otp": "123456"}']


@pytest.mark.parametrize("topic", ["events", "commands", "replies", "dead_letters", "signals"])
async def test_the_sms_gateway_reads_nothing_else(plane: SecurePlane, topic: str) -> None:
    topic_name, group = getattr(plane.names, topic), plane.names.sms_gateway_group
    with pytest.raises(TopicAuthorizationFailedError):
        await consume(plane, SMS_GATEWAY, topic_name, group)


async def test_the_sms_gateway_joins_no_other_group(plane: SecurePlane) -> None:
    with pytest.raises(GroupAuthorizationFailedError):
        await consume(plane, SMS_GATEWAY, plane.names.otp_deliveries, plane.names.worker_group)


@pytest.mark.parametrize(
    "topic",
    ["otp_deliveries", "events", "commands", "replies", "dead_letters", "signals"],
)
async def test_the_sms_gateway_writes_nothing(plane: SecurePlane, topic: str) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await publish(plane, SMS_GATEWAY, getattr(plane.names, topic), b'{"otp": "000000"}')
