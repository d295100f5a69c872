"""Development OTP sink: prints each OTP from ``mfa.otp-deliveries.v1``. DEVELOPMENT ONLY.

In production an SMS gateway consumes that topic. Here the OTPs are printed, and appended
to ``var/dev/otp-sink.jsonl`` so the demo can read them the way a customer reads an SMS.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from schemas import topics
from schemas.otp import OtpDelivery

SINK_FILE = Path(__file__).resolve().parents[1] / "var" / "dev" / "otp-sink.jsonl"


async def consume() -> None:
    consumer = AIOKafkaConsumer(
        topics.OTP_DELIVERIES,
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        group_id="dev-otp-sink",
        auto_offset_reset="latest",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await consumer.start()
    SINK_FILE.parent.mkdir(parents=True, exist_ok=True)
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
                    with SINK_FILE.open("a") as sink:
                        sink.write(json.dumps(delivery.model_dump(mode="json")) + "\n")
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(consume())
