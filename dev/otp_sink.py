"""Development OTP sink: prints each OTP from ``mfa.otp-deliveries.v1``. DEVELOPMENT ONLY.

In production an SMS gateway consumes that topic. Here the OTPs are printed, and appended
to ``var/dev/otp-sink.jsonl`` (``OTP_SINK_FILE``) so the demo can read them the way a
customer reads an SMS. ``OTP_DELIVERIES_TOPIC`` names another topic, as for the worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from messaging import kafka_options
from schemas import topics
from schemas.otp import OtpDelivery

DEFAULT_SINK_FILE = Path(__file__).resolve().parents[1] / "var" / "dev" / "otp-sink.jsonl"


def sink_file() -> Path:
    """Where the sink appends the OTPs, and the demo reads them."""
    return Path(os.environ.get("OTP_SINK_FILE", DEFAULT_SINK_FILE))


def group_id(topic: str) -> str:
    """The sink's consumer group: one per topic, so that sinks of other topics on the same
    broker (a test's beside ``make run``'s) do not share its rebalances."""
    return "dev-otp-sink" if topic == topics.OTP_DELIVERIES else f"dev-otp-sink.{topic}"


async def consume() -> None:
    topic = os.environ.get("OTP_DELIVERIES_TOPIC", topics.OTP_DELIVERIES)
    consumer = AIOKafkaConsumer(
        topic,
        **kafka_options(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")),
        group_id=group_id(topic),
        auto_offset_reset="latest",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await consumer.start()
    target = sink_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    delivery = OtpDelivery.model_validate_json(record.value)
                    print(
                        f"[otp-sink] SMS to person {delivery.person_id} ({delivery.language}):"
                        f" your code is {delivery.otp}"
                        f" (challenge {delivery.challenge_id},"
                        f" expires {delivery.expires_at:%H:%M:%S})",
                        flush=True,
                    )
                    with target.open("a") as sink:
                        sink.write(json.dumps(delivery.model_dump(mode="json")) + "\n")
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(consume())
