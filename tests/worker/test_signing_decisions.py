"""Device signing's rules as pure functions (SPEC §8): no database, no broker.

The attempts on device challenges go through the binding attempts' rules
(``decide_attempts``) with two differences checked here: a verified device signature marks
its key used instead of binding, and the limit of bound devices does not apply. Opening a
challenge and adding a key are ``worker.decisions.signing``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from schemas.challenges import ChallengeStatus
from schemas.commands import AddDeviceKey, OpenDeviceChallenge, VerifyDeviceSignature
from schemas.devices import MAX_BOUND_DEVICES_PER_PERSON, DeviceStatus, KeyPurpose
from schemas.reasons import Reason
from schemas.signing import KeyAddition, Transaction, signed_transaction
from tests.support.worker import DeviceKey
from tests.worker.test_attempt_decisions import (
    BAD,
    GOOD,
    Verifier,
    attempt,
    challenge,
    device,
    state,
)
from worker.decisions.attempts import decide_attempts
from worker.decisions.signing import (
    Refused,
    added_key,
    by_purpose,
    chosen_key,
    device_challenge_row,
    visible,
)
from worker.signing import key_signs
from worker.state import ChallengeKind, ChallengeState
from worker.tables import DeviceKeyRow, DeviceRow

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PAYMENT = Transaction.model_validate(
    {"amount": {"value": "12.30", "currency": "EUR"}, "payee": {"name": "Café Zoë"}}
)


def header() -> dict[str, object]:
    return {
        "command_id": uuid.uuid4(),
        "request_id": "req-1",
        "client_id": "bank-1",
        "reply_to": "api-1",
        "issued_at": NOW,
    }


def key_row(purpose: KeyPurpose, key: DeviceKey | None = None) -> DeviceKeyRow:
    return DeviceKeyRow(
        id=str(uuid.uuid4()),
        device_id="d-1",
        key_purpose=purpose.value,
        public_key=(key or DeviceKey()).public_hex,
        created_at=NOW,
        created_by_command=str(uuid.uuid4()),
        created_by_request="req-0",
    )


def opening(
    purpose: KeyPurpose | None = None, transaction: Transaction | None = None
) -> OpenDeviceChallenge:
    return OpenDeviceChallenge(
        **header(),  # type: ignore[arg-type]
        challenge_id=uuid.uuid4(),
        device_id=uuid.uuid4(),
        key_purpose=purpose,
        transaction=transaction,
    )


def device_challenge(
    *, failed: int = 0, status: ChallengeStatus = ChallengeStatus.PENDING
) -> ChallengeState:
    bound = device(status=DeviceStatus.BOUND)
    plain = challenge(bound, failed=failed, status=status)
    return ChallengeState(
        id=plain.id,
        device=bound,
        status=plain.status,
        failed_attempts=plain.failed_attempts,
        expires_at=plain.expires_at,
        digest=plain.digest,
        kind=ChallengeKind.DEVICE,
    )


def signing(of: ChallengeState, signature: str) -> VerifyDeviceSignature:
    return VerifyDeviceSignature(
        **header(),  # type: ignore[arg-type]
        challenge_id=uuid.UUID(of.id),
        signature=signature,
    )


def test_a_verified_device_signature_marks_its_key_used_and_binds_nothing() -> None:
    pending = device_challenge()
    # The person is at the limit of bound devices: irrelevant to signing with a bound one.
    full = {pending.device.owner: MAX_BOUND_DEVICES_PER_PERSON}
    decided = decide_attempts(
        state(pending, bound=full), [signing(pending, GOOD)], now=NOW, signature_verifies=Verifier()
    )
    [outcome] = decided.outcomes
    assert (outcome.verified, outcome.reason) == (True, None)
    assert decided.bound == []
    assert [(used.key_id, used.used_at) for used in decided.keys_used] == [
        (pending.device.key_id, NOW)
    ]
    change = decided.challenges[pending.id]
    assert (change.kind, change.status, change.digest) == (ChallengeKind.DEVICE, "verified", None)
    [counted] = decided.attempts
    assert counted.kind is ChallengeKind.DEVICE
    event = json.loads(outcome.event_json)
    assert event["type"] == "mfa.device_binding.device_signature_verified"
    assert event["data"]["key_purpose"] == "unrestricted"


def test_device_attempts_lock_after_five_failures_like_binding_ones() -> None:
    pending = device_challenge(failed=4)
    decided = decide_attempts(
        state(pending),
        [signing(pending, BAD), signing(pending, GOOD)],
        now=NOW,
        signature_verifies=Verifier(),
    )
    assert [o.reason for o in decided.outcomes] == [
        Reason.INVALID_SIGNATURE,
        Reason.CHALLENGE_LOCKED,
    ]
    assert decided.keys_used == []
    rejected = json.loads(decided.outcomes[0].event_json)
    assert rejected["type"] == "mfa.device_binding.device_signature_rejected"
    assert rejected["data"]["attempts_remaining"] == 0


def test_a_challenge_of_the_other_kind_is_not_found() -> None:
    binding = challenge(device())
    device_kind = device_challenge()
    commands = [signing(binding, GOOD)]
    decided = decide_attempts(
        state(binding, device_kind),
        [*commands, attempt(device_kind, GOOD)],
        now=NOW,
        signature_verifies=Verifier(),
    )
    assert [o.reason for o in decided.outcomes] == [Reason.NOT_FOUND, Reason.NOT_FOUND]
    assert decided.challenges == {}


@pytest.mark.parametrize(
    ("held", "wanted", "transaction", "expected"),
    [
        ({KeyPurpose.UNRESTRICTED}, None, None, KeyPurpose.UNRESTRICTED),
        ({KeyPurpose.UNRESTRICTED, KeyPurpose.RESTRICTED}, None, None, KeyPurpose.RESTRICTED),
        (
            {KeyPurpose.UNRESTRICTED, KeyPurpose.RESTRICTED},
            KeyPurpose.UNRESTRICTED,
            None,
            KeyPurpose.UNRESTRICTED,
        ),
        ({KeyPurpose.RESTRICTED}, None, PAYMENT, KeyPurpose.RESTRICTED),
        ({KeyPurpose.UNRESTRICTED}, None, PAYMENT, Reason.RESTRICTED_KEY_REQUIRED),
        (
            {KeyPurpose.UNRESTRICTED, KeyPurpose.RESTRICTED},
            KeyPurpose.UNRESTRICTED,
            PAYMENT,
            Reason.RESTRICTED_KEY_REQUIRED,
        ),
        ({KeyPurpose.UNRESTRICTED}, KeyPurpose.RESTRICTED, None, Reason.RESTRICTED_KEY_REQUIRED),
        ({KeyPurpose.RESTRICTED}, KeyPurpose.UNRESTRICTED, None, Reason.KEY_PURPOSE_MISSING),
    ],
)
def test_the_key_a_challenge_is_signed_with(
    held: set[KeyPurpose],
    wanted: KeyPurpose | None,
    transaction: Transaction | None,
    expected: KeyPurpose | Reason,
) -> None:
    keys = by_purpose([key_row(purpose) for purpose in held])
    chosen = chosen_key(keys, opening(wanted, transaction))
    if isinstance(expected, Reason):
        assert chosen == Refused(expected)
    else:
        assert isinstance(chosen, DeviceKeyRow)
        assert chosen.key_purpose == expected.value


def test_the_string_to_sign_carries_the_transaction_and_its_digest_is_stored() -> None:
    key = key_row(KeyPurpose.RESTRICTED)
    command = opening(transaction=PAYMENT)
    row = device_challenge_row(command, key, now=NOW, ttl=timedelta(minutes=5), nonce="ab" * 32)
    document = json.loads(row.string_to_sign)
    assert sorted(document) == ["challenge_id", "created_at", "expires_at", "nonce", "transaction"]
    assert document["transaction"]["amount"] == {"currency": "EUR", "value": "12.30"}
    assert signed_transaction(row.string_to_sign) == PAYMENT
    assert row.message_digest == hashlib.sha256(row.string_to_sign.encode("utf-8")).digest()
    # Canonical: sorted keys, no whitespace, UTF-8 as is.
    assert row.string_to_sign == json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert "Café Zoë" in row.string_to_sign
    assert (row.key_id, row.expires_at) == (key.id, NOW + timedelta(minutes=5))


def test_a_login_string_to_sign_has_no_transaction() -> None:
    row = device_challenge_row(
        opening(),
        key_row(KeyPurpose.UNRESTRICTED),
        now=NOW,
        ttl=timedelta(minutes=5),
        nonce="cd" * 32,
    )
    assert "transaction" not in json.loads(row.string_to_sign)
    assert row.transaction_json is None


def adding(new: DeviceKey, purpose: KeyPurpose, signer: DeviceKey, by: KeyPurpose) -> AddDeviceKey:
    addition = KeyAddition.model_validate(
        {
            "key_type": "ecdsa-p256",
            "key": new.public_hex,
            "key_purpose": purpose,
            "device_signature": {
                "signature_key_purpose": by,
                "signature": signer.sign(new.public_hex),
            },
        }
    )
    return AddDeviceKey(**header(), device_id=uuid.uuid4(), key_id=uuid.uuid4(), addition=addition)  # type: ignore[arg-type]


def test_a_key_is_added_when_an_existing_key_signed_it() -> None:
    phone, new = DeviceKey(), DeviceKey()
    binding = key_row(KeyPurpose.UNRESTRICTED, phone)
    command = adding(new, KeyPurpose.RESTRICTED, phone, KeyPurpose.UNRESTRICTED)
    added = added_key(command, by_purpose([binding]), now=NOW, verifies=key_signs)
    assert isinstance(added, DeviceKeyRow)
    assert (added.key_purpose, added.public_key, added.signed_by_key_id) == (
        "restricted",
        new.public_hex,
        binding.id,
    )


@pytest.mark.parametrize("case", ["stranger", "absent_purpose", "taken"])
def test_a_key_is_refused(case: str) -> None:
    phone, new = DeviceKey(), DeviceKey()
    held = [key_row(KeyPurpose.UNRESTRICTED, phone)]
    signer, by, purpose = phone, KeyPurpose.UNRESTRICTED, KeyPurpose.RESTRICTED
    expected = Reason.INVALID_SIGNATURE
    if case == "stranger":
        signer = DeviceKey()
    elif case == "absent_purpose":
        by = KeyPurpose.RESTRICTED
    else:
        purpose, expected = KeyPurpose.UNRESTRICTED, Reason.KEY_PURPOSE_TAKEN
    command = adding(new, purpose, signer, by)
    assert added_key(command, by_purpose(held), now=NOW, verifies=key_signs) == Refused(expected)


def test_key_signs_is_sha256_ecdsa_over_the_message() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    key = DeviceKey()
    key.private_key = private
    signature = private.sign(b"message", ec.ECDSA(hashes.SHA256())).hex()
    assert key_signs(key.public_hex, b"message", signature)
    assert not key_signs(key.public_hex, b"messagf", signature)
    assert not key_signs(key.public_hex, b"message", "zz")


@pytest.mark.parametrize(
    ("client", "status", "found"),
    [
        ("bank-1", "bound", True),
        ("bank-2", "bound", False),
        ("bank-1", "pending", False),
        ("bank-1", "unbound", False),
    ],
)
def test_only_the_clients_bound_device_signs(client: str, status: str, found: bool) -> None:
    row = DeviceRow(id="d-1", client_id=client, status=status)
    assert (visible(row, "bank-1") is row) is found
    assert visible(None, "bank-1") is None
