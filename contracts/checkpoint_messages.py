"""The message on the audit checkpoints channel: a signed chain head (schemas/checkpoints.py)."""

from contracts.channels import AUDIT_CHECKPOINTS_CHANNEL
from contracts.message_specs import MessageKey, MessageSpec
from schemas.checkpoints import AuditCheckpoint

AUDIT_CHECKPOINT_MESSAGE = MessageSpec(
    "audit_checkpoint",
    AUDIT_CHECKPOINTS_CHANNEL,
    "The head of an audit chain, signed: record seq has hash record_hash. The signature "
    "covers the checkpoint statement (SPEC section 9, schemas/checkpoints.py), not the JSON.",
    AuditCheckpoint,
    MessageKey("/chain", "The chain's name: every checkpoint of a chain, in order.", is_uuid=False),
)
