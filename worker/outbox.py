"""The worker's Kafka outputs: result events, replies to the API, OTP deliveries, dead letters.

One idempotent producer (``acks=all``). Handing a message over returns at once with an
:class:`Acknowledgement` to wait on later: a batch hands over all its events and replies,
and the consumer waits for their acknowledgements once, while the next batch is decided;
only then is the batch's offset committed (SPEC §6).

Its own aiokafka producer rather than FastStream's ``publish``: a batch announces hundreds
of messages at once, and each goes straight into the producer's batches (one request per
partition for many messages) without a per-message middleware pass or an await of its own.
"""

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from messaging import kafka_options
from schemas.events import CLOUDEVENTS_CONTENT_TYPE
from schemas.otp import OtpDelivery
from schemas.replies import Reply
from schemas.topics import DLQ_REASON_HEADER, DLQ_SOURCE_HEADER, REPLY_TO_HEADER
from telemetry.tracing import trace_headers

JSON = b"application/json"
CLOUDEVENTS = CLOUDEVENTS_CONTENT_TYPE.encode()
# Below the broker's default message.max.bytes (1 MiB). aiokafka's default of 16 KiB per
# partition (about ten events) queued a batch's messages behind one acknowledgement after
# another.
BATCH_BYTES = 512 * 1024

# The broker's acknowledgement of one message (its RecordMetadata), awaited later.
Acknowledgement = asyncio.Future[Any]


class KafkaOutbox:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        events_topic: str,
        otp_topic: str,
        replies_topic: str,
        dead_letter_topic: str,
        client_id: str = "device-binding-worker",
    ) -> None:
        self._producer = AIOKafkaProducer(
            **kafka_options(bootstrap_servers),
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            max_batch_size=BATCH_BYTES,
            # Sent as soon as the sender is free: what arrives while a request is in flight
            # is batched into the next one anyway, so lingering would only add latency.
            linger_ms=0,
        )
        self._events_topic = events_topic
        self._otp_topic = otp_topic
        self._replies_topic = replies_topic
        self._dead_letter_topic = dead_letter_topic

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def event(self, key: str, event_json: str) -> Acknowledgement:
        # The trace of the request that caused the event continues in its consumers.
        headers = [("content-type", CLOUDEVENTS), *_encoded(trace_headers())]
        sent: Acknowledgement = await self._producer.send(
            self._events_topic, event_json.encode(), key=key.encode(), headers=headers
        )
        return sent

    async def reply(self, reply: Reply, partition: int | None) -> Acknowledgement:
        """To the partition the asking replica reads (``None``: by key, for a sender that
        named none)."""
        headers = [
            ("content-type", JSON),
            (REPLY_TO_HEADER, reply.reply_to.encode()),
            *_encoded(trace_headers()),
        ]
        sent: Acknowledgement = await self._producer.send(
            self._replies_topic,
            reply.model_dump_json().encode(),
            key=str(reply.command_id).encode(),
            partition=partition,
            headers=headers,
        )
        return sent

    async def deliver_otp(self, delivery: OtpDelivery) -> None:
        """Returns once Kafka has the OTP: the caller records the delivery only then."""
        sent = await self._producer.send(
            self._otp_topic,
            delivery.model_dump_json().encode(),
            key=delivery.person_id.encode(),
            headers=[("content-type", JSON)],
        )
        await sent

    async def dead_letter(
        self, record: ConsumerRecord[bytes, bytes], *, reason: str
    ) -> Acknowledgement:
        """The command as received, with why and where from in its headers."""
        source = f"{record.topic}/{record.partition}/{record.offset}"
        headers = [
            (DLQ_REASON_HEADER, reason.encode()),
            (DLQ_SOURCE_HEADER, source.encode()),
        ]
        sent: Acknowledgement = await self._producer.send(
            self._dead_letter_topic, record.value or b"", key=record.key, headers=headers
        )
        return sent

    async def reachable(self, timeout_seconds: float) -> bool:
        """Whether a broker answers a metadata request now (the readiness probe)."""
        try:
            async with asyncio.timeout(timeout_seconds):
                await self._producer.client.fetch_all_metadata()
        except Exception:
            return False
        return True


def _encoded(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in headers.items()]
