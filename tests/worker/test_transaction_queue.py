"""The order of store transactions, and the halt after one fails (worker/attempts/store.py)."""

from __future__ import annotations

import asyncio

import pytest

from worker.attempts.transactions import Halted, TransactionQueue


async def test_transactions_run_one_at_a_time_in_the_order_queued() -> None:
    queue = TransactionQueue()
    log: list[str] = []

    def transaction(name: str, pause: float) -> asyncio.Future[str]:
        async def run() -> str:
            log.append(f"{name} begins")
            await asyncio.sleep(pause)
            log.append(f"{name} ends")
            return name

        return queue.submit(run)

    # The first takes longest: the others still wait for it.
    results = await asyncio.gather(transaction("a", 0.03), transaction("b", 0), transaction("c", 0))

    assert list(results) == ["a", "b", "c"]
    assert log == ["a begins", "a ends", "b begins", "b ends", "c begins", "c ends"]


async def test_after_a_failure_the_queued_ones_do_not_run_until_resumed() -> None:
    queue = TransactionQueue()
    ran: list[str] = []

    async def fails() -> str:
        raise OSError("disk gone")

    def records(name: str) -> asyncio.Future[str]:
        async def run() -> str:
            ran.append(name)
            return name

        return queue.submit(run)

    failed, behind = queue.submit(fails), records("behind")
    with pytest.raises(OSError, match="disk gone"):
        await failed
    with pytest.raises(Halted):
        await behind
    assert ran == []
    with pytest.raises(Halted):
        await records("still halted")

    queue.resume()
    assert await records("again") == "again"
    assert ran == ["again"]
