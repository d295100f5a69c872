"""Pending challenges with known OTPs, written straight into a store, and the correct
signature of each: the work a benchmark then submits.

Why not register the devices through the product: a registration costs about what a
verification does (a command through Kafka, a worker, a store transaction, an OTP on the
OTP topic to read back), so preparing the 50,000 challenges of the drain and the tens of
thousands of the load ladders that way would spend much of the 20-minute budget, and
measure registration on the way. The rows written here are those ``BindingService.register``
writes after delivering the OTP (a pending device of its own person, a pending challenge
holding SHA-256 of the OTP, ``otp_delivered`` set), built from the store's own table classes
and the worker's own OTP functions. Everything the benchmark then measures, the
verification and its store update, is the product's path untouched.

Each device has its own P-256 key and its own person (a person binds at most five devices),
all owned by one client, whose token the load generator presents. A challenge lives
``ttl`` (an hour by default, beyond the product's ten-minute maximum, because a ladder
seeded at its start runs for minutes): expiry is not on the measured path.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import insert

from schemas.challenges import ChallengeStatus
from schemas.commands import COMMAND_ADAPTER, VerifySignature, command_key
from schemas.devices import DeviceStatus, KeyPurpose
from worker.binding import new_otp, otp_digest
from worker.database import create_engine, prepare_database
from worker.tables import ChallengeRow, DeviceRow

BENCH_CLIENT_ID = "bench-bank"
DEFAULT_TTL = timedelta(hours=1)
_BATCH = 5_000  # rows per transaction


@dataclass(frozen=True)
class Ticket:
    """A seeded pending challenge and the signature that verifies it."""

    challenge_id: str
    signature: str

    @property
    def path(self) -> str:
        return f"/v1/mfa/challenges/signatures/{self.challenge_id}"

    def body(self) -> bytes:
        return json.dumps({"signature": self.signature}).encode()


def _rows(
    count: int, *, client_id: str, now: datetime, ttl: timedelta
) -> Iterator[tuple[dict[str, Any], dict[str, Any], Ticket]]:
    run = uuid.uuid4().hex[:8]
    for number in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        otp = new_otp()
        signature = key.sign(otp.encode("ascii"), ec.ECDSA(hashes.SHA256())).hex()
        point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        device_id, challenge_id = str(uuid.uuid4()), str(uuid.uuid4())
        device = {
            "id": device_id,
            "key_id": str(uuid.uuid4()),
            "client_id": client_id,
            "person_id": f"bench-{run}-{number}",
            "name": None,
            "key_purpose": KeyPurpose.UNRESTRICTED.value,
            "public_key": point.hex(),
            "status": DeviceStatus.PENDING.value,
            "device_data": None,
            "created_at": now,
            "created_by_command": str(uuid.uuid4()),
            "created_by_request": f"bench-seed-{run}-{number}",
        }
        challenge = {
            "id": challenge_id,
            "device_id": device_id,
            "status": ChallengeStatus.PENDING.value,
            "otp_digest": otp_digest(otp),
            "otp_delivered": True,
            "failed_attempts": 0,
            "created_at": now,
            "expires_at": now + ttl,
        }
        yield device, challenge, Ticket(challenge_id=challenge_id, signature=signature)


async def seed(
    database_url: str,
    count: int,
    *,
    client_id: str = BENCH_CLIENT_ID,
    ttl: timedelta = DEFAULT_TTL,
    migrate: bool = True,
) -> list[Ticket]:
    """Write ``count`` pending challenges into the store at ``database_url``."""
    engine = create_engine(database_url)
    tickets: list[Ticket] = []
    try:
        await prepare_database(engine, migrate=migrate)
        rows = _rows(count, client_id=client_id, now=datetime.now(UTC), ttl=ttl)
        while True:
            batch = [row for _, row in zip(range(_BATCH), rows, strict=False)]
            if not batch:
                break
            async with engine.begin() as connection:
                # Devices first: each challenge refers to its device.
                await connection.execute(insert(DeviceRow), [device for device, _, _ in batch])
                await connection.execute(
                    insert(ChallengeRow), [challenge for _, challenge, _ in batch]
                )
            tickets.extend(ticket for _, _, ticket in batch)
    finally:
        await engine.dispose()
    return tickets


def verify_command(
    ticket: Ticket, *, client_id: str = BENCH_CLIENT_ID, reply_to: str | None
) -> tuple[bytes, bytes]:
    """The Kafka key and value of the VerifySignature command the API would publish."""
    command = VerifySignature(
        command_id=uuid.uuid4(),
        request_id=f"bench-{uuid.uuid4().hex[:12]}",
        client_id=client_id,
        reply_to=reply_to,
        issued_at=datetime.now(UTC),
        challenge_id=uuid.UUID(ticket.challenge_id),
        signature=ticket.signature,
    )
    return command_key(command), COMMAND_ADAPTER.dump_json(command)


def write_tickets(path: Path, tickets: Sequence[Ticket]) -> None:
    """Tickets as JSON lines, for the load generator's process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for ticket in tickets:
            out.write(json.dumps([ticket.challenge_id, ticket.signature]) + "\n")


def read_tickets(path: Path) -> list[Ticket]:
    tickets = []
    with path.open() as lines:
        for line in lines:
            challenge_id, signature = json.loads(line)
            tickets.append(Ticket(challenge_id=challenge_id, signature=signature))
    return tickets
