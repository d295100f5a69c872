"""The gateway's bookkeeping, without a broker: futures, shutdown, not being ready."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from api.errors import ServiceUnavailable
from api.gateway import KafkaGateway
from api.replies import RepliesStopped, ReplyListener
from schemas.commands import GetChallenge
from tests.api.apps import MakeSettings


def _listener() -> ReplyListener:
    return ReplyListener(bootstrap_servers="127.0.0.1:1", topic="replies", instance_id="me")


async def test_leaving_the_block_forgets_the_request() -> None:
    listener = _listener()
    command_id = uuid.uuid4()
    with listener.expect(command_id, 0) as reply:
        pass
    assert reply.cancelled()
    # The id is free again: nothing was left behind.
    with listener.expect(command_id, 0) as again:
        assert not again.done()


async def test_one_waiter_per_command() -> None:
    listener = _listener()
    command_id = uuid.uuid4()
    with (
        listener.expect(command_id, 0),
        pytest.raises(ValueError, match="already waiting"),
        listener.expect(command_id, 0),
    ):
        pass


async def test_stopping_fails_the_requests_still_waiting() -> None:
    listener = _listener()
    with listener.expect(uuid.uuid4(), 0) as reply:
        await listener.stop()
        with pytest.raises(RepliesStopped):
            await reply


async def test_not_ready_gateway_refuses_at_once(make_settings: MakeSettings) -> None:
    gateway = KafkaGateway(make_settings(retry_after_seconds=9))
    assert not gateway.ready
    assert not await gateway.wait_ready(0.01)
    command = GetChallenge(
        command_id=uuid.uuid4(),
        request_id="r-1",
        client_id="bank-app-1",
        reply_to=gateway.instance_id,
        issued_at=datetime.now(UTC),
        challenge_id=uuid.uuid4(),
    )
    with pytest.raises(ServiceUnavailable) as refused:
        await gateway.send(command)
    assert refused.value.headers == {"Retry-After": "9"}
    await gateway.stop()
