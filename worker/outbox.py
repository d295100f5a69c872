"""The worker's Kafka outputs: result events, OTP deliveries and replies to the API.

Every publish waits for the broker's acknowledgement (producer ``acks=all``, idempotence
on), so when a handler returns, everything it announced is durable and the command's offset
may be committed.
"""

import time

from faststream.kafka import KafkaBroker

from schemas.events import CLOUDEVENTS_CONTENT_TYPE
from schemas.otp import OtpDelivery
from schemas.replies import Reply
from schemas.topics import REPLY_TO_HEADER
from telemetry.tracing import trace_headers
from worker.metrics import EVENT_PUBLISH_LATENCY

JSON = "application/json"


class KafkaOutbox:
    def __init__(
        self, broker: KafkaBroker, *, events_topic: str, otp_topic: str, replies_topic: str
    ) -> None:
        self._broker = broker
        self._events_topic = events_topic
        self._otp_topic = otp_topic
        self._replies_topic = replies_topic

    async def publish_event(self, key: str, event_json: str) -> None:
        started = time.perf_counter()
        await self._broker.publish(
            event_json.encode(),
            topic=self._events_topic,
            key=key.encode(),
            # The trace of the request that caused the event continues in its consumers.
            headers={"content-type": CLOUDEVENTS_CONTENT_TYPE, **trace_headers()},
        )
        EVENT_PUBLISH_LATENCY.observe(time.perf_counter() - started)

    async def deliver_otp(self, delivery: OtpDelivery) -> None:
        await self._broker.publish(
            delivery.model_dump_json().encode(),
            topic=self._otp_topic,
            key=delivery.person_id.encode(),
            headers={"content-type": JSON},
        )

    async def reply(self, reply: Reply) -> None:
        await self._broker.publish(
            reply.model_dump_json().encode(),
            topic=self._replies_topic,
            key=str(reply.command_id).encode(),
            headers={"content-type": JSON, REPLY_TO_HEADER: reply.reply_to, **trace_headers()},
        )
