"""The rules of a signature attempt, as a pure function: no database, no broker.

Each test builds the stored state a batch would read, decides commands on it, and checks the
outcomes and the changes the store would write (worker/decisions/attempts.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from schemas.challenges import MAX_FAILED_ATTEMPTS, ChallengeStatus
from schemas.commands import VerifySignature
from schemas.devices import MAX_BOUND_DEVICES_PER_PERSON, DeviceStatus
from schemas.reasons import Reason
from worker.decisions.attempts import AttemptState, decide_attempts
from worker.state import ChallengeState, DeviceState, StoredAttempt, StoredRefusal

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DIGEST = b"\x01" * 32
GOOD, BAD = "3006020101020101", "3006020102020102"


class Verifier:
    """A signature check that knows which signature is right, and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, device: DeviceState, digest: bytes, signature: str) -> bool:
        assert digest == DIGEST
        self.calls.append(signature)
        return signature == GOOD


def device(
    *, client: str = "bank-1", person: str = "p-1", status: DeviceStatus = DeviceStatus.PENDING
) -> DeviceState:
    return DeviceState(
        id=str(uuid.uuid4()),
        key_id=str(uuid.uuid4()),
        client_id=client,
        person_id=person,
        public_key="04" + "00" * 64,
        status=status,
    )


def challenge(
    owner: DeviceState | None = None,
    *,
    status: ChallengeStatus = ChallengeStatus.PENDING,
    failed: int = 0,
    expires_in: timedelta = timedelta(minutes=5),
) -> ChallengeState:
    return ChallengeState(
        id=str(uuid.uuid4()),
        device=owner or device(),
        status=status,
        failed_attempts=failed,
        expires_at=NOW + expires_in,
        digest=DIGEST if status is ChallengeStatus.PENDING else None,
    )


def attempt(of: ChallengeState, signature: str, *, client: str = "bank-1") -> VerifySignature:
    return VerifySignature(
        command_id=uuid.uuid4(),
        request_id="req-1",
        client_id=client,
        reply_to="api-1",
        issued_at=NOW,
        challenge_id=uuid.UUID(of.id),
        signature=signature,
    )


def state(
    *challenges: ChallengeState,
    attempts: Mapping[tuple[str, str], StoredAttempt] | None = None,
    refusals: Mapping[str, StoredRefusal] | None = None,
    bound: Mapping[tuple[str, str], int] | None = None,
) -> AttemptState:
    return AttemptState(
        challenges={c.id: c for c in challenges},
        attempts=dict(attempts or {}),
        refusals=dict(refusals or {}),
        bound_devices=dict(bound or {}),
    )


def test_a_correct_signature_verifies_the_challenge_and_binds_the_device() -> None:
    pending = challenge()
    command = attempt(pending, GOOD)

    decided = decide_attempts(state(pending), [command], now=NOW, signature_verifies=Verifier())

    [outcome] = decided.outcomes
    assert (outcome.verified, outcome.reason, outcome.event_key) == (True, None, pending.id)
    change = decided.challenges[pending.id]
    assert (change.status, change.digest, change.decided_at) == ("verified", None, NOW)
    assert [(b.device_id, b.bound_at) for b in decided.bound] == [(pending.device.id, NOW)]
    [stored] = decided.attempts
    assert (stored.signature, stored.verified, stored.number) == (GOOD, True, 1)
    assert stored.event_json == outcome.event_json
    event = json.loads(outcome.event_json)
    assert event["type"] == "mfa.device_binding.signature_verified"
    assert event["id"] == str(uuid.uuid5(_NAMESPACE, f"attempt:{command.command_id}"))
    assert event["data"]["attempt"] == 1
    assert not decided.refusals


_NAMESPACE = uuid.UUID("6f1f3c53-2b0e-4f57-9d3a-6a0d3c1e8b21")


def test_a_wrong_signature_counts_a_failure_and_keeps_the_challenge_pending() -> None:
    pending = challenge()

    decided = decide_attempts(
        state(pending), [attempt(pending, BAD)], now=NOW, signature_verifies=Verifier()
    )

    [outcome] = decided.outcomes
    assert (outcome.verified, outcome.reason) == (False, Reason.INVALID_SIGNATURE)
    assert outcome.attempts_remaining == MAX_FAILED_ATTEMPTS - 1
    change = decided.challenges[pending.id]
    assert (change.status, change.failed_attempts, change.digest) == ("pending", 1, DIGEST)
    assert change.decided_at is None
    assert not decided.bound
    assert json.loads(outcome.event_json)["data"]["reason"] == "invalid_signature"


def test_the_fifth_failure_locks_and_a_correct_signature_after_it_is_refused() -> None:
    pending = challenge(failed=MAX_FAILED_ATTEMPTS - 1)
    verifier = Verifier()
    commands = [attempt(pending, BAD), attempt(pending, GOOD)]

    decided = decide_attempts(state(pending), commands, now=NOW, signature_verifies=verifier)

    locking, refused = decided.outcomes
    assert (locking.reason, locking.attempts_remaining) == (Reason.INVALID_SIGNATURE, 0)
    assert refused.reason is Reason.CHALLENGE_LOCKED
    assert verifier.calls == [BAD]  # the locked challenge's signature is not even checked
    change = decided.challenges[pending.id]
    assert (change.status, change.failed_attempts, change.digest) == ("locked", 5, None)
    assert [r.reason for r in decided.refusals] == [Reason.CHALLENGE_LOCKED]


def test_an_expired_challenge_is_stored_expired_and_nothing_is_counted() -> None:
    stale = challenge(expires_in=timedelta(seconds=-1))
    verifier = Verifier()

    decided = decide_attempts(
        state(stale), [attempt(stale, GOOD)], now=NOW, signature_verifies=verifier
    )

    assert decided.outcomes[0].reason is Reason.CHALLENGE_EXPIRED
    assert verifier.calls == []
    change = decided.challenges[stale.id]
    assert (change.status, change.failed_attempts, change.digest) == ("expired", 0, None)
    assert not decided.attempts


def test_a_challenge_expiring_exactly_now_is_expired() -> None:
    edge = challenge(expires_in=timedelta(0))
    decided = decide_attempts(
        state(edge), [attempt(edge, GOOD)], now=NOW, signature_verifies=Verifier()
    )
    assert decided.outcomes[0].reason is Reason.CHALLENGE_EXPIRED


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (ChallengeStatus.VERIFIED, Reason.CHALLENGE_ALREADY_VERIFIED),
        (ChallengeStatus.LOCKED, Reason.CHALLENGE_LOCKED),
        (ChallengeStatus.EXPIRED, Reason.CHALLENGE_EXPIRED),
    ],
)
def test_a_challenge_that_left_pending_refuses_without_counting(
    status: ChallengeStatus, reason: Reason
) -> None:
    spent = challenge(status=status)
    decided = decide_attempts(
        state(spent), [attempt(spent, GOOD)], now=NOW, signature_verifies=Verifier()
    )
    assert decided.outcomes[0].reason is reason
    assert not decided.challenges  # nothing about the challenge changes
    assert [r.reason for r in decided.refusals] == [reason]


def test_the_same_signature_again_answers_the_stored_outcome_and_counts_nothing() -> None:
    pending = challenge(failed=1)
    stored = StoredAttempt(verified=False, number=1, event_json='{"stored": true}')
    verifier = Verifier()

    decided = decide_attempts(
        state(pending, attempts={(pending.id, BAD): stored}),
        [attempt(pending, BAD)],
        now=NOW,
        signature_verifies=verifier,
    )

    [outcome] = decided.outcomes
    assert (outcome.reason, outcome.attempts_remaining) == (Reason.INVALID_SIGNATURE, 4)
    assert outcome.event_json == '{"stored": true}'  # the original event, its id with it
    assert verifier.calls == []
    assert (decided.challenges, decided.attempts, decided.refusals) == ({}, [], [])


def test_a_verified_signature_repeated_answers_verified_again() -> None:
    done = challenge(status=ChallengeStatus.VERIFIED)
    stored = StoredAttempt(verified=True, number=1, event_json='{"verified": true}')
    decided = decide_attempts(
        state(done, attempts={(done.id, GOOD): stored}),
        [attempt(done, GOOD)],
        now=NOW,
        signature_verifies=Verifier(),
    )
    assert decided.outcomes[0].verified
    assert decided.outcomes[0].event_json == '{"verified": true}'


def test_a_redelivered_refusal_stands_though_the_challenge_changed_since() -> None:
    pending = challenge()  # pending now; the refusal was stored when the device limit held
    command = attempt(pending, GOOD)
    refusal = StoredRefusal(
        reason=Reason.DEVICE_LIMIT_REACHED, challenge_id=pending.id, event_json='{"old": 1}'
    )
    decided = decide_attempts(
        state(pending, refusals={str(command.command_id): refusal}),
        [command],
        now=NOW,
        signature_verifies=Verifier(),
    )
    assert decided.outcomes[0].reason is Reason.DEVICE_LIMIT_REACHED
    assert decided.outcomes[0].event_json == '{"old": 1}'
    assert (decided.challenges, decided.bound, decided.refusals) == ({}, [], [])


def test_an_unknown_challenge_is_not_found_and_the_refusal_is_stored() -> None:
    ghost = challenge()
    command = attempt(ghost, GOOD)
    decided = decide_attempts(state(), [command], now=NOW, signature_verifies=Verifier())
    [outcome] = decided.outcomes
    assert outcome.reason is Reason.NOT_FOUND
    [refusal] = decided.refusals
    assert (refusal.command_id, refusal.challenge_id) == (str(command.command_id), ghost.id)
    data = json.loads(outcome.event_json)["data"]
    assert (data["device_id"], data["person_id"], data["attempts_remaining"]) == (None,) * 3


@pytest.mark.parametrize(
    "owner",
    [device(client="bank-2"), device(status=DeviceStatus.UNBOUND)],
    ids=["another client's", "unbound"],
)
def test_a_challenge_the_client_may_not_see_is_not_found(owner: DeviceState) -> None:
    hidden = challenge(owner)
    verifier = Verifier()
    decided = decide_attempts(
        state(hidden), [attempt(hidden, GOOD)], now=NOW, signature_verifies=verifier
    )
    assert decided.outcomes[0].reason is Reason.NOT_FOUND
    assert verifier.calls == []
    assert not decided.challenges


def test_a_person_at_the_device_limit_is_refused_and_the_challenge_stays_pending() -> None:
    pending = challenge()
    full = {pending.device.owner: MAX_BOUND_DEVICES_PER_PERSON}
    decided = decide_attempts(
        state(pending, bound=full), [attempt(pending, GOOD)], now=NOW, signature_verifies=Verifier()
    )
    assert decided.outcomes[0].reason is Reason.DEVICE_LIMIT_REACHED
    assert (decided.challenges, decided.bound, decided.attempts) == ({}, [], [])


def test_the_limit_counts_devices_bound_earlier_in_the_same_batch() -> None:
    first = challenge(device(person="p-9"))
    second = challenge(device(person="p-9"))
    almost = {first.device.owner: MAX_BOUND_DEVICES_PER_PERSON - 1}
    decided = decide_attempts(
        state(first, second, bound=almost),
        [attempt(first, GOOD), attempt(second, GOOD)],
        now=NOW,
        signature_verifies=Verifier(),
    )
    assert [o.reason for o in decided.outcomes] == [None, Reason.DEVICE_LIMIT_REACHED]
    assert [b.device_id for b in decided.bound] == [first.device.id]


def test_commands_of_one_challenge_are_decided_in_order_within_a_batch() -> None:
    pending = challenge()
    verifier = Verifier()
    commands = [attempt(pending, BAD), attempt(pending, GOOD), attempt(pending, "3006020103020103")]

    decided = decide_attempts(state(pending), commands, now=NOW, signature_verifies=verifier)

    assert [o.reason for o in decided.outcomes] == [
        Reason.INVALID_SIGNATURE,
        None,
        Reason.CHALLENGE_ALREADY_VERIFIED,
    ]
    assert verifier.calls == [BAD, GOOD]
    assert [a.number for a in decided.attempts] == [1, 2]
    change = decided.challenges[pending.id]
    assert (change.status, change.failed_attempts) == ("verified", 1)


def test_the_state_read_is_left_as_it_was() -> None:
    pending = challenge()
    read = state(pending)
    decide_attempts(read, [attempt(pending, GOOD)], now=NOW, signature_verifies=Verifier())
    assert read.challenges[pending.id] == pending
    assert not read.attempts
    assert not read.bound_devices


def test_no_event_carries_the_digest_of_the_otp() -> None:
    pending = challenge()
    decided = decide_attempts(
        state(pending), [attempt(pending, BAD)], now=NOW, signature_verifies=Verifier()
    )
    event = decided.outcomes[0].event_json
    assert DIGEST.hex() not in event
    assert "otp" not in event.lower()
