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

A counted failure also counts towards the person's consecutive failures, and a verified
signature resets them (:mod:`worker.decisions.persons`); the failure that locks the person
is announced with a ``person_locked`` event besides its own.

Refusals that count nothing (1, 4, 6) are stored too, so that a redelivered command answers
the very event it had (rule 2) even if the challenge changed since.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from schemas.challenges import MAX_FAILED_ATTEMPTS, ChallengeStatus
from schemas.commands import AttemptCommand, VerifyDeviceSignature
from schemas.devices import MAX_BOUND_DEVICES_PER_PERSON
from schemas.reasons import Reason
from worker import events
from worker.decisions.attempt_values import (
    TERMINAL_REASON,
)
from worker.decisions.attempt_values import (
    AttemptDecisions as AttemptDecisions,
)
from worker.decisions.attempt_values import (
    AttemptOutcome as AttemptOutcome,
)
from worker.decisions.attempt_values import (
    AttemptState as AttemptState,
)
from worker.decisions.attempt_values import (
    SignatureCheck as SignatureCheck,
)
from worker.decisions.attempt_values import (
    attempts_remaining as attempts_remaining,
)
from worker.decisions.attempt_values import (
    effective_status as effective_status,
)
from worker.decisions.attempt_values import (
    owns as owns,
)
from worker.decisions.persons import DEFAULT_PERSON_LOCK, PersonCounts
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


def decide_attempts(
    state: AttemptState,
    commands: Sequence[AttemptCommand],
    *,
    now: datetime,
    signature_verifies: SignatureCheck,
    person_lock: timedelta = DEFAULT_PERSON_LOCK,
) -> AttemptDecisions:
    """Decide ``commands`` in order on ``state`` (see the module's rules). ``state`` is not
    changed; the decisions say what to write. ``person_lock``: how long a person's lock
    lasts."""
    return _Batch(state, now, signature_verifies, person_lock).decide(commands)


class _Batch:
    """The state as the batch's earlier decisions left it."""

    def __init__(
        self, state: AttemptState, now: datetime, verifies: SignatureCheck, lock_for: timedelta
    ) -> None:
        self.challenges = dict(state.challenges)
        self.attempts = dict(state.attempts)
        self.refusals = dict(state.refusals)
        self.repeats = dict(state.repeats)
        self.bound_devices = dict(state.bound_devices)
        self.now = now
        self.verifies = verifies
        self.people = PersonCounts(state.people, now=now, lock_for=lock_for)
        self.decisions = AttemptDecisions(people=self.people.changes)

    def decide(self, commands: Sequence[AttemptCommand]) -> AttemptDecisions:
        for command in commands:
            ids = _Ids(str(command.challenge_id), str(command.command_id), kind_of(command))
            outcome = self._decide(command, ids)
            if outcome.reason is Reason.PERSON_TEMPORARILY_LOCKED:
                outcome = self._with_lock_end(outcome, ids.challenge)
            self.decisions.outcomes.append(outcome)
        return self.decisions

    def _with_lock_end(self, outcome: AttemptOutcome, challenge_id: str) -> AttemptOutcome:
        """A lock's refusal names when the lock ends (a replayed one too, while it lasts)."""
        challenge = self.challenges.get(challenge_id)
        until = None if challenge is None else self.people.locked_until(challenge.device.owner)
        return replace(outcome, locked_until=until)

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
            lock = self.people.lock_of(challenge.device.owner, _attempt_ref(ids, command))
            return AttemptOutcome(
                False,
                Reason.INVALID_SIGNATURE,
                remaining,
                challenge_id,
                prior.event_json,
                _extra(challenge.device, lock),
            )

        status = effective_status(challenge.status, challenge.expires_at, self.now)
        if status is ChallengeStatus.EXPIRED and challenge.status is ChallengeStatus.PENDING:
            challenge = self._change(challenge, status=ChallengeStatus.EXPIRED, closed=True)
        if status is not ChallengeStatus.PENDING:
            return self._refuse(command, ids, challenge, TERMINAL_REASON[status])
        if challenge.digest is None:
            # No digest on a pending challenge: its sealed value did not open (a key removed,
            # a value copied or tampered with) or another writer made the row. Nothing can
            # verify; refused as spent, counting nothing: the person did nothing wrong.
            return self._refuse(command, ids, challenge, Reason.CHALLENGE_LOCKED)
        if self.people.locked_until(challenge.device.owner) is not None:
            # The person failed too often in a row: no signature is checked until the lock
            # ends, so the lock caps the guesses at the limit exactly (SPEC §9).
            return self._refuse(command, ids, challenge, Reason.PERSON_TEMPORARILY_LOCKED)

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
            lock = self.people.failed(
                challenge.device.owner,
                attempt=_attempt_ref(ids, command),
                lock_event=lambda failures, at, until: events.person_locked(
                    command, challenge.device, failures=failures, locked_at=at, locked_until=until
                ),
            )
            return AttemptOutcome(
                False,
                Reason.INVALID_SIGNATURE,
                remaining,
                challenge_id,
                event_json,
                _extra(challenge.device, lock),
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
        self.people.verified(device.owner)
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
        stands instead, and so does one of an identical request (same challenge, signature
        and client) refused for the same reason: a repeat adds no event (SPEC §5)."""
        command_id = ids.command
        refusal = self.refusals.get(command_id)
        request = (ids.challenge, command.signature, command.client_id)
        earlier = self.repeats.get(request)
        if refusal is None and earlier is not None and earlier.reason is reason:
            return _refused(earlier)
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
            self.refusals[command_id] = self.repeats[request] = refusal
            self.decisions.refusals.append(
                NewRefusal(
                    command_id=command_id,
                    challenge_id=refusal.challenge_id,
                    reason=reason,
                    event_json=event_json,
                    decided_at=self.now,
                    signature=command.signature,
                    client_id=command.client_id,
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


def _attempt_ref(ids: "_Ids", command: AttemptCommand) -> str:
    return f"{ids.challenge}\n{command.signature}"


def _extra(device: DeviceState, lock_json: str | None) -> tuple[tuple[str, str], ...]:
    return () if lock_json is None else ((events.person_key(*device.owner), lock_json),)


def kind_of(command: AttemptCommand) -> ChallengeKind:
    """The kind of challenge a command's route is for."""
    if isinstance(command, VerifyDeviceSignature):
        return ChallengeKind.DEVICE
    return ChallengeKind.BINDING


def _refused(refusal: StoredRefusal) -> AttemptOutcome:
    return AttemptOutcome(False, refusal.reason, None, refusal.challenge_id, refusal.event_json)
