"""Result events on ``mfa.device-binding.events.v1``: CloudEvents 1.0, structured JSON mode.

Consumed by the audit and fraud teams: field names are a public contract. No event carries
the OTP or anything derived from it.
"""

from datetime import datetime
from enum import StrEnum
from typing import Generic, Literal, TypeVar
from uuid import UUID

from pydantic import Field

from schemas.devices import KeyPurpose
from schemas.model import WireModel
from schemas.reasons import Reason
from schemas.signing import Transaction

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
EVENT_SOURCE = "/mfa/device-binding"


class EventType(StrEnum):
    CHALLENGE_CREATED = "mfa.device_binding.challenge_created"
    SIGNATURE_VERIFIED = "mfa.device_binding.signature_verified"
    SIGNATURE_REJECTED = "mfa.device_binding.signature_rejected"
    DEVICE_UNBOUND = "mfa.device_binding.device_unbound"
    DEVICE_CHALLENGE_CREATED = "mfa.device_binding.device_challenge_created"
    DEVICE_SIGNATURE_VERIFIED = "mfa.device_binding.device_signature_verified"
    DEVICE_SIGNATURE_REJECTED = "mfa.device_binding.device_signature_rejected"
    KEY_ADDED = "mfa.device_binding.key_added"
    PERSON_LOCKED = "mfa.device_binding.person_locked"


class ChallengeCreated(WireModel):
    challenge_id: UUID
    device_id: UUID
    key_id: UUID
    person_id: str
    client_id: str
    key_purpose: str
    device_data: str | None
    request_id: str
    created_at: datetime
    expires_at: datetime


class SignatureAttempt(WireModel):
    """Data of ``signature_verified`` and ``signature_rejected``: one per attempt."""

    challenge_id: UUID
    # Unknown when the challenge is unknown (reason not_found).
    device_id: UUID | None
    key_id: UUID | None
    person_id: str | None
    client_id: str
    outcome: Literal["verified", "rejected"]
    reason: Reason | None
    # The attempt's number among the challenge's counted attempts; None when not counted.
    attempt: int | None
    attempts_remaining: int | None
    device_data: str | None
    signature: str
    request_id: str
    received_at: datetime
    decided_at: datetime


class DeviceUnbound(WireModel):
    device_id: UUID
    key_id: UUID
    person_id: str
    client_id: str
    request_id: str
    unbound_at: datetime


class DeviceChallengeCreated(WireModel):
    """A device signing challenge opened (SPEC §8): what the device is asked to sign, and
    the payment when there is one. ``string_to_sign`` is no secret: the app shows it."""

    challenge_id: UUID
    device_id: UUID
    key_id: UUID
    key_purpose: KeyPurpose
    person_id: str
    client_id: str
    transaction: Transaction | None
    string_to_sign: str
    device_data: str | None
    request_id: str
    created_at: datetime
    expires_at: datetime


class DeviceSignatureAttempt(SignatureAttempt):
    """Data of ``device_signature_verified`` and ``device_signature_rejected``: one per
    attempt, as for binding, with the purpose of the key that was to sign."""

    # Unknown when the challenge is unknown (reason not_found).
    key_purpose: KeyPurpose | None


class KeyAdded(WireModel):
    """A key added to a bound device, vouched for by the key that signed it."""

    device_id: UUID
    key_id: UUID
    key_purpose: KeyPurpose
    signed_by_key_id: UUID
    person_id: str
    client_id: str
    request_id: str
    added_at: datetime


class PersonLocked(WireModel):
    """A person's new challenges are refused until ``locked_until`` (SPEC §9): the failed
    signature that made ``consecutive_failures`` reach the limit, and where it happened."""

    person_id: str
    client_id: str
    consecutive_failures: int
    # The attempt that locked the person: its challenge (or, for a key addition, its device).
    challenge_id: UUID | None
    device_id: UUID | None
    request_id: str
    locked_at: datetime
    locked_until: datetime


Data = TypeVar(
    "Data",
    ChallengeCreated,
    SignatureAttempt,
    DeviceUnbound,
    DeviceChallengeCreated,
    DeviceSignatureAttempt,
    KeyAdded,
    PersonLocked,
)


class Envelope(WireModel):
    """The CloudEvents attributes every event of this product carries, data aside."""

    specversion: Literal["1.0"] = "1.0"
    # The same whenever the same fact is published again: consumers deduplicate by it.
    id: str
    source: str = EVENT_SOURCE
    subject: str
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"


class CloudEvent(Envelope, Generic[Data]):
    type: EventType
    data: Data = Field()


# Each event type as its own model, ``type`` narrowed to its one value: what a consumer of
# that message may rely on, and what makes a renamed type visible to the compatibility
# check. The worker builds exactly these pairs of type and data (worker/events.py); the
# AsyncAPI document and the v1 examples are made of them.
class ChallengeCreatedEvent(CloudEvent[ChallengeCreated]):
    """``challenge_created``: a device was registered and its challenge issued."""

    type: Literal[EventType.CHALLENGE_CREATED]


class SignatureVerifiedEvent(CloudEvent[SignatureAttempt]):
    """``signature_verified``: an attempt whose signature verified."""

    type: Literal[EventType.SIGNATURE_VERIFIED]


class SignatureRejectedEvent(CloudEvent[SignatureAttempt]):
    """``signature_rejected``: an attempt that was refused, ``data.reason`` saying why."""

    type: Literal[EventType.SIGNATURE_REJECTED]


class DeviceUnboundEvent(CloudEvent[DeviceUnbound]):
    """``device_unbound``: a device was unbound; ``subject`` is the challenge that bound it."""

    type: Literal[EventType.DEVICE_UNBOUND]


class DeviceChallengeCreatedEvent(CloudEvent[DeviceChallengeCreated]):
    """``device_challenge_created``: a bound device was asked to sign (a login, a payment)."""

    type: Literal[EventType.DEVICE_CHALLENGE_CREATED]


class DeviceSignatureVerifiedEvent(CloudEvent[DeviceSignatureAttempt]):
    """``device_signature_verified``: a device signing attempt whose signature verified."""

    type: Literal[EventType.DEVICE_SIGNATURE_VERIFIED]


class DeviceSignatureRejectedEvent(CloudEvent[DeviceSignatureAttempt]):
    """``device_signature_rejected``: a device signing attempt refused, ``data.reason``
    saying why."""

    type: Literal[EventType.DEVICE_SIGNATURE_REJECTED]


class KeyAddedEvent(CloudEvent[KeyAdded]):
    """``key_added``: a key was added to a bound device; ``subject`` is the device."""

    type: Literal[EventType.KEY_ADDED]


class PersonLockedEvent(CloudEvent[PersonLocked]):
    """``person_locked``: too many failed signatures in a row; ``subject`` is the person
    (``client_id/person_id``), the Kafka key too, so a person's locks stay in order."""

    type: Literal[EventType.PERSON_LOCKED]
