"""A batch of signature attempts decided in one transaction: read once, locked, decided in
memory, written once.

Commands for one challenge arrive in order on one partition, but a rebalance can hand the
same commands to two workers for a moment, and every worker process shares the database. So
the batch reads its challenges with their devices, attempts and refusals under a write lock
(SQLite's ``BEGIN IMMEDIATE``; on PostgreSQL the rows ``FOR UPDATE`` and each person's
advisory lock, both in a fixed order so that two batches never wait for each other in a
circle), the caller decides on those rows, and the changes go out one statement per kind of
row. A unique constraint on (challenge, signature) still makes counting an attempt twice
impossible.

Written against a blocking ``Connection``: SQLite runs it on a thread through its plain
driver, PostgreSQL through asyncpg with ``AsyncConnection.run_sync``.
"""

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from schemas.challenges import ChallengeStatus
from schemas.devices import DeviceStatus
from worker.tables import AttemptRow, Base, ChallengeRow, DeviceRow, RefusalRow

T = TypeVar("T")


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


def _write(connection: Connection, batch: AttemptBatch) -> None:
    if batch.changed_challenges:
        connection.execute(
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
        connection.execute(
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
            connection.execute(insert(Base.metadata.tables[table]), [_columns(row) for row in rows])


# The batch's reads, built once: building and caching a statement on every batch cost more
# than running it. IN lists are expanding parameters.
_BINDINGS = (
    select(ChallengeRow, DeviceRow)
    .join(DeviceRow, ChallengeRow.device_id == DeviceRow.id)
    .where(ChallengeRow.id.in_(bindparam("challenge_ids", expanding=True)))
    .order_by(ChallengeRow.id)  # one locking order for every worker
)
# SQLite's BEGIN IMMEDIATE locks the whole database already; PostgreSQL locks the rows.
_BINDINGS_LOCKED = _BINDINGS.with_for_update()
_ATTEMPTS = select(AttemptRow).where(
    AttemptRow.challenge_id.in_(bindparam("challenge_ids", expanding=True))
)
_REFUSALS = select(RefusalRow).where(
    RefusalRow.command_id.in_(bindparam("command_ids", expanding=True))
)
_BOUND = (
    select(DeviceRow.client_id, DeviceRow.person_id, func.count())
    .where(
        DeviceRow.person_id.in_(bindparam("person_ids", expanding=True)),
        DeviceRow.status == DeviceStatus.BOUND,
    )
    .group_by(DeviceRow.client_id, DeviceRow.person_id)
)
_PERSON_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:person, 0))")


def decide_in_transaction(
    connection: Connection,
    challenge_ids: Collection[str],
    command_ids: Collection[str],
    decide: Callable[[AttemptBatch], T],
) -> T:
    """Read the batch under its locks, let ``decide`` change it, write the changes; all in
    the transaction ``connection`` is in."""
    postgresql = connection.dialect.name == "postgresql"
    challenges = {"challenge_ids": sorted(challenge_ids)}
    with Session(bind=connection) as session:
        bindings = {
            challenge.id: Binding(challenge=challenge, device=device)
            for challenge, device in session.execute(
                _BINDINGS_LOCKED if postgresql else _BINDINGS, challenges
            )
        }
        people = sorted({(b.device.client_id, b.device.person_id) for b in bindings.values()})
        if postgresql:
            # A person's challenges may bind on different partitions at once: one at a
            # time, or two could each see four bound devices and make six.
            for client_id, person_id in people:
                session.execute(_PERSON_LOCK, {"person": f"{client_id}/{person_id}"})
        batch = AttemptBatch(
            bindings=bindings,
            attempts={
                (attempt.challenge_id, attempt.signature): attempt
                for attempt in session.scalars(_ATTEMPTS, challenges)
            },
            refusals={
                refusal.command_id: refusal
                for refusal in session.scalars(_REFUSALS, {"command_ids": list(command_ids)})
            },
            bound=_bound_devices_of(connection, people),
        )
        # Detached: the batch writes its changes itself, all rows of a kind in one
        # statement, rather than the session's one UPDATE per changed object.
        session.expunge_all()
    decided = decide(batch)
    _write(connection, batch)
    return decided


def _bound_devices_of(
    connection: Connection, people: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Bound devices per (client, person), for the people given (absent: none)."""
    if not people:
        return {}
    rows = connection.execute(_BOUND, {"person_ids": sorted({person for _, person in people})})
    wanted = set(people)
    return {(c, p): n for c, p, n in rows if (c, p) in wanted}
