"""A store clean-up every worker process runs in the background, round after round.

The expiry of pending challenges and the deletion of refusals past their retention share
this loop: a round that fails is logged and the next one tries again (a sweep is idempotent,
so running it twice, or in every process, changes nothing).
"""

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod

logger = logging.getLogger(__name__)


class Sweeper(ABC):
    """``sweep()`` every ``interval_seconds`` between ``start()`` and ``stop()``."""

    # The task's name, and what a round did ("expired %d ...", with its count).
    task_name: str
    swept_message: str

    def __init__(self, *, interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def sweep(self) -> int:
        """One round; how many rows it cleaned."""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                swept = await self.sweep()
                if swept:
                    logger.info(self.swept_message, swept)
            except Exception:
                # The next round tries again; rows kept a round longer harm nobody.
                logger.exception("%s failed", self.task_name)
            await asyncio.sleep(self._interval)
