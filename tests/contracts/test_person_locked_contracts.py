"""The person_locked event (SPEC §9) in the published contract: its frozen v1 example says
what a lock is, and it is keyed by the person, not by a challenge.

The tests every example goes through are in test_contracts.py, the breaking changes of every
event type's data in test_event_types.py; these add what this type's example must show."""

import copy
import json
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from contracts.asyncapi import asyncapi_document
from contracts.compatibility import compatibility_problems
from schemas.events import EventType, PersonLocked, PersonLockedEvent
from tests.contracts.changes import (
    EXAMPLES,
    MESSAGES,
    changed,
    examples_of,
    messages_with,
    problems_with,
)

pytestmark = pytest.mark.audit


def _example() -> dict[str, Any]:
    example: dict[str, Any] = copy.deepcopy(EXAMPLES["person_locked"])
    return example


def _by_key_addition() -> dict[str, Any]:
    """The example as a lock started by a key addition: no challenge, only the device."""
    example = _example()
    example["data"]["challenge_id"] = None
    return example


def test_person_locked_has_its_message_and_one_example() -> None:
    assert examples_of("person_locked") == ["person_locked"]

    event = PersonLockedEvent.model_validate_json(json.dumps(_example()))

    assert event.type is EventType.PERSON_LOCKED
    assert MESSAGES["person_locked"].payload is PersonLockedEvent


def test_the_example_is_a_lock_at_the_fifth_failure_for_the_default_time() -> None:
    event = PersonLockedEvent.model_validate_json(json.dumps(_example()))
    data = event.data

    # SPEC §9: 5 failures in a row; PERSON_LOCK_SECONDS defaults to 900.
    assert data.consecutive_failures == 5
    assert data.locked_until - data.locked_at == timedelta(seconds=900)
    assert event.time == data.locked_at
    # The attempt that locked the person: a failed signature on a challenge of a device.
    assert data.challenge_id is not None
    assert data.device_id is not None


def test_the_subject_is_the_person_within_the_client_and_is_the_kafka_key() -> None:
    example = _example()
    key = MESSAGES["person_locked"].key

    assert example["subject"] == f"{example['data']['client_id']}/{example['data']['person_id']}"
    assert key.payload_pointer == "/subject"
    # No UUID: a consumer generated from the document must not expect one.
    assert "format" not in key.schema()
    published = asyncapi_document()["components"]["messages"]["person_locked"]
    assert published["bindings"]["kafka"]["key"] == key.schema()


def test_a_lock_by_a_key_addition_has_no_challenge_and_fits_the_document() -> None:
    examples = {"person_locked.key_addition": _by_key_addition()}

    assert compatibility_problems(examples, asyncapi_document()) == []
    PersonLockedEvent.model_validate_json(json.dumps(_by_key_addition()))


def test_the_lock_end_retyped_as_seconds_breaks_compatibility() -> None:
    data = changed(PersonLocked, locked_until=(int, ...))

    problems = problems_with(frozenset({"person_locked"}), data=(data, ...))

    until = _example()["data"]["locked_until"]
    assert problems == [f"person_locked: $.data.locked_until: {until!r} is not of type 'integer'"]


def test_a_challenge_no_longer_nullable_breaks_a_lock_by_a_key_addition() -> None:
    """The frozen example names a challenge, so it alone would not tell: a lock started by a
    key addition, with none, does."""
    data = changed(PersonLocked, challenge_id=(UUID, ...))
    document = asyncapi_document(messages_with(frozenset({"person_locked"}), data=(data, ...)))

    problems = compatibility_problems({"person_locked.key_addition": _by_key_addition()}, document)

    assert problems == [
        "person_locked.key_addition: $.data.challenge_id: None is not of type 'string'"
    ]
