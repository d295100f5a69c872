"""``make demo``: plays a bank's app against the stack of ``make run``. DEVELOPMENT ONLY.

Generates a device key, registers the device, reads the OTP from the development sink (as
the customer would read the SMS), signs it the way a phone keystore does (SHA256withECDSA,
DER, hex), submits the signature and shows the device bound, printing every step and the
events the audit and fraud teams receive.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from harness import devkeys
from harness.topics import tail
from schemas import topics

ROOT = Path(__file__).resolve().parents[1]
API = os.environ.get("API_URL", "http://127.0.0.1:8000")
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
SINK_FILE = ROOT / "var" / "dev" / "otp-sink.jsonl"


def step(title: str, detail: object = "") -> None:
    text = json.dumps(detail, indent=2) if isinstance(detail, dict | list) else str(detail)
    print(f"\n== {title}\n{text}" if text else f"\n== {title}", flush=True)


async def events_for(consumer: AIOKafkaConsumer, challenge_id: str, count: int) -> list[Any]:
    found: list[Any] = []
    async with asyncio.timeout(20):
        while len(found) < count:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = json.loads(record.value)
                    if event["subject"] == challenge_id:
                        found.append(event)
    return found


def otp_from_sink(challenge_id: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if SINK_FILE.exists():
            for line in SINK_FILE.read_text().splitlines():
                delivery = json.loads(line)
                if delivery["challenge_id"] == challenge_id:
                    return str(delivery["otp"])
        time.sleep(0.2)
    raise SystemExit("no OTP reached the development sink: is `make run` running?")


async def demo() -> int:
    token = devkeys.mint_token(client_id="demo-bank", ttl=600)
    headers = {"Authorization": f"Bearer {token}"}
    events = await tail(BOOTSTRAP, topics.EVENTS)
    try:
        device_key = ec.generate_private_key(ec.SECP256R1())
        public_hex = (
            device_key.public_key()
            .public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
            .hex()
        )
        step("1. device generates a P-256 key in its keystore; public key (SEC1)", public_hex)

        person_id = f"person-{uuid.uuid4().hex[:8]}"
        async with httpx.AsyncClient(base_url=API, headers=headers, timeout=15) as http:
            registered = await http.post(
                "/v1/mfa/devices",
                json={
                    "person_id": person_id,
                    "key_type": "ecdsa-p256",
                    "key": public_hex,
                    "name": "Demo phone",
                    "language": "en",
                },
            )
            step(f"2. POST /v1/mfa/devices -> {registered.status_code}", registered.json())
            if registered.status_code != 202:
                return 1
            challenge_id = registered.json()["challenge"]["id"]

            otp = otp_from_sink(challenge_id)
            step("3. customer reads the OTP from the SMS (development sink)", otp)

            signature = device_key.sign(otp.encode("ascii"), ec.ECDSA(hashes.SHA256())).hex()
            step("4. device signs the OTP: SHA256withECDSA, DER, hex", signature)

            verified = await http.put(
                f"/v1/mfa/challenges/signatures/{challenge_id}",
                json={"signature": signature, "device_data": "demo-app/1.0"},
            )
            step(
                f"5. PUT /v1/mfa/challenges/signatures/{challenge_id} -> {verified.status_code}",
                verified.json() if verified.content else "(no body)",
            )

            for event in await events_for(events, challenge_id, count=2):
                step(f"   event {event['type']}", event)

            challenge = await http.get(f"/v1/mfa/challenges/signatures/{challenge_id}")
            step(f"6. GET challenge -> {challenge.status_code}", challenge.json())
            devices = await http.get("/v1/mfa/devices", params={"filter[person_id]": person_id})
            step(f"7. GET /v1/mfa/devices?filter[person_id]={person_id}", devices.json())
            bound = verified.status_code == 204 and any(
                d["status"] == "bound" for d in devices.json()["data"]
            )
        print("\nDEVICE BOUND" if bound else "\nDEVICE NOT BOUND", flush=True)
        return 0 if bound else 1
    finally:
        await events.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(demo()))
