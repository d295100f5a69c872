"""A person's limits (SPEC §9) as pure functions: the run of failures across challenges, the
lock and what it refuses, the caps on pending challenges and OTPs, identical refusals."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from schemas.challenges import ChallengeStatus
from schemas.reasons import Reason
from telemetry import limits
from tests.worker.test_attempt_decisions import (
    BAD,
    GOOD,
    NOW,
    Verifier,
    attempt,
    challenge,
    device,
    state,
)
from worker.decisions.attempts import AttemptState, decide_attempts
from worker.decisions.persons import (
    MAX_CONSECUTIVE_FAILURES,
    Limited,
    PersonCounts,
    registration_limited,
)
from worker.state import PersonState, StoredAttempt, StoredRefusal

LOCK = timedelta(minutes=15)


def lock_event(failures: int, at: object, until: object) -> str:
    return json.dumps({"failures": failures})


def test_the_fifth_failure_in_a_row_locks_and_starts_the_count_again() -> None:
    counts = PersonCounts({}, now=NOW, lock_for=LOCK)
    owner = ("bank-1", "p-1")
    events = [counts.failed(owner, attempt=f"a{n}", lock_event=lock_event) for n in range(5)]
    assert events[:4] == [None] * 4
    assert events[4] == json.dumps({"failures": MAX_CONSECUTIVE_FAILURES})
    person = counts.changes[owner].state
    assert (person.consecutive_failures, person.locked_until, person.locked_by) == (
        0,
        NOW + LOCK,
        "a4",
    )
    assert counts.locked_until(owner) == NOW + LOCK
    # The locking attempt, delivered again, announces the same lock again.
    assert counts.lock_of(owner, "a4") == events[4]
    assert counts.lock_of(owner, "a3") is None


def test_a_verified_signature_resets_the_count() -> None:
    owner = ("bank-1", "p-1")
    counts = PersonCounts({owner: PersonState(4)}, now=NOW, lock_for=LOCK)
    counts.verified(owner)
    assert counts.changes[owner].state.consecutive_failures == 0
    assert counts.failed(owner, attempt="a", lock_event=lock_event) is None


def test_failures_across_five_challenges_lock_the_person_and_refuse_the_rest() -> None:
    owner = device()
    challenges = [challenge(owner) for _ in range(6)]
    commands = [attempt(c, BAD) for c in challenges[:5]] + [attempt(challenges[5], GOOD)]
    decided = decide_attempts(
        state(*challenges), commands, now=NOW, signature_verifies=Verifier(), person_lock=LOCK
    )
    reasons = [outcome.reason for outcome in decided.outcomes]
    assert reasons == [Reason.INVALID_SIGNATURE] * 5 + [Reason.PERSON_TEMPORARILY_LOCKED]
    [lock] = decided.outcomes[4].extra_events
    assert lock[0] == f"{owner.client_id}/{owner.person_id}"
    event = json.loads(lock[1])
    assert event["type"] == "mfa.device_binding.person_locked"
    assert event["data"]["consecutive_failures"] == 5
    assert decided.outcomes[5].locked_until == NOW + LOCK
    assert decided.bound == []  # the right signature was never checked


def test_a_redelivered_locking_attempt_announces_the_lock_again() -> None:
    owner = device()
    pending = challenge(owner, failed=1)
    ref = f"{pending.id}\n{BAD}"
    people = {owner.owner: PersonState(0, NOW + LOCK, ref, '{"lock": 1}')}
    stored = {(pending.id, BAD): StoredAttempt(verified=False, number=1, event_json="{}")}
    decided = decide_attempts(
        AttemptState(
            challenges={pending.id: pending},
            attempts=stored,
            refusals={},
            bound_devices={},
            people=people,
        ),
        [attempt(pending, BAD)],
        now=NOW,
        signature_verifies=Verifier(),
    )
    assert decided.outcomes[0].extra_events == (
        (f"{owner.client_id}/{owner.person_id}", '{"lock": 1}'),
    )
    assert decided.people == {}


def test_an_identical_refusal_is_answered_with_the_first_and_adds_no_event() -> None:
    spent = challenge(status=ChallengeStatus.LOCKED)
    first = decide_attempts(
        state(spent), [attempt(spent, GOOD)], now=NOW, signature_verifies=Verifier()
    )
    [refusal] = first.refusals
    assert (refusal.signature, refusal.client_id) == (GOOD, "bank-1")
    earlier = StoredRefusal(Reason.CHALLENGE_LOCKED, spent.id, refusal.event_json)
    again = decide_attempts(
        AttemptState(
            challenges={spent.id: spent},
            attempts={},
            refusals={},
            bound_devices={},
            repeats={(spent.id, GOOD, "bank-1"): earlier},
        ),
        [attempt(spent, GOOD)],
        now=NOW + timedelta(seconds=5),
        signature_verifies=Verifier(),
    )
    assert again.refusals == []
    assert again.outcomes[0].event_json == refusal.event_json


@pytest.mark.parametrize(
    ("person", "pending", "sent", "expected"),
    [
        (None, [], [], None),
        (
            PersonState(0, NOW + LOCK),
            [],
            [],
            Limited(Reason.PERSON_TEMPORARILY_LOCKED, LOCK, NOW + LOCK, limits.PERSON_LOCKED),
        ),
        (PersonState(0, NOW - timedelta(seconds=1)), [], [], None),
        (
            None,
            [NOW + timedelta(minutes=m) for m in (1, 2, 3)],
            [],
            Limited(
                Reason.TOO_MANY_REQUESTS, timedelta(minutes=1), limit=limits.PENDING_CHALLENGES
            ),
        ),
        (None, [NOW + timedelta(minutes=1), NOW - timedelta(minutes=1)], [], None),
        (
            None,
            [],
            [NOW - timedelta(minutes=m) for m in (50, 40, 30, 20, 10)],
            Limited(Reason.TOO_MANY_REQUESTS, timedelta(minutes=10), limit=limits.OTP_SENDS),
        ),
        (None, [], [NOW - timedelta(minutes=m) for m in (70, 40, 30, 20, 10)], None),
    ],
)
def test_a_new_binding_challenge_is_refused_by_the_persons_limits(
    person: PersonState | None,
    pending: list[object],
    sent: list[object],
    expected: Limited | None,
) -> None:
    assert (
        registration_limited(person, pending, sent, now=NOW, otp_sends_per_hour=5)  # type: ignore[arg-type]
        == expected
    )
