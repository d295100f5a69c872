"""Result events, with CloudEvents ids that stay the same when an event is published again.

An id is a UUIDv5 of what the event is about: the command for an attempt, the challenge for
its creation, the device for its unbinding. A redelivered command therefore yields an event
with the id it had the first time, and consumers can drop the copy.
"""

import uuid
from datetime import datetime

from pydantic import TypeAdapter

from schemas.commands import VerifySignature
from schemas.events import (
    ChallengeCreated,
    CloudEvent,
    DeviceUnbound,
    EventType,
    SignatureAttempt,
)
from schemas.reasons import Reason
from worker.state import DeviceState
from worker.store import Binding
from worker.tables import DeviceRow

_NAMESPACE = uuid.UUID("6f1f3c53-2b0e-4f57-9d3a-6a0d3c1e8b21")
_ATTEMPT_EVENT = TypeAdapter(CloudEvent[SignatureAttempt])


def _event_id(kind: str, subject: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{subject}"))


def challenge_created(binding: Binding, *, request_id: str) -> CloudEvent[ChallengeCreated]:
    device, challenge = binding.device, binding.challenge
    return CloudEvent[ChallengeCreated](
        id=_event_id("challenge_created", challenge.id),
        type=EventType.CHALLENGE_CREATED,
        subject=challenge.id,
        time=challenge.created_at,
        data=ChallengeCreated(
            challenge_id=uuid.UUID(challenge.id),
            device_id=uuid.UUID(device.id),
            key_id=uuid.UUID(device.key_id),
            person_id=device.person_id,
            client_id=device.client_id,
            key_purpose=device.key_purpose,
            device_data=device.device_data,
            request_id=request_id,
            created_at=challenge.created_at,
            expires_at=challenge.expires_at,
        ),
    )


def signature_attempt(
    command: VerifySignature,
    device: DeviceState | None,
    *,
    reason: Reason | None,
    attempt: int | None,
    attempts_remaining: int | None,
    decided_at: datetime,
) -> str:
    """The JSON of the one event of one attempt; ``reason`` None means it verified."""
    challenge_id = str(command.challenge_id)
    # Validated from plain values (ids as text): the model checks every field, in Rust,
    # without a Python UUID object made for each.
    event = _ATTEMPT_EVENT.validate_python(
        {
            "id": _event_id("attempt", command.command_id),
            "type": EventType.SIGNATURE_REJECTED if reason else EventType.SIGNATURE_VERIFIED,
            "subject": challenge_id,
            "time": decided_at,
            "data": {
                "challenge_id": challenge_id,
                "device_id": device.id if device else None,
                "key_id": device.key_id if device else None,
                "person_id": device.person_id if device else None,
                "client_id": command.client_id,
                "outcome": "rejected" if reason else "verified",
                "reason": reason,
                "attempt": attempt,
                "attempts_remaining": attempts_remaining,
                "device_data": command.device_data,
                "signature": command.signature,
                "request_id": command.request_id,
                "received_at": command.issued_at,
                "decided_at": decided_at,
            },
        }
    )
    return _ATTEMPT_EVENT.dump_json(event).decode()


def device_unbound(
    device: DeviceRow, *, challenge_id: str, unbound_at: datetime
) -> CloudEvent[DeviceUnbound]:
    return CloudEvent[DeviceUnbound](
        id=_event_id("device_unbound", device.id),
        type=EventType.DEVICE_UNBOUND,
        subject=challenge_id,
        time=unbound_at,
        data=DeviceUnbound(
            device_id=uuid.UUID(device.id),
            key_id=uuid.UUID(device.key_id),
            person_id=device.person_id,
            client_id=device.client_id,
            request_id=device.unbound_by_request or "",
            unbound_at=unbound_at,
        ),
    )
