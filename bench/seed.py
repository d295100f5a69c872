"""Pending challenges with known OTPs, written straight into a store, and the correct
signature of each; and the customer base a store already holds. Why written straight in,
and what the rows are: docs/benchmarks.md."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from harness.otp_keys import RUN_KEYRING
from schemas.commands import COMMAND_ADAPTER, VerifyDeviceSignature, VerifySignature, command_key
from storage.engine import asyncpg_dsn, sqlite_path
from worker.attempts.sqlite import to_sqlite_time
from worker.otp_keyring import OtpKeyring

BENCH_CLIENT_ID = "bench-bank"
DEFAULT_TTL = timedelta(hours=1)
_BATCH = 20_000  # rows per statement batch

DEVICE_COLUMNS = (
    "id",
    "key_id",
    "client_id",
    "person_id",
    "name",
    "key_purpose",
    "public_key",
    "status",
    "device_data",
    "created_at",
    "bound_at",
    "created_by_command",
    "created_by_request",
)
CHALLENGE_COLUMNS = (
    "id",
    "device_id",
    "status",
    "otp_digest",
    "otp_delivered",
    "failed_attempts",
    "created_at",
    "expires_at",
    "decided_at",
)
ATTEMPT_COLUMNS = ("challenge_id", "signature", "outcome", "number", "event_json", "decided_at")


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


# A table's name, its columns and rows as tuples in that column order.
TableRows = tuple[str, Sequence[str], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Rows:
    """Rows of the store's tables, as tuples in the column orders above."""

    devices: list[tuple[Any, ...]]
    challenges: list[tuple[Any, ...]]
    attempts: list[tuple[Any, ...]]
    # Other tables' rows (device signing's: bench.device_seed), written after these.
    more: tuple[TableRows, ...] = ()

    def tables(self) -> Iterator[TableRows]:
        """Every table's rows, a row always after the rows it refers to."""
        yield "devices", DEVICE_COLUMNS, self.devices
        yield "challenges", CHALLENGE_COLUMNS, self.challenges
        yield "attempts", ATTEMPT_COLUMNS, self.attempts
        yield from self.more


@dataclass(frozen=True)
class DeviceKey:
    """A device's own P-256 key: its public point as the store keeps it (hex of the
    uncompressed SEC1 point) and signatures as the device makes them (DER, hex)."""

    private: ec.EllipticCurvePrivateKey

    @classmethod
    def new(cls) -> DeviceKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_hex(self) -> str:
        public = self.private.public_key()
        return public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint).hex()

    def sign(self, message: bytes) -> str:
        return self.private.sign(message, ec.ECDSA(hashes.SHA256())).hex()


def device_row(
    *,
    device_id: str,
    key_id: str,
    person_id: str,
    public_key: str,
    status: str,
    now: datetime,
    request: str,
    client_id: str = BENCH_CLIENT_ID,
    command: str | None = None,
) -> tuple[Any, ...]:
    """A row of ``devices`` with its unrestricted binding key, registered by ``command`` (a
    fresh id by default); bound at ``now`` when its status is bound."""
    bound_at = now if status == "bound" else None
    return (
        *(device_id, key_id, client_id, person_id, None, "unrestricted", public_key, status),
        *(None, now, bound_at, command or str(uuid.uuid4()), request),
    )


def pending(
    count: int,
    *,
    client_id: str = BENCH_CLIENT_ID,
    ttl: timedelta = DEFAULT_TTL,
    keyring: OtpKeyring | None = RUN_KEYRING,
) -> tuple[Rows, list[Ticket]]:
    """``count`` pending devices and challenges, each with its own key, and their tickets.
    The OTP digests are sealed with ``keyring`` as the worker seals them (the harness run's
    key by default); None stores them in clear, for a worker from before they were sealed
    (a baseline checkout)."""
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    devices, challenges, tickets = [], [], []
    for number in range(count):
        key = DeviceKey.new()
        otp = f"{secrets.randbelow(1_000_000):06d}"
        signature = key.sign(otp.encode("ascii"))
        device_id, challenge_id = str(uuid.uuid4()), str(uuid.uuid4())
        digest = hashlib.sha256(otp.encode("ascii")).digest()
        devices.append(
            device_row(
                device_id=device_id,
                key_id=str(uuid.uuid4()),
                client_id=client_id,
                person_id=f"bench-{run}-{number}",
                public_key=key.public_hex,
                status="pending",
                now=now,
                request=f"bench-seed-{run}-{number}",
            )
        )
        challenges.append(
            (
                challenge_id,
                device_id,
                "pending",
                digest if keyring is None else keyring.seal(challenge_id, digest),
                True,
                0,
                now,
                now + ttl,
                None,
            )
        )
        tickets.append(Ticket(challenge_id=challenge_id, signature=signature))
    return Rows(devices, challenges, []), tickets


# Every stored customer device has the same (valid) key: it is never verified again, and
# generating a million keys would take minutes.
_CUSTOMER_KEY = DeviceKey(ec.derive_private_key(7, ec.SECP256R1())).public_hex


def customers(count: int, *, client_id: str = BENCH_CLIENT_ID) -> Iterator[Rows]:
    """A customer base of ``count`` bound devices (two per person, of ``client_id``, the
    client the benchmark's own requests come from), each with its verified challenge and
    the attempt that verified it, in chunks."""
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    for start in range(0, count, _BATCH):
        devices, challenges, attempts = [], [], []
        for number in range(start, min(count, start + _BATCH)):
            device_id, challenge_id = str(uuid.uuid4()), str(uuid.uuid4())
            person = f"customer-{run}-{number // 2}"
            devices.append(
                device_row(
                    device_id=device_id,
                    key_id=str(uuid.uuid4()),
                    client_id=client_id,
                    person_id=person,
                    public_key=_CUSTOMER_KEY,
                    status="bound",
                    now=now,
                    request="seed",
                )
            )
            challenges.append((challenge_id, device_id, "verified", None, True, 0, now, now, now))
            attempts.append((challenge_id, f"30{number:08x}", "verified", 1, "{}", now))
        yield Rows(devices, challenges, attempts)


def _sqlite_values(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [
        tuple(to_sqlite_time(value) if isinstance(value, datetime) else value for value in row)
        for row in rows
    ]


def _insert(table: str, columns: Sequence[str]) -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608


def _write_sqlite(path: Path, chunks: Iterator[Rows]) -> None:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        for rows in chunks:
            connection.execute("BEGIN IMMEDIATE")
            for table, columns, records in rows.tables():
                connection.executemany(_insert(table, columns), _sqlite_values(records))
            connection.execute("COMMIT")
    finally:
        connection.close()


async def _write_postgres(database_url: str, chunks: Iterator[Rows]) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for rows in chunks:
            async with connection.transaction():
                for table, columns, records in rows.tables():
                    if records:
                        await connection.copy_records_to_table(
                            table, records=records, columns=list(columns)
                        )
    finally:
        await connection.close()


def write(database_url: str, chunks: Iterator[Rows]) -> None:
    """Write ``chunks`` into the migrated store at ``database_url``."""
    path = sqlite_path(database_url)
    if path is not None:
        _write_sqlite(path, chunks)
    else:
        asyncio.run(_write_postgres(database_url, chunks))


def seed(database_url: str, count: int, **options: Any) -> list[Ticket]:
    """Write ``count`` pending challenges into the migrated store; their tickets."""
    rows, tickets = pending(count, **options)
    write(database_url, iter([rows]))
    return tickets


def seed_customers(database_url: str, count: int) -> None:
    write(database_url, customers(count))


def verify_command(
    ticket: Ticket,
    *,
    client_id: str = BENCH_CLIENT_ID,
    reply_to: str | None,
    command_type: type[VerifySignature] | type[VerifyDeviceSignature] = VerifySignature,
) -> tuple[bytes, bytes]:
    """The Kafka key and value of the command the API would publish for ``ticket``: a
    binding challenge's VerifySignature, or a device challenge's VerifyDeviceSignature."""
    command = command_type(
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
