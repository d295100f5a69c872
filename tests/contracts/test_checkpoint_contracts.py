"""The audit checkpoints channel in the published contract: its message, its key, and an
example whose signature really verifies over the documented statement."""

import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contracts.asyncapi import asyncapi_document
from contracts.compatibility import compatibility_problems
from contracts.example_checkpoints import example_key
from contracts.messages import DEFAULT_MESSAGES
from schemas import topics
from schemas.checkpoints import AuditCheckpoint
from tests.contracts.changes import EXAMPLES, MESSAGES, changed

pytestmark = pytest.mark.audit


def example() -> AuditCheckpoint:
    return AuditCheckpoint.model_validate_json(json.dumps(EXAMPLES["audit_checkpoint"]))


def test_the_checkpoints_topic_carries_the_checkpoint_keyed_by_the_chain() -> None:
    document = asyncapi_document()
    channel = document["channels"]["audit_checkpoints"]

    assert channel["address"] == topics.AUDIT_CHECKPOINTS
    assert list(channel["messages"]) == ["audit_checkpoint"]
    assert MESSAGES["audit_checkpoint"].key.payload_pointer == "/chain"
    assert {"audit.send.audit_checkpoints", "auditor.receive.audit_checkpoints"} <= set(
        document["operations"]
    )


def test_the_committed_example_is_signed_over_the_documented_statement() -> None:
    checkpoint = example()
    public_key: Ed25519PublicKey = example_key().public_key()
    statement = (
        f"mfa.device-binding.audit-checkpoint.v1\n{checkpoint.chain}\n{checkpoint.seq}\n"
        f"{checkpoint.record_hash}\n2026-12-06T18:00:00.125000Z\n{checkpoint.key_id}"
    ).encode()

    assert checkpoint.statement() == statement
    public_key.verify(bytes.fromhex(checkpoint.signature), statement)


def test_a_removed_signature_breaks_the_v1_example() -> None:
    without = changed(AuditCheckpoint, without="signature")
    messages = tuple(
        replace(spec, payload=without) if spec.name == "audit_checkpoint" else spec
        for spec in DEFAULT_MESSAGES
    )

    problems = compatibility_problems(EXAMPLES, asyncapi_document(messages))

    assert [problem.split(":")[0] for problem in problems] == ["audit_checkpoint"]
