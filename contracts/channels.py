"""The product's Kafka topics as AsyncAPI channels: address, description, and whether other
teams read them (:mod:`contracts.messages` says what travels on each)."""

from dataclasses import dataclass

from schemas import topics


@dataclass(frozen=True)
class Channel:
    id: str
    address: str
    description: str
    # Other teams read it: its objects are published open (see contracts/asyncapi.py).
    public: bool


COMMANDS_CHANNEL = Channel(
    "commands",
    topics.COMMANDS,
    "Internal. Work for the workers, one command per accepted HTTP request.",
    public=False,
)
EVENTS_CHANNEL = Channel(
    "events",
    topics.EVENTS,
    "Public contract. Result events, CloudEvents 1.0 in structured JSON mode: one per "
    "registration, per device signing challenge opened, per attempt that reached a worker "
    "(binding or device signing), per key added, per unbinding and per lock of a person. "
    "Keyed by the challenge id, by the device id for a key added, or by client_id/person_id "
    "for a person locked. The CloudEvents id stays the same when an event is published "
    "again: consumers deduplicate by it. No event carries the OTP.",
    public=True,
)
OTP_DELIVERIES_CHANNEL = Channel(
    "otp_deliveries",
    topics.OTP_DELIVERIES,
    "Public contract, for the SMS gateway only. SENSITIVE: carries one-time passwords in "
    "clear; short retention, and no reader but the SMS gateway.",
    public=True,
)
COMMANDS_DLQ_CHANNEL = Channel(
    "commands_dlq",
    topics.COMMANDS_DLQ,
    "Commands a worker could not parse, exactly as received, with why and where from in "
    "headers. Never retried; for operators to inspect.",
    public=True,
)
REPLIES_CHANNEL = Channel(
    "replies",
    topics.REPLIES,
    "Internal, not for other teams: a worker's answer to the API replica that sent a "
    "command. Every replica reads the whole topic and keeps the replies addressed to it.",
    public=False,
)
SUSPICIOUS_ACTIVITY_CHANNEL = Channel(
    "suspicious_activity",
    topics.SUSPICIOUS_ACTIVITY,
    "Public contract. Fraud signals, CloudEvents 1.0 in structured JSON mode, raised by the "
    "fraud-signal consumer: suspicious_activity when one person's or one device's "
    "rejections (of binding and device signing attempts alike) within a sliding window "
    "reach a threshold, person_lock_alert when the service locks a person. Consumers skip "
    "the types they do not know. No signal carries the OTP or a signature.",
    public=True,
)
AUDIT_CHECKPOINTS_CHANNEL = Channel(
    "audit_checkpoints",
    topics.AUDIT_CHECKPOINTS,
    "Public contract, for auditors. The audit consumer's chain head, signed with Ed25519 "
    "(SPEC section 9), keyed by the chain's name, kept for ever: a checkpoint vouches for "
    "records 1..seq of the chain. `python -m audit verify --checkpoints` checks a stored "
    "chain against every one with the public key only.",
    public=True,
)
CHANNELS = (
    COMMANDS_CHANNEL,
    EVENTS_CHANNEL,
    OTP_DELIVERIES_CHANNEL,
    COMMANDS_DLQ_CHANNEL,
    REPLIES_CHANNEL,
    SUSPICIOUS_ACTIVITY_CHANNEL,
    AUDIT_CHECKPOINTS_CHANNEL,
)
