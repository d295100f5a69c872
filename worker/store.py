"""The challenge/device store for the commands off the hot path: registrations, unbinding,
the OTP lease, the reads (signature attempts have :mod:`worker.attempts.store`).

Commands for one challenge arrive in order on one partition, but a rebalance can hand the
same command to two workers for a moment, and several worker processes share the database:
each transition names the state it expects in its ``WHERE`` clause and reports whether it
happened; the caller re-reads and decides again when it did not.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Update, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from schemas.challenges import ChallengeStatus
from schemas.devices import DeviceStatus
from schemas.reasons import Reason
from worker.decisions.persons import (
    MAX_PENDING_CHALLENGES,
    OTP_WINDOW,
    Limited,
    registration_limited,
)
from worker.people import person_state
from worker.tables import ChallengeRow, DeviceChallengeRow, DeviceKeyRow, DeviceRow


@dataclass(frozen=True)
class Binding:
    """A challenge with the device it would bind."""

    challenge: ChallengeRow
    device: DeviceRow


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    # Registration

    async def find_registration(self, command_id: str) -> Binding | None:
        """The device and challenge a (possibly redelivered) register command created."""
        return await self._binding_where(DeviceRow.created_by_command == command_id)

    async def register(
        self,
        device: DeviceRow,
        challenge: ChallengeRow,
        key: DeviceKeyRow,
        *,
        max_bound: int,
        otp_sends_per_hour: int,
        max_pending: int = MAX_PENDING_CHALLENGES,
    ) -> Limited | None:
        """Insert a pending device, its challenge and its key, unless a limit of the person
        refuses it (SPEC §9: a lock, pending challenges, OTPs in the hour; or the bound
        devices), checked in the same transaction. A concurrent insert of the same command
        raises IntegrityError for the caller to treat as a replay."""
        now = challenge.created_at
        async with self._sessions() as session, session.begin():
            person = await person_state(session, device.client_id, device.person_id)
            recent = (
                await session.execute(
                    select(ChallengeRow.created_at, ChallengeRow.status, ChallengeRow.expires_at)
                    .join(DeviceRow, ChallengeRow.device_id == DeviceRow.id)
                    .where(
                        DeviceRow.client_id == device.client_id,
                        DeviceRow.person_id == device.person_id,
                        ChallengeRow.created_at > now - OTP_WINDOW,
                    )
                )
            ).all()
            limited = registration_limited(
                person,
                [expires for _, status, expires in recent if status == ChallengeStatus.PENDING],
                [created for created, _, _ in recent],
                now=now,
                otp_sends_per_hour=otp_sends_per_hour,
                max_pending=max_pending,
            )
            if limited is not None:
                return limited
            if await _bound_devices(session, device.client_id, device.person_id) >= max_bound:
                return Limited(Reason.DEVICE_LIMIT_REACHED)
            session.add(device)
            await session.flush()  # the device first: the challenge and key refer to it
            session.add_all([challenge, key])
        return None

    async def claim_otp_delivery(
        self,
        challenge_id: str,
        *,
        digest: bytes,
        claim: str,
        now: datetime,
        previous_claim: str | None,
    ) -> bool:
        """Take over the delivery of a pending challenge's OTP that never left a worker: a
        new OTP (its digest) and a new lease, provided nobody delivered or claimed it since
        the caller read ``previous_claim``."""
        previous = (
            ChallengeRow.otp_delivery_claim.is_(None)
            if previous_claim is None
            else ChallengeRow.otp_delivery_claim == previous_claim
        )
        return await self._update(
            update(ChallengeRow)
            .where(
                ChallengeRow.id == challenge_id,
                ChallengeRow.status == ChallengeStatus.PENDING,
                ChallengeRow.otp_delivered.is_(False),
                previous,
            )
            .values(otp_digest=digest, otp_delivery_claim=claim, otp_delivery_claimed_at=now)
        )

    async def mark_otp_delivered(self, challenge_id: str, claim: str) -> bool:
        """Record the delivery under ``claim``; False when another worker took the lease over
        meanwhile (the OTP just sent was then replaced, and the other one counts)."""
        return await self._update(
            update(ChallengeRow)
            .where(ChallengeRow.id == challenge_id, ChallengeRow.otp_delivery_claim == claim)
            .values(otp_delivered=True)
        )

    async def release_otp_claim(self, challenge_id: str, claim: str) -> None:
        """End a lease early: its delivery failed, so a retry need not wait for it to expire."""
        await self._update(
            update(ChallengeRow)
            .where(
                ChallengeRow.id == challenge_id,
                ChallengeRow.otp_delivery_claim == claim,
                ChallengeRow.otp_delivered.is_(False),
            )
            .values(otp_delivery_claimed_at=None)
        )

    # Verification

    async def find_binding(self, challenge_id: str) -> Binding | None:
        return await self._binding_where(ChallengeRow.id == challenge_id)

    # Devices

    async def find_device(self, device_id: str) -> DeviceRow | None:
        async with self._sessions() as session:
            return await session.get(DeviceRow, device_id)

    async def challenge_of(self, device_id: str) -> ChallengeRow | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(ChallengeRow).where(ChallengeRow.device_id == device_id)
            )

    async def list_bound(self, client_id: str, person_id: str) -> Sequence[DeviceRow]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(DeviceRow)
                .where(
                    DeviceRow.client_id == client_id,
                    DeviceRow.person_id == person_id,
                    DeviceRow.status == DeviceStatus.BOUND,
                )
                .order_by(DeviceRow.bound_at, DeviceRow.id)
            )
            return rows.all()

    async def unbind(
        self, device_id: str, *, command_id: str, request_id: str, now: datetime
    ) -> bool:
        """Unbind a pending or bound device: its binding challenge, if still pending, ends
        (expired, its digest dropped: SPEC §4), its open device challenges end likewise, its
        keys are removed (SPEC §8). One transaction: all of it, or none."""
        try:
            async with self._sessions() as session, session.begin():
                await _update_one(
                    session,
                    update(DeviceRow)
                    .where(DeviceRow.id == device_id, DeviceRow.status != DeviceStatus.UNBOUND)
                    .values(
                        status=DeviceStatus.UNBOUND,
                        unbound_at=now,
                        unbound_by_command=command_id,
                        unbound_by_request=request_id,
                    ),
                )
                await session.execute(
                    update(ChallengeRow)
                    .where(
                        ChallengeRow.device_id == device_id,
                        ChallengeRow.status == ChallengeStatus.PENDING,
                    )
                    .values(status=ChallengeStatus.EXPIRED, otp_digest=None, decided_at=now)
                )
                await session.execute(
                    update(DeviceChallengeRow)
                    .where(
                        DeviceChallengeRow.device_id == device_id,
                        DeviceChallengeRow.status == ChallengeStatus.PENDING,
                    )
                    .values(status=ChallengeStatus.EXPIRED, message_digest=None, decided_at=now)
                )
                await session.execute(
                    delete(DeviceKeyRow).where(DeviceKeyRow.device_id == device_id)
                )
        except _Stale:
            return False
        return True

    async def _binding_where(self, condition: ColumnElement[bool]) -> Binding | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(ChallengeRow, DeviceRow)
                    .join(DeviceRow, ChallengeRow.device_id == DeviceRow.id)
                    .where(condition)
                )
            ).first()
        return Binding(challenge=row[0], device=row[1]) if row else None

    async def _update(self, statement: Update) -> bool:
        try:
            async with self._sessions() as session, session.begin():
                await _update_one(session, statement)
        except _Stale:
            return False
        return True


class _Stale(Exception):
    """The row was not in the state its caller read: the transaction is rolled back whole."""


async def _update_one(session: AsyncSession, statement: Update) -> None:
    """Run a conditional update that must change exactly one row, else raise :class:`_Stale`."""
    result = await session.execute(statement)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise _Stale


async def _bound_devices(session: AsyncSession, client_id: str, person_id: str) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(DeviceRow)
        .where(
            DeviceRow.client_id == client_id,
            DeviceRow.person_id == person_id,
            DeviceRow.status == DeviceStatus.BOUND,
        )
    )
    return count or 0
