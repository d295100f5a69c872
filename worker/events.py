"""Result events, with CloudEvents ids that stay the same when an event is published again.

An id is a UUIDv5 of what the event is about: the command for an attempt, the challenge for
its creation, the device for its unbinding. A redelivered command therefore yields an event
with the id it had the first time, and consumers can drop the copy.
"""

import uuid
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from schemas.commands import AddDeviceKey, AttemptCommand, VerifyDeviceSignature
from schemas.devices import KeyPurpose
from schemas.events import (
    ChallengeCreated,
    CloudEvent,
    DeviceChallengeCreated,
    DeviceSignatureAttempt,
    DeviceUnbound,
    EventType,
    KeyAdded,
    PersonLocked,
    SignatureAttempt,
)
from schemas.reasons import Reason
from schemas.signing import Transaction
from worker.state import DeviceState
from worker.store import Binding
from worker.tables import DeviceChallengeRow, DeviceKeyRow, DeviceRow

_NAMESPACE = uuid.UUID("6f1f3c53-2b0e-4f57-9d3a-6a0d3c1e8b21")
_ATTEMPT_EVENT = TypeAdapter(CloudEvent[SignatureAttempt])
_DEVICE_ATTEMPT_EVENT = TypeAdapter(CloudEvent[DeviceSignatureAttempt])


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
    command: AttemptCommand,
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
    data = {
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
    }
    if isinstance(command, VerifyDeviceSignature):
        data["key_purpose"] = device.key_purpose if device else None
        rejected, verified = (
            EventType.DEVICE_SIGNATURE_REJECTED,
            EventType.DEVICE_SIGNATURE_VERIFIED,
        )
        adapter: TypeAdapter[CloudEvent[Any]] = _DEVICE_ATTEMPT_EVENT
    else:
        rejected, verified = EventType.SIGNATURE_REJECTED, EventType.SIGNATURE_VERIFIED
        adapter = _ATTEMPT_EVENT
    event = adapter.validate_python(
        {
            "id": _event_id("attempt", command.command_id),
            "type": rejected if reason else verified,
            "subject": challenge_id,
            "time": decided_at,
            "data": data,
        }
    )
    return adapter.dump_json(event).decode()


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


def device_challenge_created(
    challenge: DeviceChallengeRow, device: DeviceRow
) -> CloudEvent[DeviceChallengeCreated]:
    transaction = challenge.transaction_json
    return CloudEvent[DeviceChallengeCreated](
        id=_event_id("device_challenge_created", challenge.id),
        type=EventType.DEVICE_CHALLENGE_CREATED,
        subject=challenge.id,
        time=challenge.created_at,
        data=DeviceChallengeCreated(
            challenge_id=uuid.UUID(challenge.id),
            device_id=uuid.UUID(device.id),
            key_id=uuid.UUID(challenge.key_id),
            key_purpose=KeyPurpose(challenge.key_purpose),
            person_id=device.person_id,
            client_id=device.client_id,
            transaction=(
                None if transaction is None else Transaction.model_validate_json(transaction)
            ),
            string_to_sign=challenge.string_to_sign,
            device_data=challenge.device_data,
            request_id=challenge.created_by_request,
            created_at=challenge.created_at,
            expires_at=challenge.expires_at,
        ),
    )


def key_added(key: DeviceKeyRow, device: DeviceRow) -> CloudEvent[KeyAdded]:
    return CloudEvent[KeyAdded](
        id=_event_id("key_added", key.id),
        type=EventType.KEY_ADDED,
        subject=device.id,
        time=key.created_at,
        data=KeyAdded(
            device_id=uuid.UUID(device.id),
            key_id=uuid.UUID(key.id),
            key_purpose=KeyPurpose(key.key_purpose),
            signed_by_key_id=uuid.UUID(key.signed_by_key_id or key.id),
            person_id=device.person_id,
            client_id=device.client_id,
            request_id=key.created_by_request,
            added_at=key.created_at,
        ),
    )


def person_key(client_id: str, person_id: str) -> str:
    """The Kafka key and CloudEvents subject of a person's events: one partition, in order."""
    return f"{client_id}/{person_id}"


def person_locked(
    command: AttemptCommand | AddDeviceKey,
    device: DeviceState | DeviceRow,
    *,
    failures: int,
    locked_at: datetime,
    locked_until: datetime,
) -> str:
    """The JSON of the event of a person's lock, started by ``command``'s failed signature."""
    subject = person_key(device.client_id, device.person_id)
    event = CloudEvent[PersonLocked](
        # One lock per person and start time: the same when announced again.
        id=_event_id("person_locked", f"{subject}@{locked_at.isoformat()}"),
        type=EventType.PERSON_LOCKED,
        subject=subject,
        time=locked_at,
        data=PersonLocked(
            person_id=device.person_id,
            client_id=device.client_id,
            consecutive_failures=failures,
            challenge_id=None if isinstance(command, AddDeviceKey) else command.challenge_id,
            device_id=uuid.UUID(device.id),
            request_id=command.request_id,
            locked_at=locked_at,
            locked_until=locked_until,
        ),
    )
    return event.model_dump_json()
