"""The result events the fraud consumer counts: signature attempts, of binding a device and of
signing with a bound one (SPEC §8). Both carry the same attempt fields; a device signing
attempt adds the purpose of the key that was to sign, which nothing here counts by."""

from schemas.events import CloudEvent, DeviceSignatureAttempt, EventType, SignatureAttempt

AttemptEvent = CloudEvent[SignatureAttempt] | CloudEvent[DeviceSignatureAttempt]

# The types whose rejections are counted, per person and per device, in the same windows: a
# person failing to bind and failing to sign is one person failing.
REJECTED = frozenset({EventType.SIGNATURE_REJECTED, EventType.DEVICE_SIGNATURE_REJECTED})
# The model each attempt type's event is read with; the verified ones are read too (a
# malformed one is noticed and logged) and never counted.
MODELS: dict[str, type[AttemptEvent]] = {
    EventType.SIGNATURE_VERIFIED: CloudEvent[SignatureAttempt],
    EventType.SIGNATURE_REJECTED: CloudEvent[SignatureAttempt],
    EventType.DEVICE_SIGNATURE_VERIFIED: CloudEvent[DeviceSignatureAttempt],
    EventType.DEVICE_SIGNATURE_REJECTED: CloudEvent[DeviceSignatureAttempt],
}
