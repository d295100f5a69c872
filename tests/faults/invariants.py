"""The guarantees of SPEC §3-6 and §8 checked after a run by counting, against the worker's
database and the topics themselves: nothing lost, nothing counted twice, nothing wrongly
verified, for binding challenges and device challenges alike.

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

from harness.topics import TopicRecord
from tests.faults.challenge_checks import check_answers_against_store, check_challenges
from tests.faults.client import Call
from tests.faults.driver import Device
from tests.faults.kinds import BINDING, DEVICE, KINDS
from tests.faults.snapshot import StoreSnapshot


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
    # Requests about device challenges (opening them, signing them), and how many of those
    # the clients were given and the store holds (stored beyond given: opened by a request
    # that was retried after a 503, each try opening its own).
    device_requests: int = 0
    device_retried: int = 0  # of those, retried after a 503 (their partition stalled)
    device_challenges: int = 0
    device_challenges_stored: int = 0
    device_verified: int = 0
    events: int = 0
    distinct_events: int = 0
    # By kind: copies of events beyond the requests that could have asked for them, that is
    # commands a worker handled again (redelivered after a crash); a lower bound.
    handled_again: Counter[str] = field(default_factory=Counter)
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
            f"device_requests={self.device_requests} (retried {self.device_retried}) "
            f"device_challenges={self.device_challenges} "
            f"(stored {self.device_challenges_stored}, verified {self.device_verified}) "
            f"events={self.events} distinct_events={self.distinct_events} "
            f"handled_again={dict(sorted(self.handled_again.items()))} "
            f"statuses={dict(sorted(self.statuses.items(), key=lambda kv: str(kv[0])))}"
        )


def check_invariants(
    calls: list[Call],
    devices: list[Device],
    store: StoreSnapshot,
    events: list[TopicRecord],
    otps: list[TopicRecord],
) -> Report:
    """SPEC §3-6 and §8 under faults, by counting. Compares three independent records: what
    the clients were answered, what the worker stored, and what the events topic carries."""
    report = Report(requests=len(calls), otp_replaced=sum(d.otp_replaced for d in devices))
    _check_answers(report, calls)
    distinct = _distinct_events(report, events)
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in distinct.values():
        by_subject[str(event.get("subject"))].append(event)

    opened = {kind.name: _opened(calls, kind.name, kind.opened) for kind in KINDS}
    report.challenges = len(opened[BINDING.name])
    report.device_requests = sum(c.kind == DEVICE.name for c in calls)
    report.device_retried = sum(c.kind == DEVICE.name and c.retries_503 > 0 for c in calls)
    report.device_challenges = len(opened[DEVICE.name])
    report.device_challenges_stored = len(store.device.challenges)
    report.device_verified = sum(c.verified for c in store.device.challenges.values())
    for rows in store.kinds:
        check_challenges(report, rows, by_subject, opened[rows.kind.name])
        check_answers_against_store(report, rows, calls, by_subject)
    _check_stored_events(report, store, distinct)
    _count_handled_again(report, calls, events, distinct)
    _check_otps(report, otps, opened[BINDING.name])
    return report


def _opened(calls: list[Call], kind: str, status: int) -> set[str]:
    """The challenges of ``kind`` a client was given."""
    return {
        c.challenge_id
        for c in calls
        if c.kind == kind and c.method == "POST" and c.status == status and c.challenge_id
    }


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


def _count_handled_again(
    report: Report, calls: list[Call], events: list[TopicRecord], distinct: dict[str, Any]
) -> None:
    """Copies of an event beyond the HTTP requests about its challenge and signature (or,
    for a creation, about its challenge): each request is one command at most, which a
    worker handles once unless it is delivered again."""
    sent: Counter[tuple[str, str | None]] = Counter()
    for call in calls:
        if call.challenge_id is not None:
            sent[(call.challenge_id, call.signature)] += call.http_requests
    copies = Counter(str(value["id"]) for r in events if isinstance(value := r.json(), dict))
    kind_of = {t: k.name for k in KINDS for t in (k.created, k.verified, k.rejected)}
    for event_id, count in copies.items():
        event = distinct.get(event_id)
        kind = kind_of.get(str(event.get("type"))) if event else None
        if event is None or kind is None:
            continue
        asked = sent[(str(event.get("subject")), event["data"].get("signature"))]
        report.handled_again[kind] += max(0, count - asked)


def _check_stored_events(
    report: Report, store: StoreSnapshot, distinct: dict[str, dict[str, Any]]
) -> None:
    """Every stored decision's event is on the topic, exactly as stored."""
    stored = [a.event_json for rows in store.kinds for a in rows.attempts]
    stored += [r.event_json for r in store.refusals]
    for event_json in stored:
        event = json.loads(event_json)
        published = distinct.get(event["id"])
        if published is None:
            report.lost += 1
            report.fail(f"stored decision {event['id']} ({event['type']}) never published")
        elif canonical(published) != canonical(event):
            report.fail(f"event {event['id']} published differently from how it was stored")


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
