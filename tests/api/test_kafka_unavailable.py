"""Against a real broker: what callers get when Kafka or the worker does not answer."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Iterator

import pytest

from harness.topics import create_topics, unique_name
from schemas.commands import Command
from tests.api.apps import MakeSettings, Topics, instance_id, running_app
from tests.api.fakes import ok
from tests.api.requests import SIGNATURE
from tests.api.responder import Responder, silent
from tests.api.shapes import assert_flat
from tests.api.tokens import TokenMint

pytestmark = pytest.mark.kafka

# Only a guard: a start-up that hangs fails here instead of stalling the suite.
STARTUP_GUARD_SECONDS = 120


@pytest.fixture
def unused_port() -> Iterator[int]:
    """A local port nobody listens on (held bound, so connecting to it is refused)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


async def test_no_reply_in_time_is_verification_pending(
    kafka_bootstrap: str,
    topics: Topics,
    kafka_settings: MakeSettings,
    mint: TokenMint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = kafka_settings(
        instance_id=instance_id("pending"), reply_wait_seconds=2.0, retry_after_seconds=3
    )
    url = f"/v1/mfa/challenges/signatures/{uuid.uuid4()}"
    body = {"signature": SIGNATURE}
    async with (
        Responder(
            kafka_bootstrap,
            commands_topic=topics.commands,
            replies_topic=topics.replies,
            script=silent,
        ) as worker,
        running_app(settings) as api,
    ):
        first = await api.client.put(url, json=body, headers=mint.headers())
        assert_flat(first, 503, "verification_pending")
        assert first.headers["Retry-After"] == "3"

        # The worker decides after all: its reply finds no one waiting and is dropped...
        late: Command = await worker.commands.get()
        worker.script = lambda command: [ok(command)]
        with caplog.at_level(logging.INFO, logger="api.replies"):
            await worker.publish(late, ok(late))
            # ...and the client's retry of the same call gets the real outcome.
            retry = await api.client.put(url, json=body, headers=mint.headers())
        assert retry.status_code == 204, retry.text

    assert f"reply to command {late.command_id} came after its request ended" in caplog.text
    first_attempt, second_attempt = (command for _, command in worker.received)
    assert first_attempt.command_id != second_attempt.command_id


async def test_command_kafka_cannot_take_is_service_unavailable(
    kafka_bootstrap: str, topics: Topics, kafka_settings: MakeSettings, mint: TokenMint
) -> None:
    # Kafka is up but has no such topic (and never creates one by itself).
    settings = kafka_settings(
        instance_id=instance_id("no-topic"),
        commands_topic=unique_name("never-created"),
        publish_timeout_seconds=1.0,
        retry_after_seconds=2,
    )
    async with running_app(settings) as api:
        assert api.gateway.ready
        url = f"/v1/mfa/challenges/signatures/{uuid.uuid4()}"
        response = await api.client.put(url, json={"signature": SIGNATURE}, headers=mint.headers())
    assert_flat(response, 503, "service_unavailable")
    assert response.headers["Retry-After"] == "2"


async def test_kafka_unreachable_at_start_up(
    make_settings: MakeSettings, mint: TokenMint, unused_port: int
) -> None:
    settings = make_settings(
        kafka_bootstrap_servers=f"127.0.0.1:{unused_port}",
        kafka_connect_timeout_seconds=0.5,
        publish_timeout_seconds=0.5,
        retry_after_seconds=5,
        instance_id=instance_id("unreachable"),
    )
    async with asyncio.timeout(STARTUP_GUARD_SECONDS), running_app(settings) as api:
        # Started anyway: alive, not ready, and every command refused without waiting.
        assert not api.gateway.ready
        assert (await api.admin.get("/healthz")).status_code == 200
        assert_flat(await api.admin.get("/readyz"), 503, "service_unavailable")
        url = f"/v1/mfa/challenges/signatures/{uuid.uuid4()}"
        response = await api.client.put(url, json={"signature": SIGNATURE}, headers=mint.headers())
        assert_flat(response, 503, "service_unavailable")
        assert response.headers["Retry-After"] == "5"
        created = await api.client.post("/v1/mfa/devices", json={}, headers=mint.headers())
        # Validation still answers: it needs no Kafka.
        assert_flat(created, 400, "validation_error")


async def test_becomes_ready_once_kafka_has_the_topics(
    kafka_bootstrap: str, make_settings: MakeSettings, mint: TokenMint
) -> None:
    topics = Topics(commands=unique_name("late-commands"), replies=unique_name("late-replies"))
    settings = make_settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        commands_topic=topics.commands,
        replies_topic=topics.replies,
        kafka_connect_timeout_seconds=1.0,
        instance_id=instance_id("late-topics"),
    )
    url = f"/v1/mfa/devices/{uuid.uuid4()}"
    async with asyncio.timeout(STARTUP_GUARD_SECONDS), running_app(settings) as api:
        assert not api.gateway.ready
        refused = await api.client.get(url, headers=mint.headers())
        assert_flat(refused, 503, "service_unavailable")

        await create_topics(kafka_bootstrap, topics.commands, topics.replies, partitions=2)
        assert await api.gateway.wait_ready(STARTUP_GUARD_SECONDS)
        async with Responder(
            kafka_bootstrap,
            commands_topic=topics.commands,
            replies_topic=topics.replies,
            script=lambda command: [ok(command, None)],
        ):
            response = await api.client.delete(
                url.replace("challenges/signatures", "devices"), headers=mint.headers()
            )
        assert response.status_code == 204, response.text
