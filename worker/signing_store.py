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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from schemas.devices import DeviceStatus
from schemas.reasons import Reason
from worker.decisions.persons import LockEvent, PersonCounts
from worker.people import person_state, store_person
from worker.state import PersonChange, PersonState
from worker.tables import DeviceChallengeRow, DeviceKeyRow, DeviceRow, RefusalRow


@dataclass(frozen=True)
class DeviceChallenge:
    """A device challenge with its device."""

    challenge: DeviceChallengeRow
    device: DeviceRow


class SigningStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.key_failures = KeyFailures(self._sessions)

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

    async def person(self, client_id: str, person_id: str) -> PersonState | None:
        async with self._sessions() as session:
            return await person_state(session, client_id, person_id)

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


class KeyFailures:
    """Wrong signatures on key additions, counted towards the person's failures (SPEC §8,
    §9) exactly once per command: the refusal is stored with the count, and a redelivered
    command finds it."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def count(
        self,
        device: DeviceRow,
        *,
        command_id: str,
        now: datetime,
        lock_for: timedelta,
        lock_event: LockEvent,
    ) -> str | None:
        """Count the failure of key addition ``command_id``; the person_locked event's JSON
        if this failure locked the person (again on a redelivery of that command)."""
        owner = (device.client_id, device.person_id)
        attempt = f"key:{command_id}"
        async with self._sessions() as session, session.begin():
            person = await person_state(session, *owner)
            if await session.get(RefusalRow, command_id) is not None:
                return _lock_of(person, attempt)
            counts = PersonCounts({owner: person} if person else {}, now=now, lock_for=lock_for)
            lock = counts.failed(owner, attempt=attempt, lock_event=lock_event)
            await store_person(session, counts.changes[owner])
            # No event for a refused key addition (SPEC §8 names none): the row only marks
            # the command as counted.
            session.add(
                RefusalRow(
                    command_id=command_id,
                    challenge_id=device.id,
                    reason=Reason.INVALID_SIGNATURE.value,
                    event_json="",
                    decided_at=now,
                )
            )
        return lock

    async def reset(self, client_id: str, person_id: str) -> None:
        """A verified signature (a key added) ends the run of failures."""
        async with self._sessions() as session, session.begin():
            person = await person_state(session, client_id, person_id)
            if person is None or not person.consecutive_failures:
                return
            cleared = replace(person, consecutive_failures=0)
            await store_person(session, PersonChange(client_id, person_id, cleared))


def _lock_of(person: PersonState | None, attempt: str) -> str | None:
    if person is None or person.locked_by != attempt:
        return None
    return person.lock_event_json


async def _keys(session: AsyncSession, device_id: str) -> Sequence[DeviceKeyRow]:
    rows = await session.scalars(
        select(DeviceKeyRow)
        .where(DeviceKeyRow.device_id == device_id)
        .order_by(DeviceKeyRow.created_at, DeviceKeyRow.id)
    )
    return rows.all()
