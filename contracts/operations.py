"""Who sends or receives what on the product's channels: the AsyncAPI operations."""

from dataclasses import dataclass
from typing import Literal

from contracts.channels import (
    AUDIT_CHECKPOINTS_CHANNEL,
    COMMANDS_CHANNEL,
    COMMANDS_DLQ_CHANNEL,
    EVENTS_CHANNEL,
    OTP_DELIVERIES_CHANNEL,
    REPLIES_CHANNEL,
    SUSPICIOUS_ACTIVITY_CHANNEL,
    Channel,
)


@dataclass(frozen=True)
class Operation:
    """One participant, one action, one channel."""

    participant: str
    action: Literal["send", "receive"]
    channel: Channel
    summary: str

    @property
    def id(self) -> str:
        return f"{self.participant}.{self.action}.{self.channel.id}"


OPERATIONS = (
    Operation("api", "send", COMMANDS_CHANNEL, "The HTTP front publishes each command."),
    Operation(
        "api", "receive", REPLIES_CHANNEL, "Each API replica reads the replies addressed to it."
    ),
    Operation("worker", "receive", COMMANDS_CHANNEL, "The workers decide each command."),
    Operation("worker", "send", EVENTS_CHANNEL, "The workers announce each decision."),
    Operation("worker", "send", OTP_DELIVERIES_CHANNEL, "The workers hand OTPs to the gateway."),
    Operation("worker", "send", REPLIES_CHANNEL, "The workers answer the API replica."),
    Operation("worker", "send", COMMANDS_DLQ_CHANNEL, "The workers set aside malformed commands."),
    Operation("audit", "receive", EVENTS_CHANNEL, "The audit consumer keeps every event."),
    Operation(
        "fraud", "receive", EVENTS_CHANNEL, "The fraud consumer counts rejections and reads locks."
    ),
    Operation(
        "fraud", "send", SUSPICIOUS_ACTIVITY_CHANNEL, "The fraud consumer raises fraud signals."
    ),
    Operation("sms_gateway", "receive", OTP_DELIVERIES_CHANNEL, "The SMS gateway sends OTPs."),
    Operation(
        "audit", "send", AUDIT_CHECKPOINTS_CHANNEL, "The audit consumer signs its chain head."
    ),
    Operation(
        "auditor",
        "receive",
        AUDIT_CHECKPOINTS_CHANNEL,
        "An auditor checks a stored chain against every checkpoint (verify --checkpoints).",
    ),
)
