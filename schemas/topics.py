"""Kafka topic names (SPEC §5). The first four are a public contract other teams consume."""

COMMANDS = "mfa.device-binding.commands.v1"
EVENTS = "mfa.device-binding.events.v1"
OTP_DELIVERIES = "mfa.otp-deliveries.v1"
COMMANDS_DLQ = "mfa.device-binding.commands.v1.dlq"

# Internal: the worker's answer to the API replica that sent a command, keyed by the
# command id. Each replica owns some of its partitions (api/replies.py) and names one in the
# REPLY_PARTITION_HEADER of every command it sends; the worker replies to that partition, so
# a replica reads only its own replies. REPLY_TO_HEADER names the replica itself, so that a
# reply reaching a partition that has since moved to another replica is recognised and
# dropped there before it is parsed.
REPLIES = "mfa.device-binding.replies.v1"

REPLY_TO_HEADER = "reply-to"
REPLY_PARTITION_HEADER = "reply-partition"

# Headers the DLQ adds to a dead-lettered command.
DLQ_REASON_HEADER = "dlq-reason"
DLQ_SOURCE_HEADER = "dlq-source"

# Published by the fraud-signal consumer (fraud/), keyed by person id: schemas/signals.py.
SUSPICIOUS_ACTIVITY = "mfa.device-binding.suspicious-activity.v1"
# Published by the audit consumer (audit/), keyed by the chain's name: its signed chain
# heads (schemas/checkpoints.py), kept for ever.
AUDIT_CHECKPOINTS = "mfa.device-binding.audit-checkpoints.v1"
