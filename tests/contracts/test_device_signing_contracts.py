"""The device signing events (SPEC §8) in the published contract: their frozen v1 examples
say what they say, and a change that breaks their consumers is reported as for every event.

The tests every example goes through (it parses with the current models, holds its message
key, carries no OTP, validates against the document) are in test_contracts.py, the breaking
changes of every event type's data in test_event_types.py; these add what the device signing
examples must show, and the breaking changes inside a payment."""

import json
import re
from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel

from contracts.asyncapi import asyncapi_document
from contracts.compatibility import message_of
from contracts.example_attempts import DEVICE_SIGNATURE_REJECTION_REASONS
from schemas.events import DeviceChallengeCreated, DeviceChallengeCreatedEvent, EventType
from schemas.signing import Money, Payee, Transaction, signed_transaction, string_to_sign
from tests.contracts.changes import EXAMPLES, MESSAGES, changed, examples_of, problems_with

pytestmark = pytest.mark.audit

ATTEMPTS = frozenset({"device_signature_verified", "device_signature_rejected"})
# Each new message, and what its examples' subject, their Kafka key, is: the challenge's id,
# a key added's device.
SUBJECTS = {
    "device_challenge_created": "challenge_id",
    "device_signature_verified": "challenge_id",
    "device_signature_rejected": "challenge_id",
    "key_added": "device_id",
}
NEW_MESSAGES = tuple(SUBJECTS)
# The transaction is optional (null for a login): a payment that no longer fits the
# transaction's schema fits neither branch, and the report names the transaction.
NO_LONGER_A_TRANSACTION = (
    "device_challenge_created.payment: $.data.transaction: "
    + repr(EXAMPLES["device_challenge_created.payment"]["data"]["transaction"])
    + " is not valid under any of the given schemas"
)


def _payment() -> dict[str, Any]:
    data: dict[str, Any] = EXAMPLES["device_challenge_created.payment"]["data"]
    return data


def _payment_problems(transaction: type[BaseModel]) -> list[str]:
    """The examples' problems when the challenge event's data carries ``transaction``."""
    data = changed(DeviceChallengeCreated, transaction=(transaction | None, ...))
    return problems_with(frozenset({"device_challenge_created"}), data=(data, ...))


# The examples.


def test_every_new_event_type_has_its_message_and_examples() -> None:
    for name in NEW_MESSAGES:
        payload = MESSAGES[name].payload
        assert payload is not None
        assert examples_of(name), name
        for example in examples_of(name):
            assert EXAMPLES[example]["type"] == f"mfa.device_binding.{name}", example
            payload.model_validate_json(json.dumps(EXAMPLES[example]))


def test_device_signature_rejected_has_an_example_per_reason() -> None:
    assert examples_of("device_signature_rejected") == sorted(
        f"device_signature_rejected.{reason.value}" for reason in DEVICE_SIGNATURE_REJECTION_REASONS
    )
    assert {reason.value for reason in DEVICE_SIGNATURE_REJECTION_REASONS} == {
        "invalid_signature",
        "challenge_expired",
        "challenge_locked",
        "challenge_already_verified",
        "not_found",
        # SPEC §9: an attempt while the person is locked.
        "person_temporarily_locked",
    }
    for name in examples_of("device_signature_rejected"):
        data = EXAMPLES[name]["data"]
        assert (data["outcome"], data["reason"]) == ("rejected", name.partition(".")[2])
        # Unknown challenge, unknown key: its purpose too.
        assert (data["key_purpose"] is None) is (data["reason"] == "not_found"), name


@pytest.mark.parametrize("name", examples_of(*NEW_MESSAGES))
def test_the_subject_of_each_new_example_is_its_kafka_key(name: str) -> None:
    example = EXAMPLES[name]
    field = SUBJECTS[message_of(name)]

    assert MESSAGES[message_of(name)].key.payload_pointer == "/subject"
    assert example["subject"] == example["data"][field]
    UUID(example["subject"])


def test_the_payment_example_is_12_30_eur_to_an_iban() -> None:
    transaction = Transaction.model_validate(_payment()["transaction"])

    assert transaction.amount == Money(value="12.30", currency="EUR")
    assert transaction.payee.iban == "DE89370400440532013000"
    assert _payment()["key_purpose"] == "restricted"


@pytest.mark.parametrize("name", examples_of("device_challenge_created"))
def test_string_to_sign_is_the_canonical_json_of_the_examples_own_values(name: str) -> None:
    event = DeviceChallengeCreatedEvent.model_validate_json(json.dumps(EXAMPLES[name]))
    data = event.data
    nonce = json.loads(data.string_to_sign)["nonce"]

    assert re.fullmatch("[0-9a-f]{64}", nonce)
    assert data.string_to_sign == string_to_sign(
        challenge_id=data.challenge_id,
        nonce=nonce,
        created_at=data.created_at,
        expires_at=data.expires_at,
        transaction=data.transaction,
    )
    # What the app shows is what the event says was asked for.
    assert signed_transaction(data.string_to_sign) == data.transaction


# Breaking changes inside the payment are reported (those of every event type's own fields:
# test_event_types.py).


def test_a_renamed_field_of_the_payee_breaks_the_payment_example() -> None:
    payee = changed(Payee, without="iban", account=(str | None, None))
    transaction = changed(Transaction, payee=(payee, ...))

    # Only the payment has a payee; the login's transaction is null.
    assert _payment_problems(transaction) == [NO_LONGER_A_TRANSACTION]


def test_an_amount_retyped_as_a_number_breaks_the_payment_example() -> None:
    transaction = changed(Transaction, amount=(changed(Money, value=(float, ...)), ...))

    assert _payment_problems(transaction) == [NO_LONGER_A_TRANSACTION]


def test_device_signature_events_are_typed_apart_from_binding_ones() -> None:
    """A consumer of signature_rejected does not get a device's rejections by mistake."""
    schemas = asyncapi_document()["components"]["schemas"]
    for message in ATTEMPTS:
        event_type = EventType(f"mfa.device_binding.{message}")
        payload = MESSAGES[message].payload
        assert payload is not None
        assert schemas[payload.__name__]["properties"]["type"]["const"] == event_type.value
