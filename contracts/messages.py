"""The catalogue the AsyncAPI document is made from: every message on each channel
(:mod:`contracts.channels`) with its payload model, key and headers. Data, so that a test can
hand :func:`contracts.asyncapi.asyncapi_document` a changed model and see the document a
consumer would get. The types of a message's description are :mod:`contracts.message_specs`,
re-exported here; the audit checkpoint is :mod:`contracts.checkpoint_messages`."""

from pydantic import BaseModel

from contracts.channels import (
    COMMANDS_CHANNEL,
    COMMANDS_DLQ_CHANNEL,
    EVENTS_CHANNEL,
    OTP_DELIVERIES_CHANNEL,
    REPLIES_CHANNEL,
    SUSPICIOUS_ACTIVITY_CHANNEL,
    Channel,
)
from contracts.checkpoint_messages import AUDIT_CHECKPOINT_MESSAGE
from contracts.message_specs import JSON as JSON
from contracts.message_specs import OCTET_STREAM as OCTET_STREAM
from contracts.message_specs import Header as Header
from contracts.message_specs import MessageKey as MessageKey
from contracts.message_specs import MessageSpec as MessageSpec
from schemas import topics
from schemas.commands import (
    AddDeviceKey,
    GetChallenge,
    GetDevice,
    GetDeviceChallenge,
    ListDeviceKeys,
    ListDevices,
    OpenDeviceChallenge,
    RegisterDevice,
    UnbindDevice,
    VerifyDeviceSignature,
    VerifySignature,
)
from schemas.events import (
    CLOUDEVENTS_CONTENT_TYPE,
    ChallengeCreatedEvent,
    DeviceChallengeCreatedEvent,
    DeviceSignatureRejectedEvent,
    DeviceSignatureVerifiedEvent,
    DeviceUnboundEvent,
    KeyAddedEvent,
    PersonLockedEvent,
    SignatureRejectedEvent,
    SignatureVerifiedEvent,
)
from schemas.otp import OtpDelivery
from schemas.replies import Reply
from schemas.signals import PersonLockAlertEvent, SuspiciousActivityEvent

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
SCHEMA_REF_TEMPLATE = "#/components/schemas/{model}"
_BY_CHALLENGE = MessageKey("/challenge_id", "The challenge id.")
_BY_DEVICE = MessageKey("/device_id", "The device id.")
_EVENT_KEY = MessageKey(
    "/subject",
    "The challenge id, which is also the event's subject: the events of one challenge stay "
    "in order on one partition.",
)
_DEVICE_EVENT_KEY = MessageKey(
    "/subject",
    "The device id, which is also the event's subject: the keys of one device are added in "
    "order on one partition.",
)
_PERSON_EVENT_KEY = MessageKey(
    "/subject",
    "The person as client_id/person_id, which is also the event's subject: the locks of one "
    "person stay in order on one partition.",
    is_uuid=False,
)
# Every fraud signal of a person, whatever its type, on one partition, in order.
_SIGNAL_KEY = MessageKey("/data/person_id", "The person id.", is_uuid=False)
_CLOUDEVENTS_HEADER = Header(
    "content-type", "CloudEvents structured JSON mode.", const=CLOUDEVENTS_CONTENT_TYPE
)
_JSON_HEADER = Header("content-type", "The payload is JSON.", const=JSON)
_REPLY_PARTITION = Header(
    topics.REPLY_PARTITION_HEADER,
    "The partition of the replies topic the sending API replica reads (decimal ASCII): the "
    "worker's reply goes there. Absent: the reply is partitioned by its key.",
)


def _event(
    name: str,
    summary: str,
    payload: type[BaseModel],
    key: MessageKey = _EVENT_KEY,
    channel: Channel = EVENTS_CHANNEL,
) -> MessageSpec:
    """A CloudEvent in structured JSON mode: a result event, unless on another channel."""
    headers = (_CLOUDEVENTS_HEADER,)
    return MessageSpec(name, channel, summary, payload, key, CLOUDEVENTS_CONTENT_TYPE, headers)


COMMAND_MESSAGES = (
    MessageSpec(
        "register_device",
        COMMANDS_CHANNEL,
        "Register a device key and issue its signature challenge (POST /v1/mfa/devices).",
        RegisterDevice,
        _BY_CHALLENGE,
        headers=(_REPLY_PARTITION,),
    ),
    MessageSpec(
        "verify_signature",
        COMMANDS_CHANNEL,
        "Verify a challenge's signature (PUT /v1/mfa/challenges/signatures/{id}).",
        VerifySignature,
        _BY_CHALLENGE,
        headers=(_REPLY_PARTITION,),
    ),
    MessageSpec(
        "unbind_device",
        COMMANDS_CHANNEL,
        "Unbind a device (DELETE /v1/mfa/devices/{id}).",
        UnbindDevice,
        _BY_DEVICE,
        headers=(_REPLY_PARTITION,),
    ),
    MessageSpec(
        "get_challenge",
        COMMANDS_CHANNEL,
        "Read a challenge (GET /v1/mfa/challenges/signatures/{id}).",
        GetChallenge,
        _BY_CHALLENGE,
        headers=(_REPLY_PARTITION,),
    ),
    MessageSpec(
        "get_device",
        COMMANDS_CHANNEL,
        "Read a device (GET /v1/mfa/devices/{id}).",
        GetDevice,
        _BY_DEVICE,
        headers=(_REPLY_PARTITION,),
    ),
    MessageSpec(
        "list_devices",
        COMMANDS_CHANNEL,
        "List a person's devices (GET /v1/mfa/devices).",
        ListDevices,
        MessageKey("/person_id", "The person id.", is_uuid=False),
        headers=(_REPLY_PARTITION,),
    ),
    MessageSpec(
        "open_device_challenge",
        COMMANDS_CHANNEL,
        "Open a challenge for a bound device to sign (POST /v1/mfa/challenges/devices).",
        OpenDeviceChallenge,
        _BY_CHALLENGE,
        headers=(_REPLY_PARTITION,),
    ),
    MessageSpec(
        "verify_device_signature",
        COMMANDS_CHANNEL,
        "Verify a device challenge's signature (PUT /v1/mfa/challenges/devices/{id}).",
        VerifyDeviceSignature,
        _BY_CHALLENGE,
        headers=(_REPLY_PARTITION,),
    ),
    MessageSpec(
        "get_device_challenge",
        COMMANDS_CHANNEL,
        "Read a device challenge (GET /v1/mfa/challenges/devices/{id}).",
        GetDeviceChallenge,
        _BY_CHALLENGE,
        headers=(_REPLY_PARTITION,),
    ),
    MessageSpec(
        "list_device_keys",
        COMMANDS_CHANNEL,
        "List a device's keys (GET /v1/mfa/devices/{id}/keys).",
        ListDeviceKeys,
        _BY_DEVICE,
        headers=(_REPLY_PARTITION,),
    ),
    MessageSpec(
        "add_device_key",
        COMMANDS_CHANNEL,
        "Add a key to a device, signed by one it holds (POST /v1/mfa/devices/{id}/keys).",
        AddDeviceKey,
        _BY_DEVICE,
        headers=(_REPLY_PARTITION,),
    ),
)

EVENT_MESSAGES = (
    _event(
        "challenge_created",
        "A device was registered and its signature challenge issued.",
        ChallengeCreatedEvent,
    ),
    _event(
        "signature_verified",
        "An attempt's signature verified: the device is bound.",
        SignatureVerifiedEvent,
    ),
    _event(
        "signature_rejected",
        "An attempt was refused; data.reason says why.",
        SignatureRejectedEvent,
    ),
    _event(
        "device_unbound",
        "A device was unbound; the subject is the challenge that had bound it.",
        DeviceUnboundEvent,
    ),
    _event(
        "device_challenge_created",
        "A bound device was asked to sign (a login, or a payment: data.transaction); "
        "data.string_to_sign is what it is to sign.",
        DeviceChallengeCreatedEvent,
    ),
    _event(
        "device_signature_verified",
        "A device signing attempt's signature verified.",
        DeviceSignatureVerifiedEvent,
    ),
    _event(
        "device_signature_rejected",
        "A device signing attempt was refused; data.reason says why.",
        DeviceSignatureRejectedEvent,
    ),
    _event(
        "key_added",
        "A key was added to a bound device, vouched for by a key the device held.",
        KeyAddedEvent,
        _DEVICE_EVENT_KEY,
    ),
    _event(
        "person_locked",
        "A person failed too many signatures in a row (SPEC section 9): their new challenges "
        "are refused until data.locked_until. The subject is the person, client_id/person_id.",
        PersonLockedEvent,
        _PERSON_EVENT_KEY,
    ),
)

DEFAULT_MESSAGES: tuple[MessageSpec, ...] = (
    *COMMAND_MESSAGES,
    *EVENT_MESSAGES,
    MessageSpec(
        "otp_delivery",
        OTP_DELIVERIES_CHANNEL,
        "SENSITIVE: a one-time password for the SMS gateway to send. Short retention.",
        OtpDelivery,
        MessageKey("/person_id", "The person id.", is_uuid=False),
        headers=(_JSON_HEADER,),
    ),
    MessageSpec(
        "dead_letter",
        COMMANDS_DLQ_CHANNEL,
        "A command that could not be parsed: its bytes and key exactly as received.",
        None,
        MessageKey(None, "The dead-lettered command's key, as received.", is_uuid=False),
        OCTET_STREAM,
        (
            Header(topics.DLQ_REASON_HEADER, "Where and why the command is malformed."),
            Header(topics.DLQ_SOURCE_HEADER, "Where it was read: topic/partition/offset."),
        ),
    ),
    MessageSpec(
        "reply",
        REPLIES_CHANNEL,
        "Internal, not for other teams: the outcome of one command, for the API replica "
        "that sent it.",
        Reply,
        MessageKey("/command_id", "The command id."),
        headers=(
            _JSON_HEADER,
            Header(
                topics.REPLY_TO_HEADER,
                "The instance id of the API replica waiting for the reply: a replica that "
                "finds another's reply on its partition (one moved to it) skips it unread.",
            ),
        ),
    ),
    _event(
        "suspicious_activity",
        "Rejections of one person (scope person) or one device (scope device) reached the "
        "threshold within the window.",
        SuspiciousActivityEvent,
        _SIGNAL_KEY,
        SUSPICIOUS_ACTIVITY_CHANNEL,
    ),
    _event(
        "person_lock_alert",
        "The service locked a person (a person_locked event): one alert per lock, its id "
        "the same whenever that lock is seen again.",
        PersonLockAlertEvent,
        _SIGNAL_KEY,
        SUSPICIOUS_ACTIVITY_CHANNEL,
    ),
    AUDIT_CHECKPOINT_MESSAGE,
)
