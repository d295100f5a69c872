"""The values a batch of signature attempts is decided on and decided into: the stored state
the store reads, each command's outcome, and what the store must write
(:func:`worker.decisions.attempts.decide_attempts` makes them)."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from schemas.challenges import MAX_FAILED_ATTEMPTS, ChallengeStatus
from schemas.devices import DeviceStatus
from schemas.reasons import Reason
from worker.decisions.persons import Owner
from worker.state import (
    ChallengeChange,
    ChallengeState,
    DeviceBound,
    DeviceState,
    KeyUsed,
    NewAttempt,
    NewRefusal,
    PersonChange,
    PersonState,
    StoredAttempt,
    StoredRefusal,
)

# Whether a device's signature of a digest verifies: (device, SHA-256 digest, signature hex).
SignatureCheck = Callable[[DeviceState, bytes, str], bool]

TERMINAL_REASON = {
    ChallengeStatus.VERIFIED: Reason.CHALLENGE_ALREADY_VERIFIED,
    ChallengeStatus.EXPIRED: Reason.CHALLENGE_EXPIRED,
    ChallengeStatus.LOCKED: Reason.CHALLENGE_LOCKED,
}


@dataclass(frozen=True, slots=True)
class AttemptState:
    """What the store holds about a batch's attempts, read before deciding."""

    challenges: Mapping[str, ChallengeState]  # by challenge id, each with its device
    attempts: Mapping[tuple[str, str], StoredAttempt]  # by (challenge id, signature)
    refusals: Mapping[str, StoredRefusal]  # by command id
    bound_devices: Mapping[tuple[str, str], int]  # by (client id, person id); absent: 0
    people: Mapping[Owner, PersonState] = field(default_factory=dict)  # absent: no failures
    # Refusals by the request they refused: (challenge id, signature, client id).
    repeats: Mapping[tuple[str, str, str], StoredRefusal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """How one attempt is answered (the reply) and announced (its event)."""

    verified: bool
    reason: Reason | None
    attempts_remaining: int | None
    event_key: str
    event_json: str
    # Announced with it: the person_locked event (key, JSON) of the failure that locked.
    extra_events: tuple[tuple[str, str], ...] = ()
    # With person_temporarily_locked: when the lock ends.
    locked_until: datetime | None = None


@dataclass(slots=True)
class AttemptDecisions:
    """The outcomes, one per command in order, and what the store must write."""

    outcomes: list[AttemptOutcome] = field(default_factory=list)
    challenges: dict[str, ChallengeChange] = field(default_factory=dict)  # by challenge id
    bound: list[DeviceBound] = field(default_factory=list)
    keys_used: list[KeyUsed] = field(default_factory=list)
    attempts: list[NewAttempt] = field(default_factory=list)
    refusals: list[NewRefusal] = field(default_factory=list)
    people: dict[Owner, PersonChange] = field(default_factory=dict)


def attempts_remaining(failed_attempts: int) -> int:
    return max(0, MAX_FAILED_ATTEMPTS - failed_attempts)


def effective_status(
    status: ChallengeStatus, expires_at: datetime, now: datetime
) -> ChallengeStatus:
    """A pending challenge past its expiry is expired, whether or not that was stored yet."""
    if status is ChallengeStatus.PENDING and now >= expires_at:
        return ChallengeStatus.EXPIRED
    return status


def owns(client_id: str, device: DeviceState) -> bool:
    """Another client's device, or an unbound one, is answered exactly like a missing one."""
    return device.client_id == client_id and device.status is not DeviceStatus.UNBOUND
