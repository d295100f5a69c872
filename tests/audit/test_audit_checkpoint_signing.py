"""Checkpoint signatures: what is signed, what verifies, and how the keys are read."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from audit.signing import (
    CheckpointSignatureError,
    CheckpointSigner,
    CheckpointVerifier,
    KeyFileError,
    ensure_key_file,
    load_public_keys,
    public_key_pem,
)
from schemas.checkpoints import AuditCheckpoint, checkpoint_statement

pytestmark = pytest.mark.audit

ROOT = Path(__file__).resolve().parents[2]

AT = datetime(2026, 12, 6, 18, 0, 1, 250000, tzinfo=UTC)
HASH = "ab" * 32


def signer() -> CheckpointSigner:
    return CheckpointSigner(Ed25519PrivateKey.generate())


def test_the_statement_is_the_documented_lines_with_the_time_in_utc() -> None:
    key_id = "cd" * 32
    in_paris = AT.astimezone(timezone(timedelta(hours=1)))

    statement = checkpoint_statement(
        chain="device-binding-audit", seq=1000, record_hash=HASH, signed_at=in_paris, key_id=key_id
    )

    assert (
        statement
        == (
            "mfa.device-binding.audit-checkpoint.v1\n"
            "device-binding-audit\n"
            "1000\n"
            f"{HASH}\n"
            "2026-12-06T18:00:01.250000Z\n"
            f"{key_id}"
        ).encode()
    )


def test_a_signed_checkpoint_verifies_after_a_trip_through_json() -> None:
    key = signer()
    checkpoint = key.sign(chain="device-binding-audit", seq=7, record_hash=HASH, at=AT)

    received = AuditCheckpoint.model_validate_json(checkpoint.model_dump_json())

    CheckpointVerifier([key.public_key()]).verify(received)
    assert received == checkpoint


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 8},
        {"record_hash": "ef" * 32},
        {"chain": "another-chain"},
        {"signed_at": AT + timedelta(microseconds=1)},
    ],
    ids=["seq", "record_hash", "chain", "signed_at"],
)
def test_any_signed_field_changed_fails_the_signature(change: dict[str, object]) -> None:
    key = signer()
    checkpoint = key.sign(chain="device-binding-audit", seq=7, record_hash=HASH, at=AT)
    altered = checkpoint.model_copy(update=change)

    with pytest.raises(CheckpointSignatureError, match="does not verify"):
        CheckpointVerifier([key.public_key()]).verify(altered)


def test_a_checkpoint_signed_by_another_key_under_the_trusted_key_id_is_refused() -> None:
    trusted, other = signer(), signer()
    forged = other.sign(chain="c", seq=1, record_hash=HASH, at=AT).model_copy(
        update={"key_id": trusted.key_id}
    )

    with pytest.raises(CheckpointSignatureError, match="does not verify"):
        CheckpointVerifier([trusted.public_key()]).verify(forged)


def test_a_checkpoint_of_an_unknown_key_is_refused() -> None:
    checkpoint = signer().sign(chain="c", seq=1, record_hash=HASH, at=AT)

    with pytest.raises(CheckpointSignatureError, match="not a trusted key"):
        CheckpointVerifier([signer().public_key()]).verify(checkpoint)


def test_rotation_old_and_new_public_keys_in_one_file_both_verify(tmp_path: Path) -> None:
    old, new = signer(), signer()
    keys = tmp_path / "verify.pem"
    keys.write_bytes(public_key_pem(old.public_key()) + public_key_pem(new.public_key()))
    verifier = CheckpointVerifier.from_file(keys)

    for key in (old, new):
        verifier.verify(key.sign(chain="c", seq=1, record_hash=HASH, at=AT))
    assert verifier.key_ids == sorted([old.key_id, new.key_id])


def test_the_chain_name_cannot_hold_a_line_break() -> None:
    checkpoint = signer().sign(chain="c", seq=1, record_hash=HASH, at=AT)
    document = checkpoint.model_dump(mode="json") | {"chain": "c\n2"}

    with pytest.raises(ValidationError):
        AuditCheckpoint.model_validate(document)


def test_keygen_writes_a_private_key_only_its_owner_reads_and_its_public_key(
    tmp_path: Path,
) -> None:
    private = tmp_path / "var" / "audit-signing-key.pem"

    public = ensure_key_file(private)

    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    signer_ = CheckpointSigner.from_file(private)
    assert [public_key_pem(key) for key in load_public_keys(public)] == [
        public_key_pem(signer_.public_key())
    ]
    # The private key's file also serves a verifier: its public half.
    assert CheckpointVerifier.from_file(private).key_ids == [signer_.key_id]
    # A second call keeps the key.
    ensure_key_file(private)
    assert CheckpointSigner.from_file(private).key_id == signer_.key_id


def test_the_signer_never_shows_its_private_key(tmp_path: Path) -> None:
    private = tmp_path / "key.pem"
    ensure_key_file(private)
    pem = private.read_text()
    body = "".join(pem.splitlines()[1:-1])

    shown = repr(CheckpointSigner.from_file(private))

    assert body not in shown
    assert shown.startswith("CheckpointSigner(key_id=")


def test_key_file_errors_name_the_file_and_not_its_content(tmp_path: Path) -> None:
    p256 = tmp_path / "p256.pem"
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    p256.write_bytes(pem)

    with pytest.raises(KeyFileError, match="not Ed25519") as raised:
        CheckpointSigner.from_file(p256)
    assert pem.decode().splitlines()[1] not in str(raised.value)
    with pytest.raises(KeyFileError, match="cannot be read"):
        CheckpointSigner.from_file(tmp_path / "missing.pem")
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    with pytest.raises(KeyFileError, match="no Ed25519 key"):
        CheckpointVerifier.from_file(empty)


def test_verify_checkpoints_without_a_key_says_which_variable_to_set(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUDIT_")}
    env["AUDIT_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"

    done = subprocess.run(
        [sys.executable, "-m", "audit", "verify", "--checkpoints"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2, done.stderr
    assert b"set AUDIT_VERIFY_KEY_FILE (the public key)" in done.stderr
