"""Signature attempts: on binding challenges (``PUT /v1/mfa/challenges/signatures/{id}``)
and on device challenges (``PUT /v1/mfa/challenges/devices/{id}``, SPEC §8), by one set of
rules.

:func:`decide_attempts` decides a batch of attempts in order, each seeing what the earlier
ones changed (commands for one challenge arrive in order on one partition), from the state
the store read for the whole batch. For one attempt, the first rule that applies decides:

1. the challenge is unknown (or of the other kind), or its device is another client's or
   unbound: ``not_found``;
2. the command was refused before (a redelivery): that refusal and its event, unchanged;
3. the same signature was given before: its stored outcome and event, nothing counted;
4. the challenge left pending (verified, locked, or expired, which is stored now if due):
   refused with that reason, nothing counted;
5. the signature does not verify: ``invalid_signature``, a counted failure; the fifth
   locks the challenge;
6. binding only: the person already has the maximum of bound devices:
   ``device_limit_reached``, and the challenge stays pending so that it can bind once
   another device is unbound;
7. otherwise verified: the challenge is verified, and the device bound (binding) or the
   signing key's ``used_at`` set (device).

Refusals that count nothing (1, 4, 6) are stored too, so that a redelivered command answers
the very event it had (rule 2) even if the challenge changed since.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from schemas.challenges import MAX_FAILED_ATTEMPTS, ChallengeStatus
from schemas.commands import AttemptCommand, VerifyDeviceSignature
from schemas.devices import MAX_BOUND_DEVICES_PER_PERSON, DeviceStatus
from schemas.reasons import Reason
from worker import events
from worker.state import (
    ChallengeChange,
    ChallengeKind,
    ChallengeState,
    DeviceBound,
    DeviceState,
    KeyUsed,
    NewAttempt,
    NewRefusal,
    StoredAttempt,
    StoredRefusal,
)

# Whether a device's signature of a digest verifies: (device, SHA-256 digest, signature hex).
SignatureCheck = Callable[[DeviceState, bytes, str], bool]

_TERMINAL_REASON = {
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


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """How one attempt is answered (the reply) and announced (its event)."""

    verified: bool
    reason: Reason | None
    attempts_remaining: int | None
    event_key: str
    event_json: str


@dataclass(slots=True)
class AttemptDecisions:
    """The outcomes, one per command in order, and what the store must write."""

    outcomes: list[AttemptOutcome] = field(default_factory=list)
    challenges: dict[str, ChallengeChange] = field(default_factory=dict)  # by challenge id
    bound: list[DeviceBound] = field(default_factory=list)
    keys_used: list[KeyUsed] = field(default_factory=list)
    attempts: list[NewAttempt] = field(default_factory=list)
    refusals: list[NewRefusal] = field(default_factory=list)


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


def decide_attempts(
    state: AttemptState,
    commands: Sequence[AttemptCommand],
    *,
    now: datetime,
    signature_verifies: SignatureCheck,
) -> AttemptDecisions:
    """Decide ``commands`` in order on ``state`` (see the module's rules). ``state`` is not
    changed; the decisions say what to write."""
    return _Batch(state, now, signature_verifies).decide(commands)


class _Batch:
    """The state as the batch's earlier decisions left it."""

    def __init__(self, state: AttemptState, now: datetime, verifies: SignatureCheck) -> None:
        self.challenges = dict(state.challenges)
        self.attempts = dict(state.attempts)
        self.refusals = dict(state.refusals)
        self.bound_devices = dict(state.bound_devices)
        self.now = now
        self.verifies = verifies
        self.decisions = AttemptDecisions()

    def decide(self, commands: Sequence[AttemptCommand]) -> AttemptDecisions:
        for command in commands:
            ids = _Ids(str(command.challenge_id), str(command.command_id), kind_of(command))
            self.decisions.outcomes.append(self._decide(command, ids))
        return self.decisions

    def _decide(self, command: AttemptCommand, ids: "_Ids") -> AttemptOutcome:
        challenge_id = ids.challenge
        challenge = self.challenges.get(challenge_id)
        if challenge is not None and challenge.kind is not ids.kind:
            challenge = None  # a binding challenge's id on the device route, or the reverse
        if challenge is None or not owns(command.client_id, challenge.device):
            return self._refuse(command, ids, None, Reason.NOT_FOUND)
        refusal = self.refusals.get(ids.command)
        if refusal is not None:
            return _refused(refusal)
        prior = self.attempts.get((challenge_id, command.signature))
        if prior is not None:
            if prior.verified:
                return AttemptOutcome(True, None, None, challenge_id, prior.event_json)
            remaining = attempts_remaining(challenge.failed_attempts)
            return AttemptOutcome(
                False, Reason.INVALID_SIGNATURE, remaining, challenge_id, prior.event_json
            )

        status = effective_status(challenge.status, challenge.expires_at, self.now)
        if status is ChallengeStatus.EXPIRED and challenge.status is ChallengeStatus.PENDING:
            challenge = self._change(challenge, status=ChallengeStatus.EXPIRED, closed=True)
        if status is not ChallengeStatus.PENDING:
            return self._refuse(command, ids, challenge, _TERMINAL_REASON[status])
        if challenge.digest is None:
            # A pending challenge always keeps its digest; a row without one was written by
            # something other than this service: answer as for a spent challenge.
            return self._refuse(command, ids, challenge, Reason.CHALLENGE_LOCKED)

        number = challenge.failed_attempts + 1
        if not self.verifies(challenge.device, challenge.digest, command.signature):
            remaining = MAX_FAILED_ATTEMPTS - number
            locked = number >= MAX_FAILED_ATTEMPTS
            self._change(
                challenge,
                status=ChallengeStatus.LOCKED if locked else ChallengeStatus.PENDING,
                failed_attempts=number,
                closed=locked,
            )
            event_json = events.signature_attempt(
                command,
                challenge.device,
                reason=Reason.INVALID_SIGNATURE,
                attempt=number,
                attempts_remaining=remaining,
                decided_at=self.now,
            )
            self._count(command, ids, verified=False, number=number, event_json=event_json)
            return AttemptOutcome(
                False, Reason.INVALID_SIGNATURE, remaining, challenge_id, event_json
            )

        device = challenge.device
        binds = challenge.kind is ChallengeKind.BINDING
        if binds and self.bound_devices.get(device.owner, 0) >= MAX_BOUND_DEVICES_PER_PERSON:
            return self._refuse(command, ids, challenge, Reason.DEVICE_LIMIT_REACHED)
        event_json = events.signature_attempt(
            command,
            device,
            reason=None,
            attempt=number,
            attempts_remaining=attempts_remaining(challenge.failed_attempts),
            decided_at=self.now,
        )
        self._count(command, ids, verified=True, number=number, event_json=event_json)
        self._change(challenge, status=ChallengeStatus.VERIFIED, closed=True)
        if binds:
            self.bound_devices[device.owner] = self.bound_devices.get(device.owner, 0) + 1
            self.decisions.bound.append(DeviceBound(device_id=device.id, bound_at=self.now))
        else:
            self.decisions.keys_used.append(KeyUsed(key_id=device.key_id, used_at=self.now))
        return AttemptOutcome(True, None, None, challenge_id, event_json)

    def _change(
        self,
        challenge: ChallengeState,
        *,
        status: ChallengeStatus,
        failed_attempts: int | None = None,
        closed: bool = False,
    ) -> ChallengeState:
        """The challenge's new state, for later commands of the batch and for the store.
        ``closed``: it leaves pending for good, and the OTP's digest goes with it."""
        changed = ChallengeState(
            id=challenge.id,
            device=challenge.device,
            status=status,
            failed_attempts=(
                challenge.failed_attempts if failed_attempts is None else failed_attempts
            ),
            expires_at=challenge.expires_at,
            digest=None if closed else challenge.digest,
            kind=challenge.kind,
        )
        self.challenges[challenge.id] = changed
        self.decisions.challenges[challenge.id] = ChallengeChange(
            id=challenge.id,
            status=changed.status,
            failed_attempts=changed.failed_attempts,
            digest=changed.digest,
            decided_at=self.now if closed else None,
            kind=challenge.kind,
        )
        return changed

    def _count(
        self,
        command: AttemptCommand,
        ids: "_Ids",
        *,
        verified: bool,
        number: int,
        event_json: str,
    ) -> None:
        challenge_id = ids.challenge
        self.attempts[(challenge_id, command.signature)] = StoredAttempt(
            verified=verified, number=number, event_json=event_json
        )
        self.decisions.attempts.append(
            NewAttempt(
                challenge_id=challenge_id,
                signature=command.signature,
                verified=verified,
                number=number,
                event_json=event_json,
                decided_at=self.now,
                kind=ids.kind,
            )
        )

    def _refuse(
        self,
        command: AttemptCommand,
        ids: "_Ids",
        challenge: ChallengeState | None,
        reason: Reason,
    ) -> AttemptOutcome:
        """A refusal that counts no attempt, stored; one stored for the command before
        stands instead."""
        command_id = ids.command
        refusal = self.refusals.get(command_id)
        if refusal is None:
            event_json = events.signature_attempt(
                command,
                challenge.device if challenge else None,
                reason=reason,
                attempt=None,
                attempts_remaining=(
                    attempts_remaining(challenge.failed_attempts) if challenge else None
                ),
                decided_at=self.now,
            )
            refusal = StoredRefusal(
                reason=reason, challenge_id=ids.challenge, event_json=event_json
            )
            self.refusals[command_id] = refusal
            self.decisions.refusals.append(
                NewRefusal(
                    command_id=command_id,
                    challenge_id=refusal.challenge_id,
                    reason=reason,
                    event_json=event_json,
                    decided_at=self.now,
                )
            )
        return _refused(refusal)


@dataclass(frozen=True, slots=True)
class _Ids:
    """A command's ids as the store keys them (text), made once per command, and the kind
    of challenge it is meant for."""

    challenge: str
    command: str
    kind: ChallengeKind


def kind_of(command: AttemptCommand) -> ChallengeKind:
    """The kind of challenge a command's route is for."""
    if isinstance(command, VerifyDeviceSignature):
        return ChallengeKind.DEVICE
    return ChallengeKind.BINDING


def _refused(refusal: StoredRefusal) -> AttemptOutcome:
    return AttemptOutcome(False, refusal.reason, None, refusal.challenge_id, refusal.event_json)
