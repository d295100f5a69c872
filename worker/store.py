"""The challenge/device store. Every state change is a conditional update guarded in SQL.

Commands for one challenge arrive in order on one partition, but a rebalance can hand the
same command to two workers for a moment, and several worker processes share the database.
So no method trusts what its caller read before: each transition names the state it expects
in its ``WHERE`` clause and reports whether it happened. The caller re-reads and decides
again when it did not. A unique constraint on (challenge, signature) makes counting an
attempt twice impossible.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Update, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from schemas.challenges import ChallengeStatus
from schemas.devices import MAX_BOUND_DEVICES_PER_PERSON, DeviceStatus
from worker.errors import DeviceLimitReached
from worker.tables import AttemptRow, ChallengeRow, DeviceRow, RefusalRow


@dataclass(frozen=True)
class Binding:
    """A challenge with the device it would bind."""

    challenge: ChallengeRow
    device: DeviceRow


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._dialect = engine.dialect.name

    # Registration

    async def find_registration(self, command_id: str) -> Binding | None:
        """The device and challenge a (possibly redelivered) register command created."""
        return await self._binding_where(DeviceRow.created_by_command == command_id)

    async def register(self, device: DeviceRow, challenge: ChallengeRow, *, max_bound: int) -> bool:
        """Insert a pending device and its challenge, unless the person is at the limit.

        Returns False when the person already has ``max_bound`` bound devices. A concurrent
        insert of the same command raises IntegrityError for the caller to treat as a replay.
        """
        async with self._sessions() as session, session.begin():
            if await _bound_devices(session, device.client_id, device.person_id) >= max_bound:
                return False
            session.add(device)
            await session.flush()  # the device first: the challenge refers to it
            session.add(challenge)
        return True

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

    async def find_attempt_context(
        self, challenge_id: str, signature: str, command_id: str
    ) -> tuple[Binding | None, AttemptRow | None, RefusalRow | None]:
        """The challenge with its device, this signature's earlier attempt if any, and this
        command's refusal if it was refused before (a redelivery).

        One query: this read is on the path of every signature submitted.
        """
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(ChallengeRow, DeviceRow, AttemptRow, RefusalRow)
                    .join(DeviceRow, ChallengeRow.device_id == DeviceRow.id)
                    .outerjoin(
                        AttemptRow,
                        (AttemptRow.challenge_id == ChallengeRow.id)
                        & (AttemptRow.signature == signature),
                    )
                    .outerjoin(RefusalRow, RefusalRow.command_id == command_id)
                    .where(ChallengeRow.id == challenge_id)
                )
            ).first()
        if row is None:
            return None, None, None
        return Binding(challenge=row[0], device=row[1]), row[2], row[3]

    async def remember_refusal(self, refusal: RefusalRow) -> RefusalRow:
        """Store ``refusal`` unless its command was refused before; the refusal that stands.

        The first decision wins, so every delivery of one command publishes the same event:
        same id, same content (times and counts included).
        """
        try:
            async with self._sessions() as session, session.begin():
                session.add(refusal)
        except IntegrityError:
            async with self._sessions() as session:
                stored = await session.get(RefusalRow, refusal.command_id)
            if stored is None:
                raise
            return stored
        return refusal

    async def expire(self, challenge_id: str, now: datetime) -> bool:
        return await self._update(
            update(ChallengeRow)
            .where(
                ChallengeRow.id == challenge_id,
                ChallengeRow.status == ChallengeStatus.PENDING,
                ChallengeRow.expires_at <= now,
            )
            .values(status=ChallengeStatus.EXPIRED, otp_digest=None, decided_at=now)
        )

    async def record_verified(
        self,
        binding: Binding,
        attempt: AttemptRow,
        *,
        seen_failures: int,
        max_bound: int = MAX_BOUND_DEVICES_PER_PERSON,
    ) -> bool:
        """Verify the challenge, bind its device and store the attempt, all or nothing.

        Happens only if the challenge is still pending, unexpired and has not failed again
        since it was read; False otherwise, or if this signature was recorded meanwhile.
        Raises :class:`DeviceLimitReached`, changing nothing, if the person already has
        ``max_bound`` bound devices (pending devices do not count until they bind).
        """
        now = attempt.decided_at
        device = binding.device
        try:
            async with self._sessions() as session, session.begin():
                if self._dialect == "postgresql":
                    # Two of a person's challenges may bind at once on different partitions;
                    # one at a time, or both could see four bound devices and become six.
                    await session.execute(
                        text("SELECT pg_advisory_xact_lock(hashtextextended(:person, 0))"),
                        {"person": f"{device.client_id}/{device.person_id}"},
                    )
                if await _bound_devices(session, device.client_id, device.person_id) >= max_bound:
                    raise DeviceLimitReached(f"person already has {max_bound} bound devices")
                await _update_one(
                    session,
                    update(ChallengeRow)
                    .where(
                        ChallengeRow.id == binding.challenge.id,
                        ChallengeRow.status == ChallengeStatus.PENDING,
                        ChallengeRow.failed_attempts == seen_failures,
                        ChallengeRow.expires_at > now,
                    )
                    .values(status=ChallengeStatus.VERIFIED, otp_digest=None, decided_at=now),
                )
                # Unbound since it was read: nothing to bind, the caller decides again.
                await _update_one(
                    session,
                    update(DeviceRow)
                    .where(
                        DeviceRow.id == binding.device.id, DeviceRow.status == DeviceStatus.PENDING
                    )
                    .values(status=DeviceStatus.BOUND, bound_at=now),
                )
                session.add(attempt)
        except (_Stale, IntegrityError):
            return False
        return True

    async def record_failed(
        self, binding: Binding, attempt: AttemptRow, *, seen_failures: int, max_failures: int
    ) -> bool:
        """Count one failed attempt, locking the challenge at ``max_failures``."""
        now = attempt.decided_at
        failures = seen_failures + 1
        locked = failures >= max_failures
        values: dict[str, object] = {"failed_attempts": failures}
        if locked:
            values |= {"status": ChallengeStatus.LOCKED, "otp_digest": None, "decided_at": now}
        try:
            async with self._sessions() as session, session.begin():
                await _update_one(
                    session,
                    update(ChallengeRow)
                    .where(
                        ChallengeRow.id == binding.challenge.id,
                        ChallengeRow.status == ChallengeStatus.PENDING,
                        ChallengeRow.failed_attempts == seen_failures,
                    )
                    .values(**values),
                )
                session.add(attempt)
        except (_Stale, IntegrityError):
            return False
        return True

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
        """Unbind a pending or bound device; its challenge can no longer be answered."""
        return await self._update(
            update(DeviceRow)
            .where(DeviceRow.id == device_id, DeviceRow.status != DeviceStatus.UNBOUND)
            .values(
                status=DeviceStatus.UNBOUND,
                unbound_at=now,
                unbound_by_command=command_id,
                unbound_by_request=request_id,
            )
        )

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
