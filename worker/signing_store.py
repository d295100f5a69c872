"""The store of device signing off the hot path: a device's keys, opening device challenges,
adding keys, the reads (signatures on device challenges have :mod:`worker.attempts.store`).

A challenge or key is inserted only while its device is bound: the device row is read
``FOR UPDATE`` in the inserting transaction, so on PostgreSQL an unbinding waits for it (and
then ends the challenge, removes the key) or goes first (and the insert is refused). SQLite
has no row locks: there an unbinding may slip between the read and the insert, which
leaves a pending challenge on an unbound device; every decision checks the device's status
(:func:`worker.decisions.attempts.owns`), so such a challenge answers ``not_found``, as the
device's other challenges do.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from schemas.devices import DeviceStatus
from worker.tables import DeviceChallengeRow, DeviceKeyRow, DeviceRow


@dataclass(frozen=True)
class DeviceChallenge:
    """A device challenge with its device."""

    challenge: DeviceChallengeRow
    device: DeviceRow


class SigningStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def device_and_keys(self, device_id: str) -> tuple[DeviceRow | None, list[DeviceKeyRow]]:
        async with self._sessions() as session:
            device = await session.get(DeviceRow, device_id)
            keys = list(await _keys(session, device_id)) if device is not None else []
        return device, keys

    async def challenge_opened_by(self, command_id: str) -> DeviceChallengeRow | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(DeviceChallengeRow).where(
                    DeviceChallengeRow.created_by_command == command_id
                )
            )

    async def device_challenge(self, challenge_id: str) -> DeviceChallenge | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(DeviceChallengeRow, DeviceRow)
                    .join(DeviceRow, DeviceChallengeRow.device_id == DeviceRow.id)
                    .where(DeviceChallengeRow.id == challenge_id)
                )
            ).first()
        return DeviceChallenge(challenge=row[0], device=row[1]) if row else None

    async def key_added_by(self, command_id: str) -> DeviceKeyRow | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(DeviceKeyRow).where(DeviceKeyRow.created_by_command == command_id)
            )

    async def insert_while_bound(self, row: DeviceChallengeRow | DeviceKeyRow) -> bool:
        """Insert ``row`` if its device is still bound; False if it is not. A key whose
        purpose the device took meanwhile raises IntegrityError (the unique constraint)."""
        async with self._sessions() as session, session.begin():
            status = await session.scalar(
                select(DeviceRow.status).where(DeviceRow.id == row.device_id).with_for_update()
            )
            if status != DeviceStatus.BOUND:
                return False
            session.add(row)
        return True


async def _keys(session: AsyncSession, device_id: str) -> Sequence[DeviceKeyRow]:
    rows = await session.scalars(
        select(DeviceKeyRow)
        .where(DeviceKeyRow.device_id == device_id)
        .order_by(DeviceKeyRow.created_at, DeviceKeyRow.id)
    )
    return rows.all()
