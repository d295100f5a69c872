"""The challenge/device store.

Commands for one challenge arrive in order on one partition, but a rebalance can hand the
same command to two workers for a moment, and several worker processes share the database.
Two ways keep them apart:

- Registrations, unbinding and the OTP lease: each transition names the state it expects in
  its ``WHERE`` clause and reports whether it happened; the caller re-reads and decides again
  when it did not.
- Signature attempts, the hot path, are decided a batch at a time (:meth:`Store.attempts`):
  one transaction reads every challenge of the batch with its device, attempts and refusals
  under a write lock (SQLite's ``BEGIN IMMEDIATE``; on PostgreSQL the rows ``FOR UPDATE`` and
  each person's advisory lock), the caller decides on those rows in memory, and the changes
  are written by the same transaction. One round of statements per batch instead of several
  per command. A unique constraint on (challenge, signature) still makes counting an attempt
  twice impossible.
"""

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Update, bindparam, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from schemas.challenges import ChallengeStatus
from schemas.devices import DeviceStatus
from worker.tables import AttemptRow, Base, ChallengeRow, DeviceRow, RefusalRow


@dataclass(frozen=True)
class Binding:
    """A challenge with the device it would bind."""

    challenge: ChallengeRow
    device: DeviceRow


@dataclass
class AttemptBatch:
    """What a batch of attempts reads, and what it changes, inside one locked transaction.

    The rows are detached copies: change them only through the methods, which both update
    the copy (later commands of the batch see it) and note the change to be written.
    """

    bindings: dict[str, Binding]  # by challenge id
    attempts: dict[tuple[str, str], AttemptRow]  # by (challenge id, signature)
    refusals: dict[str, RefusalRow]  # by command id
    bound: dict[tuple[str, str], int]  # bound devices by (client id, person id)
    new_attempts: list[AttemptRow] = field(default_factory=list)
    new_refusals: list[RefusalRow] = field(default_factory=list)
    changed_challenges: dict[str, ChallengeRow] = field(default_factory=dict)
    bound_devices: dict[str, DeviceRow] = field(default_factory=dict)

    def add_attempt(self, attempt: AttemptRow) -> None:
        self.attempts[(attempt.challenge_id, attempt.signature)] = attempt
        self.new_attempts.append(attempt)

    def add_refusal(self, refusal: RefusalRow) -> None:
        self.refusals[refusal.command_id] = refusal
        self.new_refusals.append(refusal)

    def count_failure(self, challenge: ChallengeRow, failures: int) -> None:
        challenge.failed_attempts = failures
        self.changed_challenges[challenge.id] = challenge

    def close(self, challenge: ChallengeRow, status: ChallengeStatus, now: datetime) -> None:
        """Leave pending for good: the OTP's digest is dropped with it."""
        challenge.status = status
        challenge.otp_digest = None
        challenge.decided_at = now
        self.changed_challenges[challenge.id] = challenge

    def bound_devices_of(self, device: DeviceRow) -> int:
        return self.bound.get((device.client_id, device.person_id), 0)

    def bind(self, device: DeviceRow, now: datetime) -> None:
        device.status = DeviceStatus.BOUND
        device.bound_at = now
        owner = (device.client_id, device.person_id)
        self.bound[owner] = self.bound.get(owner, 0) + 1
        self.bound_devices[device.id] = device


# The batch's writes: one statement each, executed for all its rows at once.
_CHALLENGES = Base.metadata.tables[ChallengeRow.__tablename__]
_DEVICES = Base.metadata.tables[DeviceRow.__tablename__]
_UPDATE_CHALLENGE = (
    update(_CHALLENGES)
    .where(_CHALLENGES.c.id == bindparam("challenge_id"))
    .values(
        status=bindparam("status"),
        otp_digest=bindparam("otp_digest"),
        failed_attempts=bindparam("failed_attempts"),
        decided_at=bindparam("decided_at"),
    )
)
_BIND_DEVICE = (
    update(_DEVICES)
    .where(_DEVICES.c.id == bindparam("device_id"))
    .values(status=bindparam("status"), bound_at=bindparam("bound_at"))
)


def _columns(row: AttemptRow | RefusalRow) -> dict[str, object]:
    """The row's values by column, leaving out a key the database numbers itself."""
    values = {column.key: getattr(row, column.key) for column in row.__table__.columns}
    return {
        key: value
        for key, value in values.items()
        if not (value is None and row.__table__.columns[key].primary_key)
    }


async def _write(session: AsyncSession, batch: AttemptBatch) -> None:
    if batch.changed_challenges:
        await session.execute(
            _UPDATE_CHALLENGE,
            [
                {
                    "challenge_id": c.id,
                    "status": c.status,
                    "otp_digest": c.otp_digest,
                    "failed_attempts": c.failed_attempts,
                    "decided_at": c.decided_at,
                }
                for c in batch.changed_challenges.values()
            ],
        )
    if batch.bound_devices:
        await session.execute(
            _BIND_DEVICE,
            [
                {"device_id": d.id, "status": d.status, "bound_at": d.bound_at}
                for d in batch.bound_devices.values()
            ],
        )
    for table, rows in (
        (AttemptRow.__tablename__, batch.new_attempts),
        (RefusalRow.__tablename__, batch.new_refusals),
    ):
        if rows:
            await session.execute(
                insert(Base.metadata.tables[table]), [_columns(row) for row in rows]
            )


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

    @asynccontextmanager
    async def attempts(
        self, challenge_ids: Collection[str], command_ids: Collection[str]
    ) -> AsyncIterator["AttemptBatch"]:
        """One transaction deciding a batch of signature attempts.

        Yields what the batch reads, locked against every other writer until the
        transaction ends; the caller changes those rows and adds attempts and refusals
        through the batch, and leaving the block writes it all at once (or nothing, if the
        block raises).
        """
        async with self._sessions() as session, session.begin():
            query = (
                select(ChallengeRow, DeviceRow)
                .join(DeviceRow, ChallengeRow.device_id == DeviceRow.id)
                .where(ChallengeRow.id.in_(sorted(challenge_ids)))
                .order_by(ChallengeRow.id)  # one locking order for every worker
            )
            if self._dialect == "postgresql":
                # SQLite's BEGIN IMMEDIATE locks the whole database already.
                query = query.with_for_update()
            bindings = {
                challenge.id: Binding(challenge=challenge, device=device)
                for challenge, device in await session.execute(query)
            }
            people = sorted({(b.device.client_id, b.device.person_id) for b in bindings.values()})
            if self._dialect == "postgresql":
                # A person's challenges may bind on different partitions at once: one at a
                # time, or two could each see four bound devices and make six. Sorted, so
                # that two batches never wait for each other in a circle.
                for client_id, person_id in people:
                    await session.execute(
                        text("SELECT pg_advisory_xact_lock(hashtextextended(:person, 0))"),
                        {"person": f"{client_id}/{person_id}"},
                    )
            batch = AttemptBatch(
                bindings=bindings,
                attempts={
                    (attempt.challenge_id, attempt.signature): attempt
                    for attempt in await session.scalars(
                        select(AttemptRow).where(AttemptRow.challenge_id.in_(list(bindings)))
                    )
                },
                refusals={
                    refusal.command_id: refusal
                    for refusal in await session.scalars(
                        select(RefusalRow).where(RefusalRow.command_id.in_(list(command_ids)))
                    )
                },
                bound=await _bound_devices_of(session, people),
            )
            # Detached: the batch writes its changes itself, all rows of a kind in one
            # statement, rather than the session's one UPDATE per changed object.
            session.expunge_all()
            yield batch
            await _write(session, batch)

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


async def _bound_devices_of(
    session: AsyncSession, people: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Bound devices per (client, person), for the people given (absent: none)."""
    if not people:
        return {}
    rows = await session.execute(
        select(DeviceRow.client_id, DeviceRow.person_id, func.count())
        .where(
            DeviceRow.person_id.in_(sorted({person for _, person in people})),
            DeviceRow.status == DeviceStatus.BOUND,
        )
        .group_by(DeviceRow.client_id, DeviceRow.person_id)
    )
    wanted = set(people)
    return {(c, p): n for c, p, n in rows if (c, p) in wanted}


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
