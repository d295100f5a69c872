"""Offsets committed in order, after the acknowledgements, coalesced (worker/commits.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka.structs import TopicPartition

from worker.commits import CommitQueue

P0, P1 = TopicPartition("commands", 0), TopicPartition("commands", 1)


class Consumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


def pending() -> asyncio.Future[object]:
    return asyncio.get_running_loop().create_future()


@pytest.fixture
async def queue_and_consumer() -> AsyncIterator[tuple[CommitQueue, Consumer]]:
    consumer = Consumer()
    queue = CommitQueue(consumer, max_in_flight=8, interval=0.05)
    queue.start()
    yield queue, consumer
    await queue.stop()


async def test_nothing_is_committed_before_its_acknowledgements(
    queue_and_consumer: tuple[CommitQueue, Consumer],
) -> None:
    queue, consumer = queue_and_consumer
    ack = pending()
    await queue.add({P0: 10}, [ack])
    await asyncio.sleep(0.1)
    assert consumer.commits == []
    ack.set_result(None)
    await queue.settled()
    assert consumer.commits == [{P0: 10}]


async def test_a_later_batch_acknowledged_first_waits_for_the_earlier_one(
    queue_and_consumer: tuple[CommitQueue, Consumer],
) -> None:
    queue, consumer = queue_and_consumer
    first, second = pending(), pending()
    await queue.add({P0: 10}, [first])
    await queue.add({P0: 20, P1: 5}, [second])
    second.set_result(None)
    await asyncio.sleep(0.1)
    assert consumer.commits == []
    first.set_result(None)
    await queue.settled()
    # Both in one commit, the later offsets winning.
    assert consumer.commits == [{P0: 20, P1: 5}]


async def test_commits_are_coalesced_within_the_interval(
    queue_and_consumer: tuple[CommitQueue, Consumer],
) -> None:
    queue, consumer = queue_and_consumer
    for offset in range(1, 6):
        done = pending()
        done.set_result(None)
        await queue.add({P0: offset}, [done])
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.2)
    assert consumer.commits[-1] == {P0: 5}
    assert len(consumer.commits) < 5


async def test_a_failed_acknowledgement_commits_nothing_from_its_batch_on(
    queue_and_consumer: tuple[CommitQueue, Consumer],
) -> None:
    queue, consumer = queue_and_consumer
    ok, broken, later = pending(), pending(), pending()
    ok.set_result(None)
    await queue.add({P0: 10}, [ok])
    await queue.settled()
    await queue.add({P0: 20}, [broken])
    await queue.add({P0: 30}, [later])
    broken.set_exception(ConnectionError("broker gone"))
    later.set_result(None)
    await queue.settled()
    assert consumer.commits == [{P0: 10}]
    assert isinstance(queue.failed, ConnectionError)
    # Until reset, a batch handed in is dropped: committing it would skip the failed one.
    done = pending()
    done.set_result(None)
    await queue.add({P0: 40}, [done])
    await asyncio.sleep(0.1)
    assert consumer.commits == [{P0: 10}]
    queue.reset()
    await queue.add({P0: 50}, [done])
    await queue.settled()
    assert consumer.commits[-1] == {P0: 50}
