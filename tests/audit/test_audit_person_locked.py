"""The audit trail keeps person_locked (SPEC §9) as it keeps every event: stored once, exactly
as published, in the hash chain, with the person (client_id/person_id) as its subject.

Nothing in the trail names an event type (audit/envelope.py reads the CloudEvents id, type
and subject); these tests show a lock goes through it among the attempts that led to it, on
SQLite and PostgreSQL, and that shortening a stored lock is caught."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from audit.envelope import read_event
from audit.trail import AuditTrail
from audit.verification import verify_chain
from tests.audit.test_audit_device_signing import deliveries, published, records
from tests.audit.test_audit_trail import attacker
from tests.support.sample_events import (
    attempt_event,
    device_attempt_event,
    person_locked_event,
)

pytestmark = pytest.mark.audit

PERSON_LOCKED = "mfa.device_binding.person_locked"


def failures_then_lock(number: int) -> list[BaseModel]:
    """Five failed signatures of person-1, binding and device signing, then their lock."""
    return [
        attempt_event(number),
        attempt_event(number + 1),
        device_attempt_event(number + 2),
        device_attempt_event(number + 3),
        device_attempt_event(number + 4),
        person_locked_event(number + 4),
    ]


def test_person_locked_is_read_with_its_type_and_the_person_as_subject() -> None:
    event = person_locked_event(1)

    read = read_event(published(event))

    assert (read.event_id, read.event_type) == (event.id, PERSON_LOCKED)
    assert read.subject == "bank-app-1/person-1"
    assert json.loads(read.canonical) == json.loads(published(event))


async def test_person_locked_is_stored_once_and_chained(audit_engine: AsyncEngine) -> None:
    trail = AuditTrail(audit_engine)
    # Two locks of person-1 apart, and a lock of another client's person-1 by a key addition.
    events = [
        *failures_then_lock(0),
        *failures_then_lock(10),
        person_locked_event(20, client_id="bank-app-2", by_key_addition=True),
    ]

    first = await trail.append(deliveries(events))
    # The worker announcing the first lock again, with its id: nothing new.
    again = await trail.append(deliveries(events[4:7], first_offset=4))

    assert (first.appended, first.duplicates, first.anomalies) == (13, 0, 0)
    assert (again.appended, again.duplicates, again.anomalies) == (0, 3, 0)
    rows = await records(audit_engine)
    locks = [(row.seq, row.subject) for row in rows if row.event_type == PERSON_LOCKED]
    assert locks == [
        (6, "bank-app-1/person-1"),
        (12, "bank-app-1/person-1"),
        (13, "bank-app-2/person-1"),
    ]
    # Exactly as published, the lock's end and the missing challenge included.
    assert [json.loads(row.event) for row in rows] == [
        json.loads(published(event)) for event in events
    ]
    assert json.loads(rows[-1].event)["data"]["challenge_id"] is None
    # Each record linked to the one before it.
    assert [row.previous_hash for row in rows[1:]] == [row.record_hash for row in rows[:-1]]
    report = await verify_chain(audit_engine)
    assert report.intact, report.describe()
    assert report.records == 13


async def test_a_shortened_lock_is_named(audit_engine: AsyncEngine) -> None:
    events = failures_then_lock(0)
    await AuditTrail(audit_engine).append(deliveries(events))
    assert events[-1].model_dump(mode="json")["data"]["locked_until"] == "2026-11-29T12:15:04Z"

    # The lock ending a second after it started rather than a quarter of an hour.
    await attacker(
        audit_engine,
        "UPDATE audit_records SET event = "
        "REPLACE(event, '2026-11-29T12:15:04Z', '2026-11-29T12:00:05Z') WHERE seq = 6",
    )

    report = await verify_chain(audit_engine)
    assert report.broken is not None
    assert (report.broken.seq, report.broken.event_id) == (6, person_locked_event(4).id)
    assert "event was changed" in report.broken.problem
