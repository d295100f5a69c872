"""The worker's Kafka outputs: result events, OTP deliveries and replies to the API.

Every publish waits for the broker's acknowledgement (producer ``acks=all``, idempotence
on), so when a handler returns, everything it announced is durable and the command's offset
may be committed.

Its own aiokafka producer rather than FastStream's ``publish``: a batch announces hundreds
of messages at once, and each goes straight into the producer's batches (one request per
partition for many messages) without a per-message middleware pass.
"""

import time

from aiokafka import AIOKafkaProducer

from schemas.events import CLOUDEVENTS_CONTENT_TYPE
from schemas.otp import OtpDelivery
from schemas.replies import Reply
from schemas.topics import REPLY_TO_HEADER
from telemetry.tracing import trace_headers
from worker.metrics import EVENT_PUBLISH_LATENCY

JSON = b"application/json"
CLOUDEVENTS = CLOUDEVENTS_CONTENT_TYPE.encode()
# Below the broker's default message.max.bytes (1 MiB). aiokafka's default of 16 KiB per
# partition (about ten events) queued a batch's messages behind one acknowledgement after
# another.
BATCH_BYTES = 512 * 1024


class KafkaOutbox:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        events_topic: str,
        otp_topic: str,
        replies_topic: str,
    ) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id="device-binding-worker",
            acks="all",
            enable_idempotence=True,
            max_batch_size=BATCH_BYTES,
        )
        self._events_topic = events_topic
        self._otp_topic = otp_topic
        self._replies_topic = replies_topic

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def _publish(
        self, topic: str, value: bytes, key: str, headers: list[tuple[str, bytes]]
    ) -> None:
        delivered = await self._producer.send(topic, value, key=key.encode(), headers=headers)
        await delivered

    async def publish_event(self, key: str, event_json: str) -> None:
        started = time.perf_counter()
        # The trace of the request that caused the event continues in its consumers.
        headers = [("content-type", CLOUDEVENTS), *_encoded(trace_headers())]
        await self._publish(self._events_topic, event_json.encode(), key, headers)
        EVENT_PUBLISH_LATENCY.observe(time.perf_counter() - started)

    async def deliver_otp(self, delivery: OtpDelivery) -> None:
        await self._publish(
            self._otp_topic,
            delivery.model_dump_json().encode(),
            delivery.person_id,
            [("content-type", JSON)],
        )

    async def reply(self, reply: Reply) -> None:
        headers = [
            ("content-type", JSON),
            (REPLY_TO_HEADER, reply.reply_to.encode()),
            *_encoded(trace_headers()),
        ]
        await self._publish(
            self._replies_topic, reply.model_dump_json().encode(), str(reply.command_id), headers
        )


def _encoded(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in headers.items()]
