"""Kafka topic names (SPEC §5). The first four are a public contract other teams consume."""

COMMANDS = "mfa.device-binding.commands.v1"
EVENTS = "mfa.device-binding.events.v1"
OTP_DELIVERIES = "mfa.otp-deliveries.v1"
COMMANDS_DLQ = "mfa.device-binding.commands.v1.dlq"

# Internal: the worker's answer to the API replica that sent a command, keyed by the
# command id. Every replica reads it and keeps only the replies to its own requests, which
# it tells by the REPLY_TO_HEADER before parsing anything (see api/replies.py).
REPLIES = "mfa.device-binding.replies.v1"

REPLY_TO_HEADER = "reply-to"

# Headers the DLQ adds to a dead-lettered command.
DLQ_REASON_HEADER = "dlq-reason"
DLQ_SOURCE_HEADER = "dlq-source"

# Published by the fraud-signal consumer (fraud/), keyed by person id: schemas/signals.py.
SUSPICIOUS_ACTIVITY = "mfa.device-binding.suspicious-activity.v1"
