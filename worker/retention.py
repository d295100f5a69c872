"""Refusals past their retention period, deleted (SPEC §9's bound on what attackers can make
the store keep).

Refusals that count nothing (an unknown or foreign challenge id, a spent challenge) are
stored so that a redelivered command, or an identical request, is answered with the very
decision and event it had. Past ``retention`` neither can come any more (commands are long
gone from Kafka's topic), so the rows are deleted, a bounded slice at a time so that no
transaction holds the write lock for long.
"""

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from worker.sweeping import Sweeper
from worker.tables import RefusalRow

SLICE = 1_000


class RefusalSweeper(Sweeper):
    task_name = "refusal-retention"
    swept_message = "deleted %d refusals past their retention"

    def __init__(
        self, engine: AsyncEngine, *, retention: timedelta, interval_seconds: float = 60.0
    ) -> None:
        super().__init__(interval_seconds=interval_seconds)
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._retention = retention

    async def sweep(self, now: datetime | None = None) -> int:
        """Delete the refusals decided before ``now`` minus the retention; how many."""
        cutoff = (now or datetime.now(UTC)) - self._retention
        deleted = 0
        while True:
            async with self._sessions() as session, session.begin():
                # By the decided_at index, oldest first, one slice per transaction.
                oldest = (
                    select(RefusalRow.command_id)
                    .where(RefusalRow.decided_at < cutoff)
                    .order_by(RefusalRow.decided_at)
                    .limit(SLICE)
                )
                result = await session.execute(
                    delete(RefusalRow).where(RefusalRow.command_id.in_(oldest))
                )
            count: int = result.rowcount  # type: ignore[attr-defined]
            deleted += count
            if count < SLICE:
                return deleted
