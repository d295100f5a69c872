"""The order a store's transactions run in: one after another, as queued, so that a
partition's commands are decided in order however many batches are in flight; and after a
failure none of those queued behind it, until the consumer has read them again."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from worker.decisions.attempts import AttemptDecisions, AttemptState
from worker.errors import WorkerError

# The decision of a batch, given its state: verifies the batch's signatures, then decides.
Decide = Callable[[AttemptState], Awaitable[AttemptDecisions]]
T = TypeVar("T")


class Halted(WorkerError):
    """Not run: a transaction queued before this one failed (transient: read it again)."""


class TransactionQueue:
    """Transactions (coroutines) run one after another in the order queued; after one fails,
    those behind it raise :class:`Halted` without running until :meth:`resume`."""

    def __init__(self) -> None:
        self._last: asyncio.Future[Any] | None = None
        self._halted = False

    def submit(self, transaction: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        previous = self._last

        async def in_turn() -> T:
            if previous is not None:
                await asyncio.wait([previous])  # its outcome is its own submitter's to read
            if self._halted:
                raise Halted("a transaction queued before this one failed")
            try:
                return await transaction()
            except BaseException:
                self._halted = True
                raise

        self._last = queued = asyncio.ensure_future(in_turn())
        return queued

    def resume(self) -> None:
        self._halted = False
