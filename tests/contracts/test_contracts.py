"""The published contracts in contracts/: no drift from the code, and no break with v1.

The committed v1 examples are the baseline: each test of a breaking change builds changed
models, generates the AsyncAPI document from them and expects the examples to be reported.
"""

import copy
import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, cast, get_args

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, create_model
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from contracts.__main__ import check, write, write_missing_examples
from contracts.asyncapi import asyncapi_document
from contracts.channels import CHANNELS, COMMANDS_CHANNEL, EVENTS_CHANNEL
from contracts.compatibility import compatibility_problems, drift, message_of
from contracts.documents import CONTRACTS_DIR, generated_documents
from contracts.examples import example_events
from contracts.messages import DEFAULT_MESSAGES
from schemas import topics
from schemas.commands import Command, command_key
from schemas.events import SignatureAttempt
from schemas.model import WireModel
from tests.contracts.changes import (
    EXAMPLES,
    MESSAGES,
    at,
    changed,
    examples_of,
    members,
    messages_with,
    problems_with,
)

pytestmark = pytest.mark.audit

ATTEMPT_MESSAGES = frozenset({"signature_verified", "signature_rejected"})


@pytest.fixture(scope="module")
def generated() -> dict[str, dict[str, Any]]:
    return generated_documents()


def _committed(name: str) -> Any:
    return json.loads((CONTRACTS_DIR / name).read_text())


def _attempt_data(*, without: str | None = None, **fields: Any) -> type[BaseModel]:
    """``SignatureAttempt`` changed: ``without`` removed, ``fields`` added or retyped."""
    return changed(SignatureAttempt, without=without, **fields)


def _attempt_problems(data: type[BaseModel]) -> list[str]:
    """What the v1 examples report against a document whose attempt events carry ``data``."""
    return problems_with(ATTEMPT_MESSAGES, data=(data, ...))


# Drift: the committed documents are what the code generates.


@pytest.mark.parametrize("name", ["asyncapi.json", "openapi.json"])
def test_committed_documents_are_what_the_code_generates(
    generated: dict[str, dict[str, Any]], name: str
) -> None:
    assert drift(_committed(name), generated[name]) == [], "run `make contracts`"


def test_drift_names_the_path_of_a_removed_field() -> None:
    document = asyncapi_document(
        messages_with(ATTEMPT_MESSAGES, data=(_attempt_data(without="attempt"), ...))
    )

    differences = drift(_committed("asyncapi.json"), document)

    removed = "/components/schemas/SignatureAttempt/properties/attempt: only in the committed file"
    assert removed in differences


def test_drift_names_the_path_of_an_added_field() -> None:
    data = _attempt_data(channel=(str | None, None))
    document = asyncapi_document(messages_with(ATTEMPT_MESSAGES, data=(data, ...)))

    differences = drift(_committed("asyncapi.json"), document)

    assert differences == [
        "/components/schemas/SignatureAttempt/properties/channel: only in the generated document"
    ]


def test_drift_tells_json_values_apart_that_python_equates() -> None:
    assert drift({"a": [1, 2]}, {"a": [True, 2.0, 3]}) == [
        "/a/0: committed 1, generated true",
        "/a/1: committed 2, generated 2.0",
        "/a: 2 items committed, 3 generated",
    ]
    assert drift({"x/y": {"~": 1}}, {"x/y": {}}) == ["/x~1y/~0: only in the committed file"]


def test_check_names_each_drifted_file_and_its_first_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path)
    assert check(tmp_path) == 0
    asyncapi = json.loads((tmp_path / "asyncapi.json").read_text())
    del asyncapi["components"]["schemas"]["SignatureAttempt"]["properties"]["attempt"]
    (tmp_path / "asyncapi.json").write_text(json.dumps(asyncapi))
    capsys.readouterr()

    assert check(tmp_path) == 1

    errors = capsys.readouterr().err
    assert str(tmp_path / "asyncapi.json") in errors
    assert "first at /components/schemas/SignatureAttempt/properties/attempt: only in" in errors
    assert "openapi.json" not in errors


# The frozen v1 examples.


def test_examples_are_never_written_over(tmp_path: Path) -> None:
    write_missing_examples(tmp_path)
    folder = tmp_path / "examples" / "v1"
    frozen = folder / "signature_verified.json"
    frozen.write_text('{"frozen": true}\n')
    (folder / "device_unbound.json").unlink()

    write_missing_examples(tmp_path)

    assert frozen.read_text() == '{"frozen": true}\n'
    assert (folder / "device_unbound.json").exists()


def test_every_example_the_code_would_write_is_committed() -> None:
    """A new event type, rejection reason or scope needs its example: `make contracts`."""
    assert {name for name, _ in example_events()} <= EXAMPLES.keys()


def test_committed_examples_are_compatible_with_the_current_document() -> None:
    assert compatibility_problems(EXAMPLES, asyncapi_document()) == []


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_committed_examples_parse_with_the_current_models(name: str) -> None:
    payload = MESSAGES[message_of(name)].payload
    assert payload is not None

    payload.model_validate_json(json.dumps(EXAMPLES[name]))


def test_no_example_carries_an_otp() -> None:
    for name, example in EXAMPLES.items():
        assert not [key for key, _ in members(example) if "otp" in key.lower()], name


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_holds_its_message_key(name: str) -> None:
    pointer = MESSAGES[message_of(name)].key.payload_pointer
    assert pointer is not None

    assert isinstance(at(EXAMPLES[name], pointer), str)


# Breaking changes are reported; an optional addition is not.


def test_a_removed_field_breaks_compatibility() -> None:
    problems = _attempt_problems(_attempt_data(without="attempt"))

    unexpected = ": $.data: Additional properties are not allowed ('attempt' was unexpected)"
    assert problems == [name + unexpected for name in examples_of(*ATTEMPT_MESSAGES)]


def test_a_retyped_field_breaks_compatibility() -> None:
    problems = _attempt_problems(_attempt_data(attempt=(str | None, ...)))

    # Only the examples with a counted attempt carry a number the new type refuses.
    assert problems == [
        "signature_rejected.invalid_signature: $.data.attempt: 2 is not valid under any of the "
        "given schemas",
        "signature_verified: $.data.attempt: 1 is not valid under any of the given schemas",
    ]


def test_a_renamed_cloudevents_type_breaks_compatibility() -> None:
    renamed = Literal["mfa.device_binding.signature_refused"]
    document = asyncapi_document(
        messages_with(frozenset({"signature_rejected"}), type=(renamed, ...))
    )

    problems = compatibility_problems(EXAMPLES, document)

    assert problems
    assert all("$.type: 'mfa.device_binding.signature_refused' was expected" in p for p in problems)
    assert sorted({problem.split(":")[0] for problem in problems}) == examples_of(
        "signature_rejected"
    )


def test_a_new_required_field_breaks_compatibility() -> None:
    """The v1 messages already on the topic lack it: a consumer reading them back breaks."""
    problems = _attempt_problems(_attempt_data(channel=(str, ...)))

    assert "signature_verified: $.data: 'channel' is a required property" in problems


def test_a_new_optional_field_is_compatible() -> None:
    assert _attempt_problems(_attempt_data(channel=(str | None, None))) == []


def test_v1_consumers_of_the_published_schema_accept_a_later_optional_field() -> None:
    """What makes the optional addition safe: public schemas do not refuse unknown fields."""
    published = _committed("asyncapi.json")
    registry: Registry[Any] = Registry().with_resource(
        "urn:published", DRAFT202012.create_resource(published)
    )
    newer = copy.deepcopy(EXAMPLES["signature_rejected.invalid_signature"])
    newer["data"]["channel"] = "mobile"
    payload = {"$ref": "urn:published#/components/messages/signature_rejected/payload"}

    assert list(Draft202012Validator(payload, registry=registry).iter_errors(newer)) == []


def test_internal_payloads_keep_refusing_unknown_fields() -> None:
    schemas = asyncapi_document()["components"]["schemas"]

    assert schemas["VerifySignature"]["additionalProperties"] is False
    assert schemas["Reply"]["additionalProperties"] is False
    assert "additionalProperties" not in schemas["SignatureAttempt"]


# The document's shape.


def test_every_topic_has_its_channel() -> None:
    names = {
        value
        for name, value in vars(topics).items()
        if name.isupper() and not name.endswith("_HEADER")
    }
    assert {channel.address for channel in CHANNELS} == names


def test_every_command_type_is_its_own_message() -> None:
    union = get_args(Command)[0]
    on_commands = {spec.payload for spec in DEFAULT_MESSAGES if spec.channel == COMMANDS_CHANNEL}

    assert on_commands == set(get_args(union))


def test_command_keys_are_what_the_api_publishes() -> None:
    for spec in DEFAULT_MESSAGES:
        if spec.channel != COMMANDS_CHANNEL:
            continue
        assert spec.payload is not None
        assert spec.key.payload_pointer is not None
        field = spec.key.payload_pointer.removeprefix("/")
        value: Any = uuid.uuid4() if spec.key.is_uuid else "person-1"
        # command_key reads the key's field only, so the other fields may stay unset.
        command = cast(Command, spec.payload.model_construct(**{field: value}))

        assert command_key(command) == str(value).encode(), spec.name


def test_every_reference_in_the_document_resolves() -> None:
    document = asyncapi_document()

    references = {value for key, value in members(document) if key == "$ref"}

    assert "#/components/schemas/SignatureAttempt" in references
    for reference in sorted(references):
        at(document, reference)


def test_a_model_in_public_and_internal_messages_is_published_open_and_closed() -> None:
    """Open for the public message, and closed, under its own name, for the internal one."""
    public_reply = replace(MESSAGES["reply"], name="public_reply", channel=EVENTS_CHANNEL)

    document = asyncapi_document((*DEFAULT_MESSAGES, public_reply))

    messages, schemas = document["components"]["messages"], document["components"]["schemas"]
    assert messages["public_reply"]["payload"] == {"$ref": "#/components/schemas/Reply"}
    assert messages["reply"]["payload"] == {"$ref": "#/components/schemas/ReplyInternal"}
    assert "additionalProperties" not in schemas["Reply"]
    assert schemas["ReplyInternal"] == {**schemas["Reply"], "additionalProperties": False}


def test_the_models_events_and_commands_share_are_closed_in_the_commands_only() -> None:
    """A payment is in an event and in the command that opens its challenge."""
    schemas = asyncapi_document()["components"]["schemas"]
    command, event = schemas["OpenDeviceChallenge"], schemas["DeviceChallengeCreated"]

    assert "TransactionInternal" in json.dumps(command["properties"]["transaction"])
    assert "TransactionInternal" not in json.dumps(event)
    for name in ("Transaction", "Money", "Payee"):
        assert "additionalProperties" not in schemas[name], name
        assert schemas[f"{name}Internal"]["additionalProperties"] is False, name
    assert schemas["TransactionInternal"]["properties"]["amount"] == {
        "$ref": "#/components/schemas/MoneyInternal"
    }


def test_an_internal_copy_may_not_take_a_public_name() -> None:
    squatter = create_model("ReplyInternal", __base__=WireModel, note=(str, ...))
    messages = (
        *messages_with(frozenset({"signature_rejected"}), data=(squatter, ...)),
        replace(MESSAGES["reply"], name="public_reply", channel=EVENTS_CHANNEL),
    )

    with pytest.raises(ValueError, match="ReplyInternal taken"):
        asyncapi_document(messages)


def test_message_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        asyncapi_document((*DEFAULT_MESSAGES, DEFAULT_MESSAGES[0]))
