"""The poison tests' material: commands that cannot be parsed, of many kinds (binding and
device signing alike), valid commands to interleave with them, and a producer that puts both
on chosen partitions of the commands topic as raw bytes."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from tests.support.worker import DeviceKey

# A well-formed DER signature (of nothing in particular).
GOOD = "3045022100" + "ab" * 32 + "0220" + "cd" * 32
PAYMENT = {"amount": {"value": "12.30", "currency": "EUR"}, "payee": {"name": "Shop"}}


def _header(kind: str, challenge_id: object, request_id: str | None = None) -> dict[str, Any]:
    return {
        "type": kind,
        "command_id": str(uuid.uuid4()),
        "request_id": request_id or f"req-{uuid.uuid4().hex[:8]}",
        "client_id": "bank-1",
        "reply_to": "poison-test",
        "issued_at": datetime.now(UTC).isoformat(),
        "challenge_id": str(challenge_id),
    }


def _command(kind: str, marker: str, public_hex: str, **changes: Any) -> dict[str, Any]:
    """A well-formed command as JSON, changed by ``changes`` (a value of ``...`` removes the
    field). ``marker`` makes every poison message's bytes unique."""
    base = _header(kind, uuid.uuid4(), marker)
    if kind == "register_device":
        base.update(
            device_id=str(uuid.uuid4()),
            key_id=str(uuid.uuid4()),
            registration={"person_id": "person-1", "key_type": "ecdsa-p256", "key": public_hex},
        )
    elif kind == "open_device_challenge":
        base["device_id"] = str(uuid.uuid4())
    else:
        base["signature"] = GOOD
    for name, value in changes.items():
        if value is ...:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def _registration(public_hex: str, **changes: Any) -> dict[str, Any]:
    registration: dict[str, Any] = {
        "person_id": "person-1",
        "key_type": "ecdsa-p256",
        "key": public_hex,
    }
    registration.update(changes)
    return registration


def poison(count: int, public_hex: str) -> list[bytes]:
    """``count`` different commands that cannot be parsed, of many kinds, all unique."""
    good = GOOD

    def encoded(kind: str) -> Callable[..., bytes]:
        def command(marker: str, **changes: Any) -> bytes:
            return json.dumps(_command(kind, marker, public_hex, **changes)).encode()

        return command

    verify, register = encoded("verify_signature"), encoded("register_device")
    open_device = encoded("open_device_challenge")
    verify_device = encoded("verify_device_signature")
    kinds: list[Callable[[int, str], bytes]] = [
        lambda i, m: f"not json at all {m}".encode(),
        lambda i, m: b"\xff\xfe\x00\x81 binary " + m.encode(),
        lambda i, m: verify(m)[: 60 + i % 60],  # truncated JSON, in its random command id
        lambda i, m: json.dumps([m, 1, 2]).encode(),
        lambda i, m: json.dumps([_command("verify_signature", m, public_hex)]).encode(),
        lambda i, m: json.dumps(m).encode(),  # a JSON string
        lambda i, m: str(i).encode(),  # a JSON number
        lambda i, m: b" " * i + b"null",
        lambda i, m: json.dumps({"note": m}).encode(),
        lambda i, m: verify(m, type=...),
        lambda i, m: verify(m, command_id=...),
        lambda i, m: verify(m, client_id=...),
        lambda i, m: verify(m, issued_at=...),
        lambda i, m: verify(m, challenge_id=...),
        lambda i, m: verify(m, signature=...),
        lambda i, m: register(m, registration=...),
        lambda i, m: register(m, device_id=...),
        lambda i, m: verify(m, command_id=12345),
        lambda i, m: verify(m, client_id=["bank-1"]),
        lambda i, m: verify(m, issued_at="yesterday"),
        lambda i, m: verify(m, challenge_id={"id": 1}),
        lambda i, m: verify(m, signature=304502),
        lambda i, m: verify(m, reply_to=5),
        lambda i, m: register(m, registration="person-1"),
        lambda i, m: verify(m, type="delete_everything"),
        lambda i, m: verify(m, type=None),
        lambda i, m: verify(m, admin=True),  # an extra field
        lambda i, m: register(m, registration=_registration(public_hex, pin="1234")),
        lambda i, m: verify(m, signature="ab" * 50_000),  # a huge string
        lambda i, m: register(m, registration=_registration(public_hex, person_id="p" * 100_000)),
        lambda i, m: verify(m, device_data="d" * (8 * 1024 + 1)),
        lambda i, m: verify(m, command_id="not-a-uuid"),
        lambda i, m: verify(m, challenge_id="1234"),
        lambda i, m: register(m, device_id="zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"),
        lambda i, m: verify(m, signature="zz" + good[2:]),
        lambda i, m: verify(m, signature=good[:-1]),  # odd length
        lambda i, m: verify(m, signature=""),
        lambda i, m: verify(m, signature="0x" + good),
        lambda i, m: verify(m, signature=good[:10] + " " + good[10:]),
        lambda i, m: verify(m, signature=good + "abcd"),  # 146 hex characters
        lambda i, m: verify(m, signature="\uff13\uff10\uff14\uff15"),  # full-width digits
        lambda i, m: register(m, registration=_registration(public_hex, key_type="rsa-2048")),
        lambda i, m: register(m, registration=_registration("04" + "00" * 64)),
        lambda i, m: register(m, registration=_registration("02" + public_hex[2:66])),
        lambda i, m: register(m, registration=_registration(public_hex, language="xx")),
        lambda i, m: register(m, registration=_registration(public_hex, challenge_type="email")),
        lambda i, m: register(m, registration=_registration(public_hex, key_purpose="admin")),
        lambda i, m: b'{"type": "verify_signature", "request_id": "\xff\xfe' + m.encode() + b'"}',
        lambda i, m: b"[" * 5000 + m.encode(),  # nested deeper than any parser allows
        lambda i, m: open_device(m, device_id=...),
        lambda i, m: open_device(m, device_id="not-a-uuid"),
        lambda i, m: open_device(m, key_purpose="admin"),
        lambda i, m: open_device(
            m, transaction={**PAYMENT, "amount": {"value": 12.3, "currency": "EUR"}}
        ),
        lambda i, m: open_device(m, transaction={**PAYMENT, "payee": {"name": "A\nB"}}),
        lambda i, m: open_device(m, device_data="d" * (8 * 1024 + 1)),
        lambda i, m: verify_device(m, signature=...),
        lambda i, m: verify_device(m, signature="0x" + good),
        lambda i, m: verify_device(m, signature=good[:-1]),  # odd length
        lambda i, m: verify_device(m, challenge_id="1234"),
        lambda i, m: verify_device(m, type="verify_device_signatures"),
    ]
    payloads = [kinds[i % len(kinds)](i, f"poison-{i}") for i in range(count)]
    assert len(set(payloads)) == count
    return payloads


def interleave(
    valid: list[bytes], invalid: list[bytes], rng: random.Random, cap: int
) -> list[tuple[bool, bytes]]:
    """``valid`` in order, with runs of ``invalid`` between them, none longer than ``cap``
    and one of exactly ``cap``; each item says whether it is valid."""
    gaps = [0] * (len(valid) + 1)
    left = len(invalid)
    assert left <= cap * len(gaps)
    gaps[1] = min(cap, left)
    left -= gaps[1]
    while left:
        gap = rng.randrange(len(gaps))
        if gaps[gap] < cap:
            gaps[gap] += 1
            left -= 1
    items: list[tuple[bool, bytes]] = []
    poison_left = iter(invalid)
    for number, size in enumerate(gaps):
        items.extend((False, next(poison_left)) for _ in range(size))
        if number < len(valid):
            items.append((True, valid[number]))
    return items


@dataclass(frozen=True)
class Sent:
    valid: bool
    raw: bytes
    key: bytes | None
    partition: int
    offset: int


class Commands:
    """Publishes raw commands to chosen partitions and remembers where each landed."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self.sent: list[Sent] = []

    async def publish(
        self, per_partition: dict[int, list[tuple[bool, bytes, bytes | None]]]
    ) -> None:
        pending: list[tuple[bool, bytes, bytes | None, int, asyncio.Future[Any]]] = []
        # Round robin over the partitions, so both are worked on at once, each in its order.
        longest = max(len(items) for items in per_partition.values())
        for index in range(longest):
            for partition, items in per_partition.items():
                if index < len(items):
                    valid, raw, key = items[index]
                    future = await self.producer.send(self.topic, raw, key=key, partition=partition)
                    pending.append((valid, raw, key, partition, future))
        for valid, raw, key, partition, future in pending:
            metadata = await future
            self.sent.append(Sent(valid, raw, key, partition, metadata.offset))


def dead_lettered_count() -> float:
    return (
        REGISTRY.get_sample_value(
            "device_binding_commands_total", {"type": "unparseable", "result": "dead_lettered"}
        )
        or 0.0
    )


@asynccontextmanager
async def raw_producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


def valid_register(challenge_id: uuid.UUID, key: DeviceKey, person: str) -> dict[str, Any]:
    return _header("register_device", challenge_id) | {
        "device_id": str(uuid.uuid4()),
        "key_id": str(uuid.uuid4()),
        "registration": {"person_id": person, "key_type": "ecdsa-p256", "key": key.public_hex},
    }


def valid_verify(challenge_id: uuid.UUID, signature: str) -> dict[str, Any]:
    return _header("verify_signature", challenge_id) | {"signature": signature}


def valid_open(challenge_id: uuid.UUID, device_id: str) -> dict[str, Any]:
    """Open a device challenge (a login) for the device."""
    return _header("open_device_challenge", challenge_id) | {"device_id": device_id}


def valid_verify_device(challenge_id: str, signature: str) -> dict[str, Any]:
    return _header("verify_device_signature", challenge_id) | {"signature": signature}
