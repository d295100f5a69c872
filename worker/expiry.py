"""Pending challenges past their expiry, marked expired and their digests dropped (SPEC §4,
§9: the store keeps what verification needs only while a challenge is pending, and expired
challenges are swept within a minute).

Without the sweep a challenge nobody answers would keep its (sealed) OTP digest for ever:
the decisions mark a challenge expired only when an attempt arrives after its expiry. The
sweep is set-based, by a partial index on pending challenges' expiry, a bounded slice per
transaction so that no transaction holds SQLite's write lock for long; every worker process
runs it, and running it twice changes nothing.

It publishes nothing: SPEC §5's events are one per attempt, and an expiry is no attempt. A
later attempt is refused ``challenge_expired`` as before, with its event.
"""

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from schemas.challenges import ChallengeStatus
from worker.sweeping import Sweeper
from worker.tables import ChallengeRow, DeviceChallengeRow

SLICE = 1_000


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ExpirySweeper(Sweeper):
    task_name = "challenge-expiry"
    swept_message = "expired %d challenges past their expiry"

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        interval_seconds: float = 30.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        super().__init__(interval_seconds=interval_seconds)
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    async def sweep(self) -> int:
        """Expire every pending challenge (binding and device) whose expiry has passed,
        dropping its digest; how many."""
        now = self._clock()
        swept = 0
        for table, digest in (
            (ChallengeRow, ChallengeRow.otp_digest),
            (DeviceChallengeRow, DeviceChallengeRow.message_digest),
        ):
            while True:
                async with self._sessions() as session, session.begin():
                    due = (
                        select(table.id)
                        .where(table.status == ChallengeStatus.PENDING, table.expires_at <= now)
                        .limit(SLICE)
                    )
                    result = await session.execute(
                        update(table)
                        # Pending again in the WHERE: an attempt may have decided it meanwhile.
                        .where(table.id.in_(due), table.status == ChallengeStatus.PENDING)
                        .values(
                            {
                                table.status: ChallengeStatus.EXPIRED,
                                digest: None,
                                table.decided_at: now,
                            }
                        )
                        .execution_options(synchronize_session=False)
                    )
                count: int = result.rowcount  # type: ignore[attr-defined]
                swept += count
                if count < SLICE:
                    break
        return swept
