"""Every CloudEvents message of the published contract, each result event type and each fraud
signal alike: a change of its type or data that breaks its v1 consumers is reported against
its frozen examples, and an optional addition is not.

What each example must say is tested by type (test_device_signing_contracts.py,
test_person_locked_contracts.py); the tests every example goes through whatever its type (it
parses, holds its key, carries no OTP) are in test_contracts.py."""

from typing import Literal

import pytest
from pydantic import BaseModel

from contracts.messages import DEFAULT_MESSAGES
from schemas.events import (
    CLOUDEVENTS_CONTENT_TYPE,
    ChallengeCreated,
    DeviceChallengeCreated,
    DeviceSignatureAttempt,
    DeviceUnbound,
    KeyAdded,
    PersonLocked,
    SignatureAttempt,
)
from schemas.signals import PersonLockAlert, SuspiciousActivity
from tests.contracts.changes import changed, examples_of, problems_with

pytestmark = pytest.mark.audit

# Each CloudEvents message, the model of its data, and a field of that data its examples all
# carry.
CARRIED: dict[str, tuple[type[BaseModel], str]] = {
    "challenge_created": (ChallengeCreated, "expires_at"),
    "signature_verified": (SignatureAttempt, "decided_at"),
    "signature_rejected": (SignatureAttempt, "decided_at"),
    "device_unbound": (DeviceUnbound, "unbound_at"),
    "device_challenge_created": (DeviceChallengeCreated, "string_to_sign"),
    "device_signature_verified": (DeviceSignatureAttempt, "key_purpose"),
    "device_signature_rejected": (DeviceSignatureAttempt, "key_purpose"),
    "key_added": (KeyAdded, "signed_by_key_id"),
    "person_locked": (PersonLocked, "locked_until"),
    "suspicious_activity": (SuspiciousActivity, "event_ids"),
    "person_lock_alert": (PersonLockAlert, "locked_until"),
}


def test_every_cloudevents_message_is_covered() -> None:
    """A new event type is added here, with a field its examples carry, or goes untested."""
    cloudevents = {
        spec.name for spec in DEFAULT_MESSAGES if spec.content_type == CLOUDEVENTS_CONTENT_TYPE
    }

    assert set(CARRIED) == cloudevents
    for message in CARRIED:
        assert examples_of(message), message


@pytest.mark.parametrize("message", sorted(CARRIED))
def test_a_removed_field_breaks_compatibility(message: str) -> None:
    model, field = CARRIED[message]
    data = changed(model, without=field)

    problems = problems_with(frozenset({message}), data=(data, ...))

    unexpected = f": $.data: Additional properties are not allowed ('{field}' was unexpected)"
    assert problems == [name + unexpected for name in examples_of(message)]


@pytest.mark.parametrize("message", sorted(CARRIED))
def test_a_renamed_field_breaks_compatibility(message: str) -> None:
    model, field = CARRIED[message]
    data = changed(model, without=field, **{f"{field}_v2": (str | None, None)})

    problems = problems_with(frozenset({message}), data=(data, ...))

    assert sorted({problem.split(":")[0] for problem in problems}) == examples_of(message)
    assert all(f"('{field}' was unexpected)" in problem for problem in problems)


@pytest.mark.parametrize("message", sorted(CARRIED))
def test_a_renamed_cloudevents_type_breaks_compatibility(message: str) -> None:
    renamed = f"mfa.device_binding.{message}_v2"

    # What a rename in schemas/ would make of the event's type.
    problems = problems_with(frozenset({message}), type=(Literal[renamed], ...))

    assert problems
    assert all(f"$.type: '{renamed}' was expected" in problem for problem in problems)
    assert sorted({problem.split(":")[0] for problem in problems}) == examples_of(message)


@pytest.mark.parametrize("message", sorted(CARRIED))
def test_a_new_required_field_breaks_compatibility(message: str) -> None:
    model, _ = CARRIED[message]

    problems = problems_with(frozenset({message}), data=(changed(model, channel=(str, ...)), ...))

    assert problems == [
        f"{name}: $.data: 'channel' is a required property" for name in examples_of(message)
    ]


@pytest.mark.parametrize("message", sorted(CARRIED))
def test_a_new_optional_field_is_compatible(message: str) -> None:
    model, _ = CARRIED[message]
    data = changed(model, channel=(str | None, None))

    assert problems_with(frozenset({message}), data=(data, ...)) == []
