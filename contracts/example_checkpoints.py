"""The example audit checkpoint: really signed, by a key anyone can rebuild from its seed,
so that the example also shows a verifier what a valid signature over the statement is.
The key is an example's, published here: it must never sign a real chain."""

import hashlib
from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.checkpoints import AuditCheckpoint, checkpoint_statement

EXAMPLE_KEY_SEED = hashlib.sha256(b"device-binding example audit checkpoint key").digest()
EXAMPLE_CHAIN = "device-binding-audit"
EXAMPLE_SEQ = 1000
EXAMPLE_RECORD_HASH = hashlib.sha256(b"example audit record 1000").hexdigest()
EXAMPLE_SIGNED_AT = datetime(2026, 12, 6, 18, 0, 0, 125000, tzinfo=UTC)


def example_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(EXAMPLE_KEY_SEED)


def audit_checkpoint() -> AuditCheckpoint:
    key = example_key()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = hashlib.sha256(raw).hexdigest()
    statement = checkpoint_statement(
        chain=EXAMPLE_CHAIN,
        seq=EXAMPLE_SEQ,
        record_hash=EXAMPLE_RECORD_HASH,
        signed_at=EXAMPLE_SIGNED_AT,
        key_id=key_id,
    )
    return AuditCheckpoint(
        chain=EXAMPLE_CHAIN,
        seq=EXAMPLE_SEQ,
        record_hash=EXAMPLE_RECORD_HASH,
        signed_at=EXAMPLE_SIGNED_AT,
        key_id=key_id,
        signature=key.sign(statement).hex(),
    )
