"""The worker's pipeline against a real broker: batches decided while earlier ones are being
announced, a store transaction failing mid-stream, and nothing lost, doubled or reordered.

Hundreds of commands are on the topic before the worker starts, so batches are full and
several are in flight at once. One store transaction fails once (as a full disk or a lost
database would make it); the transactions queued behind it must not run, and every
partition must be read again from its committed offset. Some challenges get a wrong
signature and then the right one in later commands: decided out of order, the wrong one
would be answered ``challenge_already_verified`` instead of counted.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.seed import seed
from schemas.commands import COMMAND_ADAPTER, VerifySignature, command_key
from schemas.replies import Reply
from tests.support.worker import command_client, running_worker, worker_settings
from worker.app import Worker
from worker.attempts.reads import BatchReads
from worker.attempts.sqlite import SqliteAttemptStore
from worker.decisions.attempts import AttemptDecisions, AttemptState

pytestmark = pytest.mark.kafka

CHALLENGES = 400
TWICE = 40  # challenges that get a wrong signature first, then the right one
WRONG = "3006020101020101"


class FailsOnce:
    """Wraps a store's transaction: the ``nth`` one raises instead of committing."""

    def __init__(
        self, transaction: Callable[..., Awaitable[AttemptDecisions]], *, nth: int
    ) -> None:
        self._transaction = transaction
        self._nth = nth
        self.calls = 0

    async def __call__(
        self, reads: BatchReads, decide: Callable[[AttemptState], Awaitable[AttemptDecisions]]
    ) -> AttemptDecisions:
        self.calls += 1
        if self.calls == self._nth:
            raise sqlite3.OperationalError("disk I/O error")
        return await self._transaction(reads, decide)


async def test_a_failed_transaction_mid_stream_loses_doubles_and_reorders_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    database = tmp_path / "store.db"
    settings = worker_settings(kafka_bootstrap, database, topic_partitions=4, batch_max_records=50)
    # The store's schema first (the worker would make it as it starts), then the challenges.
    async with running_worker(settings):
        pass
    tickets = seed(f"sqlite+aiosqlite:///{database}", CHALLENGES, client_id="bank-1")

    def command(challenge_id: str, signature: str) -> VerifySignature:
        return VerifySignature(
            command_id=uuid.uuid4(),
            request_id=f"req-{uuid.uuid4().hex[:8]}",
            client_id="bank-1",
            reply_to="api-test",
            issued_at=datetime.now(UTC),
            challenge_id=uuid.UUID(challenge_id),
            signature=signature,
        )

    # The wrong signatures spread through the stream, each challenge's right one well after
    # it (other batches between), so that batches decided out of order would show.
    twice, once = tickets[:TWICE], tickets[TWICE:]
    commands = []
    for number, ticket in enumerate(once):
        commands.append(command(ticket.challenge_id, ticket.signature))
        if number % 9 == 0 and number // 9 < TWICE:
            commands.append(command(twice[number // 9].challenge_id, WRONG))
    commands += [command(t.challenge_id, t.signature) for t in twice]

    async with command_client(settings) as client:
        for item in commands:
            await client.send_raw(COMMAND_ADAPTER.dump_json(item), key=command_key(item))
        worker = Worker(settings)
        store = worker.attempts
        assert isinstance(store, SqliteAttemptStore)
        # Before the worker starts: its very first batches are already on the topic.
        flaky = FailsOnce(store._transaction, nth=3)
        store._transaction = flaky  # type: ignore[method-assign]
        await worker.start()
        try:
            await client.replies.wait_for(_to("api-test"), count=len(commands))
            await client.events.wait_for(lambda record: True, count=len(commands))
        finally:
            await worker.stop()
        replies = [Reply.model_validate(r["value"]) for r in client.replies.records]
        events = [r["value"] for r in client.events.records]

    assert flaky.calls > 3  # the failure happened, and work went on after it
    by_command: dict[uuid.UUID, Reply] = {}
    for reply in replies:
        # A batch announced again repeats its replies: each the same as the first.
        assert by_command.setdefault(reply.command_id, reply) == reply
    assert len(by_command) == len(commands)
    outcomes: Counter[str] = Counter(r.reason or r.outcome for r in by_command.values())
    # Every wrong signature was counted before its right one: none was refused as spent.
    assert outcomes == {"ok": CHALLENGES, "invalid_signature": TWICE}
    # One event per command; copies (a batch announced again) keep their id and content.
    ids: dict[str, Any] = {}
    for event in events:
        assert ids.setdefault(event["id"], event) == event
    assert len(ids) == len(commands)
    numbers = _attempt_numbers(database)
    assert numbers == Counter({1: CHALLENGES, 2: TWICE})


def _to(reply_to: str) -> Callable[[dict[str, Any]], bool]:
    def addressed(record: dict[str, Any]) -> bool:
        return bool(record["value"]) and record["value"].get("reply_to") == reply_to

    return addressed


def _attempt_numbers(database: Path) -> Counter[int]:
    with sqlite3.connect(database) as connection:
        return Counter(number for (number,) in connection.execute("SELECT number FROM attempts"))
