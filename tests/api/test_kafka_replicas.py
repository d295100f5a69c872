"""Against a real broker: replicas share the replies topic, yet each owns its partitions and
reads only its own replies."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import httpx
import pytest

from schemas.commands import Command
from schemas.reasons import Reason
from schemas.replies import Reply
from tests.api.apps import MakeSettings, Topics, instance_id, running_app
from tests.api.fakes import rejected, succeed
from tests.api.responder import Responder
from tests.api.tokens import TokenMint

pytestmark = pytest.mark.kafka

REQUESTS_PER_REPLICA = 15


async def test_two_replicas_each_get_exactly_their_own_replies(
    kafka_bootstrap: str, topics: Topics, kafka_settings: MakeSettings, mint: TokenMint
) -> None:
    first_id, second_id = instance_id("replica-a"), instance_id("replica-b")
    other = {first_id: second_id, second_id: first_id}

    def answer(command: Command) -> Sequence[Reply | bytes]:
        # Before the real reply, on the same partition: noise every replica must survive,
        # and a reply with the same command id addressed to the other replica.
        assert command.reply_to is not None
        decoy = rejected(command, Reason.NOT_FOUND).model_copy(
            update={"reply_to": other[command.reply_to]}
        )
        return [b"not a reply", b'{"command_id": "nope"}', decoy, succeed(command)]

    async with (
        Responder(
            kafka_bootstrap,
            commands_topic=topics.commands,
            replies_topic=topics.replies,
            script=answer,
        ) as worker,
        running_app(kafka_settings(instance_id=first_id)) as first,
        running_app(kafka_settings(instance_id=second_id)) as second,
    ):

        async def read(client: httpx.AsyncClient, challenge_id: uuid.UUID) -> str:
            url = f"/v1/mfa/challenges/signatures/{challenge_id}"
            response = await client.get(url, headers=mint.headers())
            assert response.status_code == 200, response.text
            return str(response.json()["id"])

        wanted = [
            (replica, uuid.uuid4())
            for _ in range(REQUESTS_PER_REPLICA)
            for replica in (first, second)
        ]
        answered = await asyncio.gather(*(read(app.client, cid) for app, cid in wanted))

    assert answered == [str(challenge_id) for _, challenge_id in wanted]
    senders = [command.reply_to for _, command in worker.received]
    assert senders.count(first_id) == senders.count(second_id) == REQUESTS_PER_REPLICA
    # Each replica named one partition of its own in every command: the worker's replies to
    # one never reach the other's partitions.
    named: dict[str | None, set[int | None]] = {first_id: set(), second_id: set()}
    for _, command in worker.received:
        named[command.reply_to].add(worker.reply_partitions[str(command.command_id)])
    assert len(named[first_id]) == len(named[second_id]) == 1
    assert None not in named[first_id] | named[second_id]
    assert named[first_id].isdisjoint(named[second_id])
