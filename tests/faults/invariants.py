"""The guarantees of SPEC §3-6 checked after a run by counting, against the worker's database
and the topics themselves: nothing lost, nothing counted twice, nothing wrongly verified.

Typical use::

    await wait_until_drained(bootstrap, settings.consumer_group, settings.commands_topic)
    report = check_invariants(driver.calls, driver.devices, await read_store(url),
                              await read_topic(...events...), await read_topic(...otps...))
    assert report.violations == []
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from harness.topics import TopicRecord
from schemas.challenges import MAX_FAILED_ATTEMPTS
from storage.engine import create_engine
from tests.faults.driver import CREATED, REJECTED, VERIFIED, Call, Device
from worker.tables import AttemptRow, ChallengeRow, DeviceRow, RefusalRow

# The store


@dataclass(frozen=True)
class StoreSnapshot:
    challenges: dict[str, ChallengeRow]
    devices: dict[str, DeviceRow]
    attempts: list[AttemptRow]
    refusals: list[RefusalRow]


async def read_store(database_url: str) -> StoreSnapshot:
    """The worker database's rows, read directly (not through the API)."""
    engine = create_engine(database_url)
    try:
        async with AsyncSession(engine) as session:
            challenges = (await session.scalars(select(ChallengeRow))).all()
            devices = (await session.scalars(select(DeviceRow))).all()
            attempts = (await session.scalars(select(AttemptRow))).all()
            refusals = (await session.scalars(select(RefusalRow))).all()
    finally:
        await engine.dispose()
    return StoreSnapshot(
        {c.id: c for c in challenges}, {d.id: d for d in devices}, list(attempts), list(refusals)
    )


# The invariants


def canonical(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal content, equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Report:
    """What :func:`check_invariants` counted; ``violations`` names every broken guarantee."""

    requests: int = 0
    http_requests: int = 0
    retries_503: int = 0
    retried_requests: int = 0
    transport_retries: int = 0
    lost: int = 0
    double_counted: int = 0
    wrongly_verified: int = 0
    otp_replaced: int = 0
    challenges: int = 0
    challenges_with_several_otps: int = 0
    # Challenge id -> OTP deliveries, for every challenge that got more than one.
    several_otps: dict[str, int] = field(default_factory=dict)
    events: int = 0
    distinct_events: int = 0
    statuses: Counter[int | None] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.violations.append(message)

    def summary(self) -> str:
        return (
            f"requests={self.requests} http_requests={self.http_requests} "
            f"503_retries={self.retries_503} (on {self.retried_requests} requests) "
            f"transport_retries={self.transport_retries} lost={self.lost} "
            f"double_counted={self.double_counted} wrongly_verified={self.wrongly_verified} "
            f"challenges={self.challenges} otp_replaced={self.otp_replaced} "
            f"several_otps={self.challenges_with_several_otps} "
            f"events={self.events} distinct_events={self.distinct_events} "
            f"statuses={dict(sorted(self.statuses.items(), key=lambda kv: str(kv[0])))}"
        )


def check_invariants(
    calls: list[Call],
    devices: list[Device],
    store: StoreSnapshot,
    events: list[TopicRecord],
    otps: list[TopicRecord],
) -> Report:
    """SPEC §3-6 under faults, by counting. Compares three independent records: what the
    clients were answered, what the worker stored, and what the events topic carries."""
    report = Report(requests=len(calls), otp_replaced=sum(d.otp_replaced for d in devices))
    _check_answers(report, calls)
    distinct = _distinct_events(report, events)
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in distinct.values():
        by_subject[str(event.get("subject"))].append(event)

    registered = {c.challenge_id for c in calls if c.status == 202 and c.challenge_id}
    report.challenges = len(registered)
    _check_challenges(report, store, by_subject, registered)
    _check_stored_events(report, store, distinct)
    _check_answers_against_store(report, calls, store, by_subject)
    _check_otps(report, otps, registered)
    return report


def _check_answers(report: Report, calls: list[Call]) -> None:
    for call in calls:
        report.http_requests += call.http_requests
        report.retries_503 += call.retries_503
        report.retried_requests += call.retries_503 > 0
        report.transport_retries += call.retries["transport"]
        report.statuses[call.status] += 1
        if call.status is None:
            report.lost += 1
            report.fail(f"{call.label} {call.request_id}: no terminal answer ({call.retries})")
        if call.problem is not None:
            report.fail(f"{call.label} {call.request_id}: {call.problem}")
        expected = call.expected
        if call.status is not None and expected not in (None, (call.status, call.code)):
            report.fail(
                f"{call.label} {call.request_id} on {call.challenge_id}: answered "
                f"{call.status} {call.code}, expected {expected}"
            )


def _distinct_events(report: Report, events: list[TopicRecord]) -> dict[str, dict[str, Any]]:
    """One event per CloudEvents id; copies of an id must be identical."""
    copies: dict[str, set[str]] = defaultdict(set)
    first: dict[str, dict[str, Any]] = {}
    for record in events:
        value = record.json()
        if not isinstance(value, dict) or not isinstance(value.get("id"), str):
            report.fail(f"event at {record.partition}/{record.offset} is not a CloudEvent")
            continue
        copies[value["id"]].add(canonical(value))
        first.setdefault(value["id"], value)
        if record.key is not None and record.key.decode() != value.get("subject"):
            report.fail(f"event {value['id']} keyed {record.key!r}, not by its challenge")
    for event_id, texts in copies.items():
        if len(texts) > 1:
            report.fail(f"event id {event_id} published with {len(texts)} different contents")
    report.events, report.distinct_events = len(events), len(first)
    return first


def _check_challenges(
    report: Report,
    store: StoreSnapshot,
    by_subject: dict[str, list[dict[str, Any]]],
    registered: set[str],
) -> None:
    attempts: dict[str, list[AttemptRow]] = defaultdict(list)
    for attempt in store.attempts:
        attempts[attempt.challenge_id].append(attempt)
    for challenge_id in registered - store.challenges.keys():
        report.lost += 1
        report.fail(f"challenge {challenge_id} answered 202 but not in the store")
    for challenge_id, challenge in store.challenges.items():
        events = by_subject.get(challenge_id, [])
        created = [e for e in events if e["type"] == CREATED]
        verified = [e for e in events if e["type"] == VERIFIED]
        counted = sorted(
            e["data"]["attempt"]
            for e in events
            if e["type"] == REJECTED
            and e["data"]["reason"] == "invalid_signature"
            and e["data"]["attempt"] is not None
        )
        rejected_rows = [a for a in attempts[challenge_id] if a.outcome == "rejected"]
        verified_rows = [a for a in attempts[challenge_id] if a.outcome == "verified"]
        failures = challenge.failed_attempts
        if len(created) != 1:
            report.fail(f"challenge {challenge_id}: {len(created)} challenge_created events")
        if failures > MAX_FAILED_ATTEMPTS or len(rejected_rows) != failures:
            report.double_counted += 1
            report.fail(
                f"challenge {challenge_id}: failed_attempts={failures}, "
                f"{len(rejected_rows)} rejected attempt rows"
            )
        if counted != list(range(1, failures + 1)):
            report.double_counted += len(counted) > failures
            report.fail(
                f"challenge {challenge_id}: failed_attempts={failures} but counted "
                f"invalid_signature events have attempts {counted}"
            )
        is_verified = challenge.status == "verified"
        if len(verified) > 1 or (len(verified) == 1) != is_verified:
            report.fail(
                f"challenge {challenge_id}: status {challenge.status} with "
                f"{len(verified)} signature_verified events"
            )
        if len(verified_rows) != int(is_verified):
            report.fail(
                f"challenge {challenge_id}: status {challenge.status} with "
                f"{len(verified_rows)} verified attempt rows"
            )
        if (challenge.status == "locked") != (failures == MAX_FAILED_ATTEMPTS):
            report.fail(f"challenge {challenge_id}: status {challenge.status}, {failures} failures")
        device = store.devices.get(challenge.device_id)
        if device is None or (device.status == "bound") != is_verified:
            report.fail(f"challenge {challenge_id}: {challenge.status}, device not matching")


def _check_stored_events(
    report: Report, store: StoreSnapshot, distinct: dict[str, dict[str, Any]]
) -> None:
    """Every stored decision's event is on the topic, exactly as stored."""
    stored = [a.event_json for a in store.attempts] + [r.event_json for r in store.refusals]
    for event_json in stored:
        event = json.loads(event_json)
        published = distinct.get(event["id"])
        if published is None:
            report.lost += 1
            report.fail(f"stored decision {event['id']} ({event['type']}) never published")
        elif canonical(published) != canonical(event):
            report.fail(f"event {event['id']} published differently from how it was stored")


def _check_answers_against_store(
    report: Report,
    calls: list[Call],
    store: StoreSnapshot,
    by_subject: dict[str, list[dict[str, Any]]],
) -> None:
    verified_signature = {
        a.challenge_id: a.signature for a in store.attempts if a.outcome == "verified"
    }
    correct = {(c.challenge_id, c.signature) for c in calls if c.correct}
    told_failed: dict[str, set[str]] = defaultdict(set)
    told_verified: set[str] = set()
    for call in calls:
        if call.method != "PUT" or call.status is None or call.challenge_id is None:
            continue
        if (call.status, call.code) == (403, "invalid_signature") and call.signature:
            told_failed[call.challenge_id].add(call.signature)
        if call.status == 204:
            told_verified.add(call.challenge_id)
            challenge = store.challenges.get(call.challenge_id)
            if (
                challenge is None
                or challenge.status != "verified"
                or verified_signature.get(call.challenge_id) != call.signature
            ):
                report.wrongly_verified += 1
                report.fail(f"204 for {call.challenge_id} not verified by that signature in store")
        # Every attempt that reached a worker has its event (an identical retry: the original).
        if not any(
            e["data"].get("signature") == call.signature
            for e in by_subject.get(call.challenge_id, [])
            if e["type"] in (VERIFIED, REJECTED)
        ):
            report.lost += 1
            report.fail(f"{call.label} {call.request_id}: answered {call.status}, no event")
    for challenge_id, challenge in store.challenges.items():
        failures = len(told_failed.get(challenge_id, ()))
        if challenge.failed_attempts > failures:
            report.double_counted += 1
            report.fail(
                f"challenge {challenge_id}: {challenge.failed_attempts} failures stored, "
                f"{failures} distinct signatures answered invalid_signature"
            )
        elif challenge.failed_attempts < failures:
            report.lost += 1
            report.fail(
                f"challenge {challenge_id}: {failures} signatures answered invalid_signature, "
                f"only {challenge.failed_attempts} stored"
            )
        if challenge_id in verified_signature:
            if (challenge_id, verified_signature[challenge_id]) not in correct:
                report.wrongly_verified += 1
                report.fail(f"challenge {challenge_id} verified by a signature that was not right")
            if challenge_id not in told_verified:
                report.fail(f"challenge {challenge_id} verified but no client was answered 204")


def _check_otps(report: Report, otps: list[TopicRecord], registered: set[str]) -> None:
    per_challenge = Counter(str(record.json()["challenge_id"]) for record in otps)
    for challenge_id in registered:
        if per_challenge[challenge_id] == 0:
            report.fail(f"challenge {challenge_id}: no OTP delivered")
    report.several_otps = {c: per_challenge[c] for c in sorted(registered) if per_challenge[c] > 1}
    report.challenges_with_several_otps = len(report.several_otps)


def longest_stall(events: list[TopicRecord], since_ms: int) -> float | None:
    """Seconds from ``since_ms`` until every partition of the events topic had an event again.

    Events carry the time the worker produced them; a partition whose worker was killed gets
    none until the group has handed it to another member, so this is how long the killed
    worker's partitions went unprocessed (the slowest partition, every partition pausing
    during the rebalance). None when some partition never had an event afterwards.
    """
    first_after: dict[int, int] = {}
    partitions = {record.partition for record in events}
    for record in events:
        if record.timestamp_ms > since_ms:
            seen = first_after.get(record.partition)
            if seen is None or record.timestamp_ms < seen:
                first_after[record.partition] = record.timestamp_ms
    if not partitions or first_after.keys() != partitions:
        return None
    return (max(first_after.values()) - since_ms) / 1000
