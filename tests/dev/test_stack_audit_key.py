"""``make run``'s audit checkpoint key: a new one each run, readable by its owner only, with
the public key beside it for ``verify --checkpoints``; the environment's when it names one."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from audit.signing import CheckpointSigner, CheckpointVerifier
from dev import stack


def test_each_run_makes_its_own_key_only_its_owner_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack, "VAR", tmp_path / "var")

    first = stack.audit_checkpoint_key({})
    first_id = CheckpointSigner.from_file(Path(first["AUDIT_SIGNING_KEY_FILE"])).key_id
    second = stack.audit_checkpoint_key({})

    key = Path(second["AUDIT_SIGNING_KEY_FILE"])
    assert key.is_relative_to(tmp_path / "var")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    signer = CheckpointSigner.from_file(key)
    assert signer.key_id != first_id
    verifier = CheckpointVerifier.from_file(Path(second["AUDIT_VERIFY_KEY_FILE"]))
    assert verifier.key_ids == [signer.key_id]


def test_a_key_named_by_the_environment_is_used_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack, "VAR", tmp_path / "var")

    assert stack.audit_checkpoint_key({"AUDIT_SIGNING_KEY_FILE": "/secrets/audit.pem"}) == {}
    assert not (tmp_path / "var").exists()
