"""Stored state as plain values: what the store reads for a decision, and what it writes back.

The decisions (:mod:`worker.decisions`) take these and return these; they never see a
database row, a session or a connection. The store modules turn rows into them and them
into statements.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from schemas.challenges import ChallengeStatus
from schemas.devices import DeviceStatus, KeyPurpose
from schemas.reasons import Reason


class ChallengeKind(StrEnum):
    """What a challenge asks the device to sign, and what a verified signature does."""

    BINDING = "binding"  # the OTP; binds the device
    DEVICE = "device"  # a string_to_sign (SPEC §8); marks the key used


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A device as one challenge sees it: ``key_id``, ``public_key`` and ``key_purpose`` are
    those of the key that signs that challenge (the binding key, or the key of the purpose
    a device challenge chose)."""

    id: str
    key_id: str
    client_id: str
    person_id: str
    public_key: str  # hex of the SEC1 point
    status: DeviceStatus
    key_purpose: KeyPurpose = KeyPurpose.UNRESTRICTED

    @property
    def owner(self) -> tuple[str, str]:
        """(client id, person id): the limit of bound devices counts per owner."""
        return (self.client_id, self.person_id)


@dataclass(frozen=True, slots=True)
class ChallengeState:
    id: str
    device: DeviceState
    status: ChallengeStatus
    failed_attempts: int
    expires_at: datetime
    # SHA-256 of what the device signs (the OTP, or the string_to_sign) while pending; None
    # once the challenge left pending. A binding challenge's is stored sealed and opened
    # before the decision (worker.attempts.openings); None too when it does not open.
    digest: bytes | None
    kind: ChallengeKind = ChallengeKind.BINDING


@dataclass(frozen=True, slots=True)
class PersonState:
    """A person's run of failed signatures (SPEC §9), per client: consecutive failures since
    the last verified signature or lock, and the lock while it lasts."""

    consecutive_failures: int = 0
    locked_until: datetime | None = None
    # The failed attempt that started the lock ("challenge id\nsignature", or "key:" and the
    # command id of a key addition) and the lock's event: a redelivered attempt announces it
    # again, identically.
    locked_by: str | None = None
    lock_event_json: str | None = None


@dataclass(frozen=True, slots=True)
class StoredAttempt:
    """An attempt counted before: one per distinct signature a pending challenge was given."""

    verified: bool
    number: int
    event_json: str


@dataclass(frozen=True, slots=True)
class StoredRefusal:
    """An attempt refused without counting, kept so that a redelivery answers the same."""

    reason: Reason
    challenge_id: str
    event_json: str


# What a batch of attempts writes: each a row to insert or a row's new values.


@dataclass(frozen=True, slots=True)
class ChallengeChange:
    id: str
    status: ChallengeStatus
    failed_attempts: int
    # Leaving pending drops the digest of what was to be signed (SPEC §4): None then. The
    # stores only look at whether it is kept: the stored (sealed) value stays as it is.
    digest: bytes | None
    decided_at: datetime | None
    kind: ChallengeKind = ChallengeKind.BINDING


@dataclass(frozen=True, slots=True)
class KeyUsed:
    """A device key whose signature verified: its ``used_at``."""

    key_id: str
    used_at: datetime


@dataclass(frozen=True, slots=True)
class DeviceBound:
    device_id: str
    bound_at: datetime


@dataclass(frozen=True, slots=True)
class NewAttempt:
    challenge_id: str
    signature: str
    verified: bool
    number: int
    event_json: str
    decided_at: datetime
    kind: ChallengeKind = ChallengeKind.BINDING

    @property
    def outcome(self) -> str:
        return "verified" if self.verified else "rejected"


@dataclass(frozen=True, slots=True)
class NewRefusal:
    command_id: str
    challenge_id: str
    reason: Reason
    event_json: str
    decided_at: datetime
    signature: str | None = None
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class PersonChange:
    client_id: str
    person_id: str
    state: PersonState
