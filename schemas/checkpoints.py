"""Audit checkpoints on ``mfa.device-binding.audit-checkpoints.v1`` (SPEC §9): plain JSON.

The audit consumer signs the head of its hash chain (``audit/chain.py``) with Ed25519 and
publishes it here, keyed by the chain's name. A checkpoint states "record ``seq`` of chain
``chain`` has hash ``record_hash``"; since every record hash covers the one before it, it
vouches for the whole chain up to ``seq``. Anyone holding the public key can check a stored
chain against the checkpoints without trusting the database it sits in.

What is signed is :func:`checkpoint_statement`, not the JSON: lines of UTF-8 text, so that a
verifier in any language rebuilds it exactly:

    mfa.device-binding.audit-checkpoint.v1
    {chain}
    {seq}
    {record_hash}
    {signed_at in UTC as YYYY-MM-DDTHH:MM:SS.ffffffZ}
    {key_id}

The first line keeps a signature over a checkpoint from being valid for anything else the
key could sign. No field may hold a line break (the patterns below forbid it), so no two
checkpoints share a statement.
"""

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from schemas.model import WireModel

STATEMENT_DOMAIN = "mfa.device-binding.audit-checkpoint.v1"

ChainName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
HexSha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Ed25519Signature = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]


def checkpoint_statement(
    *, chain: str, seq: int, record_hash: str, signed_at: datetime, key_id: str
) -> bytes:
    """The bytes a checkpoint's signature covers (see the module's docstring)."""
    moment = signed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return "\n".join((STATEMENT_DOMAIN, chain, str(seq), record_hash, moment, key_id)).encode()


class AuditCheckpoint(WireModel):
    """The signed head of one audit chain: record ``seq`` has hash ``record_hash``.

    ``signature`` is the hex Ed25519 signature of the statement, the UTF-8 lines
    ``mfa.device-binding.audit-checkpoint.v1``, ``chain``, ``seq``, ``record_hash``,
    ``signed_at`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` and ``key_id``, joined by ``\n``
    with none after the last.
    """

    chain: ChainName = Field(description="The chain's name; also the Kafka key.")
    seq: int = Field(ge=1, description="The position of the record signed: records 1..seq.")
    record_hash: HexSha256 = Field(description="That record's hash (hex SHA-256).")
    signed_at: AwareDatetime
    algorithm: Literal["ed25519"] = "ed25519"
    key_id: HexSha256 = Field(
        description="Hex SHA-256 of the raw 32-byte Ed25519 public key that signed it."
    )
    signature: Ed25519Signature = Field(
        description="Hex Ed25519 signature of the checkpoint statement (SPEC section 9)."
    )

    def statement(self) -> bytes:
        return checkpoint_statement(
            chain=self.chain,
            seq=self.seq,
            record_hash=self.record_hash,
            signed_at=self.signed_at,
            key_id=self.key_id,
        )
