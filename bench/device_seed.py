"""Bound devices, each with its key and a pending device challenge (SPEC §8), written straight
into a store, and the correct signature of each challenge: the backlog of the device
signature drain. What the rows are: docs/benchmarks.md."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.seed import BENCH_CLIENT_ID, DEFAULT_TTL, DeviceKey, Rows, Ticket, device_row, write
from schemas.signing import NONCE_BYTES, string_to_sign

KEY_COLUMNS = (
    "id",
    "device_id",
    "key_purpose",
    "public_key",
    "created_at",
    "used_at",
    "signed_by_key_id",
    "created_by_command",
    "created_by_request",
)
DEVICE_CHALLENGE_COLUMNS = (
    "id",
    "device_id",
    "key_id",
    "key_purpose",
    "status",
    "string_to_sign",
    "message_digest",
    "transaction_json",
    "device_data",
    "failed_attempts",
    "created_at",
    "expires_at",
    "decided_at",
    "created_by_command",
    "created_by_request",
)


def device_challenge(
    *, challenge_id: str, device_id: str, key_id: str, now: datetime, ttl: timedelta, request: str
) -> tuple[tuple[Any, ...], str]:
    """A pending login challenge (no transaction) for the device's unrestricted key, as the
    worker opens one: a fresh nonce, the canonical string to sign and its SHA-256; and that
    string."""
    expires_at = now + ttl
    text = string_to_sign(
        challenge_id=uuid.UUID(challenge_id),
        nonce=secrets.token_hex(NONCE_BYTES),
        created_at=now,
        expires_at=expires_at,
        transaction=None,
    )
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    row = (
        *(challenge_id, device_id, key_id, "unrestricted", "pending", text, digest, None, None),
        *(0, now, expires_at, None, str(uuid.uuid4()), request),
    )
    return row, text


def bound_with_challenges(
    count: int, *, client_id: str = BENCH_CLIENT_ID, ttl: timedelta = DEFAULT_TTL
) -> tuple[Rows, list[Ticket]]:
    """``count`` bound devices, each of its own person with its own key (its row in
    ``devices``, its verified binding challenge, its row in ``device_keys``) and one pending
    device challenge; and for each challenge its ticket, the device's signature of the
    string to sign (UTF-8)."""
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    devices, bindings, keys, challenges, tickets = [], [], [], [], []
    for number in range(count):
        key = DeviceKey.new()
        device_id, key_id, challenge_id, command = (str(uuid.uuid4()) for _ in range(4))
        request = f"bench-device-seed-{run}-{number}"
        devices.append(
            device_row(
                device_id=device_id,
                key_id=key_id,
                client_id=client_id,
                person_id=f"bench-{run}-{number}",
                public_key=key.public_hex,
                status="bound",
                now=now,
                request=request,
                command=command,
            )
        )
        bindings.append((str(uuid.uuid4()), device_id, "verified", None, True, 0, now, now, now))
        # The device's binding key as registration stores it: the device's key id, purpose,
        # key, time and registering command.
        keys.append(
            (key_id, device_id, "unrestricted", key.public_hex, now, None, None, command, request)
        )
        challenge, text = device_challenge(
            challenge_id=challenge_id,
            device_id=device_id,
            key_id=key_id,
            now=now,
            ttl=ttl,
            request=request,
        )
        challenges.append(challenge)
        tickets.append(Ticket(challenge_id=challenge_id, signature=key.sign(text.encode("utf-8"))))
    more = (
        ("device_keys", KEY_COLUMNS, keys),
        ("device_challenges", DEVICE_CHALLENGE_COLUMNS, challenges),
    )
    return Rows(devices, bindings, [], more=more), tickets


def seed_device_challenges(database_url: str, count: int, **options: Any) -> list[Ticket]:
    """Write ``count`` bound devices and their pending device challenges into the migrated
    store; the challenges' tickets (for VerifyDeviceSignature commands:
    ``bench.seed.verify_command``)."""
    rows, tickets = bound_with_challenges(count, **options)
    write(database_url, iter([rows]))
    return tickets
