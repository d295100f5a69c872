"""The worker's database as the fault suite's invariants read it after a run: for each kind
of challenge (binding, device signing) its challenges and counted attempts, and the refusals
of both, read directly (not through the API)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.engine import create_engine
from tests.faults.kinds import BINDING, DEVICE, Kind
from worker.tables import (
    AttemptRow,
    ChallengeRow,
    DeviceAttemptRow,
    DeviceChallengeRow,
    DeviceKeyRow,
    DeviceRow,
    RefusalRow,
)

VERIFIED = "verified"


@dataclass(frozen=True)
class Challenge:
    id: str
    status: str
    failed_attempts: int
    # What a verified signature does beyond the challenge (binding: the device is bound;
    # device signing: its key is marked used, on a device still bound), and whether the
    # store shows it as the challenge's status says it must.
    effect: str
    effect_matches: bool

    @property
    def verified(self) -> bool:
        return self.status == VERIFIED


@dataclass(frozen=True)
class Attempt:
    """A counted attempt: one row of ``attempts`` or ``device_attempts``."""

    challenge_id: str
    signature: str
    outcome: str
    number: int
    event_json: str


@dataclass(frozen=True)
class Challenges:
    """One kind's challenges, by id, and its counted attempts."""

    kind: Kind
    challenges: dict[str, Challenge]
    attempts: list[Attempt]


@dataclass(frozen=True)
class StoreSnapshot:
    binding: Challenges
    device: Challenges
    refusals: list[RefusalRow]

    @property
    def kinds(self) -> tuple[Challenges, Challenges]:
        return (self.binding, self.device)


async def read_store(database_url: str) -> StoreSnapshot:
    engine = create_engine(database_url)
    try:
        async with AsyncSession(engine) as session:
            devices = {d.id: d for d in (await session.scalars(select(DeviceRow))).all()}
            keys = {k.id: k for k in (await session.scalars(select(DeviceKeyRow))).all()}
            challenges = (await session.scalars(select(ChallengeRow))).all()
            attempts = (await session.scalars(select(AttemptRow))).all()
            signings = (await session.scalars(select(DeviceChallengeRow))).all()
            device_attempts = (await session.scalars(select(DeviceAttemptRow))).all()
            refusals = (await session.scalars(select(RefusalRow))).all()
    finally:
        await engine.dispose()
    binding = Challenges(
        BINDING,
        {c.id: _binding(c, devices.get(c.device_id)) for c in challenges},
        [_attempt(a) for a in attempts],
    )
    device = Challenges(
        DEVICE,
        {c.id: _signing(c, devices.get(c.device_id), keys.get(c.key_id)) for c in signings},
        [_attempt(a) for a in device_attempts],
    )
    return StoreSnapshot(binding, device, list(refusals))


def _binding(row: ChallengeRow, device: DeviceRow | None) -> Challenge:
    bound = device is not None and device.status == "bound"
    matches = device is not None and bound == (row.status == VERIFIED)
    return Challenge(row.id, row.status, row.failed_attempts, "device bound", matches)


def _signing(
    row: DeviceChallengeRow, device: DeviceRow | None, key: DeviceKeyRow | None
) -> Challenge:
    # The load never unbinds: the device stays bound and keeps the key the challenge chose.
    held = device is not None and device.status == "bound" and key is not None
    used = key is not None and key.used_at is not None
    matches = held and (used or row.status != VERIFIED)
    return Challenge(row.id, row.status, row.failed_attempts, "key used", matches)


def _attempt(row: AttemptRow | DeviceAttemptRow) -> Attempt:
    return Attempt(row.challenge_id, row.signature, row.outcome, row.number, row.event_json)
