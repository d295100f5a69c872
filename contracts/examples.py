"""One example of every event, built from the real models with fixed values: the v1
examples in ``contracts/examples/v1`` (written once, then frozen; see ``python -m contracts``).

The values are :mod:`contracts.example_values`; the attempts, of binding and of device
signing, are :mod:`contracts.example_attempts`."""

from collections.abc import Iterator
from datetime import timedelta

from pydantic import BaseModel

from contracts.example_attempts import (
    DEVICE_SIGNATURE_REJECTION_REASONS,
    device_rejection,
    device_verified,
    rejection,
    verified,
)
from contracts.example_checkpoints import audit_checkpoint
from contracts.example_values import (
    CHALLENGE_ID,
    CLIENT_ID,
    CREATED_AT,
    DEVICE_DATA,
    DEVICE_ID,
    EXPIRES_AT,
    KEY_ADDED_AT,
    KEY_ID,
    LIFETIME,
    LOCK_FAILURES,
    LOCKED_AT,
    LOCKED_UNTIL,
    LOGIN_AT,
    LOGIN_ID,
    LOGIN_NONCE,
    PAYMENT,
    PAYMENT_AT,
    PAYMENT_ID,
    PAYMENT_NONCE,
    PERSON_ID,
    PERSON_SUBJECT,
    RESTRICTED_KEY_ID,
    fixed_id,
)
from schemas.devices import KeyPurpose
from schemas.events import (
    ChallengeCreated,
    ChallengeCreatedEvent,
    DeviceChallengeCreated,
    DeviceChallengeCreatedEvent,
    DeviceUnbound,
    DeviceUnboundEvent,
    EventType,
    KeyAdded,
    KeyAddedEvent,
    PersonLocked,
    PersonLockedEvent,
)
from schemas.reasons import SIGNATURE_REJECTION_REASONS, Reason
from schemas.signals import (
    PersonLockAlert,
    PersonLockAlertEvent,
    ReasonCount,
    Scope,
    SuspiciousActivity,
    SuspiciousActivityEvent,
)
from schemas.signing import string_to_sign


def example_events() -> Iterator[tuple[str, BaseModel]]:
    """Every v1 example as (name, event): ``<message>`` or ``<message>.<variant>``."""
    yield "challenge_created", _challenge_created()
    yield "signature_verified", verified()
    for reason in sorted(SIGNATURE_REJECTION_REASONS):
        yield f"signature_rejected.{reason.value}", rejection(reason)
    yield "device_unbound", _device_unbound()
    for scope in Scope:
        yield f"suspicious_activity.{scope.value}", _suspicious_activity(scope)
    yield "key_added", _key_added()
    yield "device_challenge_created.login", _device_challenge_created(payment=False)
    yield "device_challenge_created.payment", _device_challenge_created(payment=True)
    yield "device_signature_verified", device_verified()
    for reason in sorted(DEVICE_SIGNATURE_REJECTION_REASONS):
        yield f"device_signature_rejected.{reason.value}", device_rejection(reason)
    yield "person_locked", _person_locked()
    yield "person_lock_alert", _person_lock_alert()
    yield "audit_checkpoint", audit_checkpoint()


def _challenge_created() -> ChallengeCreatedEvent:
    return ChallengeCreatedEvent(
        id=str(fixed_id("challenge_created")),
        type=EventType.CHALLENGE_CREATED,
        subject=str(CHALLENGE_ID),
        time=CREATED_AT,
        data=ChallengeCreated(
            challenge_id=CHALLENGE_ID,
            device_id=DEVICE_ID,
            key_id=KEY_ID,
            person_id=PERSON_ID,
            client_id=CLIENT_ID,
            key_purpose=KeyPurpose.UNRESTRICTED.value,
            device_data=DEVICE_DATA,
            request_id="req-6910c58f-register",
            created_at=CREATED_AT,
            expires_at=EXPIRES_AT,
        ),
    )


def _device_unbound() -> DeviceUnboundEvent:
    unbound_at = CREATED_AT + timedelta(days=7, hours=3, minutes=12)
    return DeviceUnboundEvent(
        id=str(fixed_id("device_unbound")),
        type=EventType.DEVICE_UNBOUND,
        subject=str(CHALLENGE_ID),
        time=unbound_at,
        data=DeviceUnbound(
            device_id=DEVICE_ID,
            key_id=KEY_ID,
            person_id=PERSON_ID,
            client_id=CLIENT_ID,
            request_id="req-865e628f-unbind",
            unbound_at=unbound_at,
        ),
    )


def _suspicious_activity(scope: Scope) -> SuspiciousActivityEvent:
    """An alert as the fraud consumer raises it with its default settings (fraud/)."""
    by_device = scope is Scope.DEVICE
    threshold = 5 if by_device else 10
    first = CREATED_AT + timedelta(seconds=42)
    last = first + timedelta(minutes=3, seconds=51)
    reasons = (
        [ReasonCount(reason=Reason.INVALID_SIGNATURE, count=threshold)]
        if by_device
        else [
            ReasonCount(reason=Reason.CHALLENGE_LOCKED, count=2),
            ReasonCount(reason=Reason.INVALID_SIGNATURE, count=threshold - 2),
        ]
    )
    return SuspiciousActivityEvent(
        id=str(fixed_id(f"suspicious_activity:{scope.value}")),
        subject=str(DEVICE_ID) if by_device else PERSON_ID,
        # The alert's time is that of the rejection that made the count reach the threshold.
        time=last,
        data=SuspiciousActivity(
            scope=scope,
            person_id=PERSON_ID,
            device_id=DEVICE_ID if by_device else None,
            client_ids=[CLIENT_ID],
            rejections=threshold,
            threshold=threshold,
            window_seconds=300,
            reasons=reasons,
            first_rejection_at=first,
            last_rejection_at=last,
            event_ids=[str(fixed_id(f"{scope.value}:rejection:{n}")) for n in range(threshold)],
            devices=1 if by_device else 2,
        ),
    )


def _key_added() -> KeyAddedEvent:
    """The restricted key added to the bound device, signed by its binding key."""
    return KeyAddedEvent(
        id=str(fixed_id("key_added")),
        type=EventType.KEY_ADDED,
        # Keyed by the device: a key belongs to no challenge.
        subject=str(DEVICE_ID),
        time=KEY_ADDED_AT,
        data=KeyAdded(
            device_id=DEVICE_ID,
            key_id=RESTRICTED_KEY_ID,
            key_purpose=KeyPurpose.RESTRICTED,
            signed_by_key_id=KEY_ID,
            person_id=PERSON_ID,
            client_id=CLIENT_ID,
            request_id="req-4b0e93d1-add-key",
            added_at=KEY_ADDED_AT,
        ),
    )


def _device_challenge_created(*, payment: bool) -> DeviceChallengeCreatedEvent:
    """The payment, which needs the restricted key, or the login with the unrestricted one."""
    if payment:
        challenge_id, created_at, nonce = PAYMENT_ID, PAYMENT_AT, PAYMENT_NONCE
        key_id, purpose, transaction = RESTRICTED_KEY_ID, KeyPurpose.RESTRICTED, PAYMENT
        request_id = "req-7d2c51a9-pay"
    else:
        challenge_id, created_at, nonce = LOGIN_ID, LOGIN_AT, LOGIN_NONCE
        key_id, purpose, transaction = KEY_ID, KeyPurpose.UNRESTRICTED, None
        request_id = "req-e5a0f3c6-login"
    expires_at = created_at + LIFETIME
    return DeviceChallengeCreatedEvent(
        id=str(fixed_id(f"device_challenge_created:{challenge_id}")),
        type=EventType.DEVICE_CHALLENGE_CREATED,
        subject=str(challenge_id),
        time=created_at,
        data=DeviceChallengeCreated(
            challenge_id=challenge_id,
            device_id=DEVICE_ID,
            key_id=key_id,
            key_purpose=purpose,
            person_id=PERSON_ID,
            client_id=CLIENT_ID,
            transaction=transaction,
            # The very text the worker makes and the device signs, nonce and all.
            string_to_sign=string_to_sign(
                challenge_id=challenge_id,
                nonce=nonce,
                created_at=created_at,
                expires_at=expires_at,
                transaction=transaction,
            ),
            device_data=DEVICE_DATA,
            request_id=request_id,
            created_at=created_at,
            expires_at=expires_at,
        ),
    )


def _person_locked() -> PersonLockedEvent:
    """The person locked by a wrong signature on the payment, their 5th failure in a row."""
    return PersonLockedEvent(
        id=str(fixed_id("person_locked")),
        type=EventType.PERSON_LOCKED,
        # Keyed by the person: a lock belongs to no one challenge.
        subject=PERSON_SUBJECT,
        time=LOCKED_AT,
        data=PersonLocked(
            person_id=PERSON_ID,
            client_id=CLIENT_ID,
            consecutive_failures=LOCK_FAILURES,
            challenge_id=PAYMENT_ID,
            device_id=DEVICE_ID,
            request_id="req-3f81c0d7-pay",
            locked_at=LOCKED_AT,
            locked_until=LOCKED_UNTIL,
        ),
    )


def _person_lock_alert() -> PersonLockAlertEvent:
    """The fraud consumer's alert on the example lock (fraud/locks.py)."""
    lock = _person_locked()
    return PersonLockAlertEvent(
        id=str(fixed_id("person_lock_alert")),
        subject=lock.subject,
        time=lock.time,
        data=PersonLockAlert(**lock.data.model_dump(exclude={"request_id"}), event_id=lock.id),
    )
