"""The invariants of one kind of challenge (binding, or device signing), checked alike: the
store's challenges and counted attempts against the events topic, and against what the
clients were answered. Used by :func:`tests.faults.invariants.check_invariants`."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from schemas.challenges import MAX_FAILED_ATTEMPTS
from tests.faults.client import Call
from tests.faults.snapshot import Attempt, Challenges

if TYPE_CHECKING:
    from tests.faults.invariants import Report

Events = dict[str, list[dict[str, Any]]]  # by subject (the challenge id)


def check_challenges(
    report: Report, rows: Challenges, by_subject: Events, opened: set[str]
) -> None:
    """Each stored challenge: announced once, its failures counted once each (in the store
    and on the topic), verified at most once and then with its effect, locked exactly at
    the limit; and each challenge a client was given is stored."""
    kind = rows.kind
    attempts: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in rows.attempts:
        attempts[attempt.challenge_id].append(attempt)
    for challenge_id in opened - rows.challenges.keys():
        report.lost += 1
        report.fail(f"{kind.name} challenge {challenge_id} answered {kind.opened}, not stored")
    for challenge_id, challenge in rows.challenges.items():
        name = f"{kind.name} challenge {challenge_id}"
        events = by_subject.get(challenge_id, [])
        created = [e for e in events if e["type"] == kind.created]
        verified = [e for e in events if e["type"] == kind.verified]
        counted = sorted(
            e["data"]["attempt"]
            for e in events
            if e["type"] == kind.rejected
            and e["data"]["reason"] == "invalid_signature"
            and e["data"]["attempt"] is not None
        )
        rejected_rows = [a for a in attempts[challenge_id] if a.outcome == "rejected"]
        verified_rows = [a for a in attempts[challenge_id] if a.outcome == "verified"]
        failures = challenge.failed_attempts
        if len(created) != 1:
            report.fail(f"{name}: {len(created)} {kind.created} events")
        if failures > MAX_FAILED_ATTEMPTS or len(rejected_rows) != failures:
            report.double_counted += 1
            report.fail(f"{name}: failed_attempts={failures}, {len(rejected_rows)} rejected rows")
        if counted != list(range(1, failures + 1)):
            report.double_counted += len(counted) > failures
            report.fail(
                f"{name}: failed_attempts={failures} but counted invalid_signature events "
                f"have attempts {counted}"
            )
        if len(verified) > 1 or (len(verified) == 1) != challenge.verified:
            report.fail(f"{name}: status {challenge.status} with {len(verified)} verified events")
        if len(verified_rows) != int(challenge.verified):
            report.fail(f"{name}: status {challenge.status}, {len(verified_rows)} verified rows")
        if (challenge.status == "locked") != (failures == MAX_FAILED_ATTEMPTS):
            report.fail(f"{name}: status {challenge.status}, {failures} failures")
        if not challenge.effect_matches:
            report.fail(f"{name}: {challenge.status}, {challenge.effect} not matching")
    _check_attempt_events(report, rows, by_subject)


def _check_attempt_events(report: Report, rows: Challenges, by_subject: Events) -> None:
    """Exactly one counted event per counted attempt, the one stored with it: a redelivered
    or retried signature, whatever its command id, is never counted (nor announced as
    counted) again."""
    kind = rows.kind
    rows_per_signature = Counter((a.challenge_id, a.signature) for a in rows.attempts)
    for (challenge_id, _), count in rows_per_signature.items():
        if count > 1:
            report.double_counted += 1
            report.fail(f"{kind.name} challenge {challenge_id}: one signature counted {count}x")
    for attempt in rows.attempts:
        stored_id = json.loads(attempt.event_json)["id"]
        counted_ids = {
            e["id"]
            for e in by_subject.get(attempt.challenge_id, [])
            if e["type"] in (kind.verified, kind.rejected)
            and e["data"]["attempt"] is not None
            and e["data"]["signature"] == attempt.signature
        }
        if counted_ids != {stored_id}:
            report.double_counted += len(counted_ids) > 1
            report.fail(
                f"{kind.name} challenge {attempt.challenge_id}: attempt {attempt.number} "
                f"stored with event {stored_id}, counted by events {sorted(counted_ids)}"
            )


def check_answers_against_store(
    report: Report, rows: Challenges, calls: list[Call], by_subject: Events
) -> None:
    """What the clients were answered on this kind's route agrees with the store and the
    topic: 204 only for the signature that verified, every answered signature announced,
    every distinct signature answered ``invalid_signature`` counted exactly once."""
    kind = rows.kind
    verified_signature = {
        a.challenge_id: a.signature for a in rows.attempts if a.outcome == "verified"
    }
    puts = [
        c
        for c in calls
        if c.kind == kind.name and c.method == "PUT" and c.status is not None and c.challenge_id
    ]
    correct = {(c.challenge_id, c.signature) for c in calls if c.kind == kind.name and c.correct}
    told_failed: dict[str, set[str]] = defaultdict(set)
    told_verified: set[str] = set()
    for call in puts:
        assert call.challenge_id is not None
        if (call.status, call.code) == (403, "invalid_signature") and call.signature:
            told_failed[call.challenge_id].add(call.signature)
        if call.status == 204:
            told_verified.add(call.challenge_id)
            challenge = rows.challenges.get(call.challenge_id)
            if (
                challenge is None
                or not challenge.verified
                or verified_signature.get(call.challenge_id) != call.signature
            ):
                report.wrongly_verified += 1
                report.fail(f"204 for {kind.name} challenge {call.challenge_id}, not so stored")
        # Every attempt that reached a worker has its event (an identical retry: the original).
        if not any(
            e["data"].get("signature") == call.signature
            for e in by_subject.get(call.challenge_id, [])
            if e["type"] in (kind.verified, kind.rejected)
        ):
            report.lost += 1
            report.fail(f"{call.label} {call.request_id}: answered {call.status}, no event")
    for challenge_id, challenge in rows.challenges.items():
        name = f"{kind.name} challenge {challenge_id}"
        failures = len(told_failed.get(challenge_id, ()))
        if challenge.failed_attempts > failures:
            report.double_counted += 1
            report.fail(
                f"{name}: {challenge.failed_attempts} failures stored, "
                f"{failures} distinct signatures answered invalid_signature"
            )
        elif challenge.failed_attempts < failures:
            report.lost += 1
            report.fail(
                f"{name}: {failures} signatures answered invalid_signature, "
                f"only {challenge.failed_attempts} stored"
            )
        if challenge_id in verified_signature:
            if (challenge_id, verified_signature[challenge_id]) not in correct:
                report.wrongly_verified += 1
                report.fail(f"{name} verified by a signature that was not right")
            if challenge_id not in told_verified:
                report.fail(f"{name} verified but no client was answered 204")
