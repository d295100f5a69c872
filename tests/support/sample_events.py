"""Result events built with the real wire models, for tests of the events' consumers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from schemas.events import CloudEvent, EventType, SignatureAttempt
from schemas.reasons import Reason

_EPOCH = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def attempt_event(
    number: int,
    *,
    reason: Reason | None = Reason.INVALID_SIGNATURE,
    person_id: str = "person-1",
    device_id: uuid.UUID | None = None,
    decided_at: datetime | None = None,
) -> CloudEvent[SignatureAttempt]:
    """The ``number``-th attempt event of a test: distinct ids, times a second apart."""
    challenge_id = uuid.uuid5(uuid.NAMESPACE_OID, f"challenge-{number}")
    decided = decided_at or _EPOCH + timedelta(seconds=number)
    return CloudEvent[SignatureAttempt](
        id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"event-{number}")),
        type=EventType.SIGNATURE_REJECTED if reason else EventType.SIGNATURE_VERIFIED,
        subject=str(challenge_id),
        time=decided,
        data=SignatureAttempt(
            challenge_id=challenge_id,
            device_id=device_id or uuid.uuid5(uuid.NAMESPACE_OID, f"device-{number}"),
            key_id=uuid.uuid5(uuid.NAMESPACE_OID, f"key-{number}"),
            person_id=person_id,
            client_id="bank-app-1",
            outcome="rejected" if reason else "verified",
            reason=reason,
            attempt=1,
            attempts_remaining=4 if reason else 5,
            device_data=None,
            signature="3045022100" + "ab" * 32 + "0220" + "cd" * 32,
            request_id=f"req-{number}",
            received_at=decided - timedelta(milliseconds=20),
            decided_at=decided,
        ),
    )


def attempt_event_json(number: int) -> bytes:
    return attempt_event(number).model_dump_json().encode()
