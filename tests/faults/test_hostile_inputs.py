"""Hostile input through the whole product: API, Kafka, worker and store, in one process.

Two tables:

- :func:`tests.faults.hostile.cases`: requests the API must refuse itself (400, 401, 403,
  404, 405). Each is answered with its status and exact error body, and changes nothing: no
  command is published (the commands topic's end offsets stay put), hence no event, no OTP,
  and every row of the store is as it was.
- :data:`WORKER_CASES` below: well-formed requests a worker must refuse (badly encoded
  signatures, ids of another client or of nothing). Each publishes exactly one command and
  one ``signature_rejected`` event, and changes the store only as SPEC §3/§4 say (an invalid
  signature counts one attempt; a not_found counts none).

One stack (worker, API, readers) serves the whole module: starting one per case would cost
far more than the cases themselves.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from storage.engine import create_engine
from tests.faults.hostile import Hostile, cases
from tests.support.http import Tokens, api_client, api_settings
from tests.support.worker import (
    DeviceKey,
    TopicReader,
    running_worker,
    start_reader,
    worker_settings,
)
from worker.settings import WorkerSettings
from worker.tables import AttemptRow, Base, ChallengeRow, DeviceRow, RefusalRow

pytestmark = [
    pytest.mark.faults,
    pytest.mark.kafka,
    # The module's stack lives on the module's event loop.
    pytest.mark.asyncio(loop_scope="module"),
]

N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
SIGNATURES = "/v1/mfa/challenges/signatures"
FLAT_KEYS = {"id", "status", "code", "title", "detail", "error_code"}
ITEM_KEYS = {"id", "status", "code", "title", "detail", "source"}
LISTED = {401, 403, 409}


@dataclass
class Stack:
    http: httpx.AsyncClient
    tokens: Tokens
    settings: WorkerSettings
    events: TopicReader
    otps: TopicReader
    commands: TopicReader
    offsets: AIOKafkaConsumer
    store: AsyncEngine
    # A pending challenge and its device, owned by bank-1, for the API-refused cases.
    challenge_id: str = ""
    device_id: str = ""

    def headers(self, auth: str = "valid", client_id: str = "bank-1") -> dict[str, str]:
        if auth == "valid":
            return self.tokens.headers(client_id)
        if auth == "no-scope":
            return self.tokens.headers(client_id, scope="profile")
        if auth == "wrong-audience":
            token = self.tokens.devkeys.mint_token(
                self.tokens.directory, client_id=client_id, audience="another-service"
            )
            return {"Authorization": f"Bearer {token}"}
        if auth == "garbage":
            return {"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."}
        return {}

    async def register(self, key: DeviceKey, client_id: str = "bank-1") -> tuple[str, str, str]:
        """A new pending device: (device id, challenge id, OTP)."""
        response = await self.http.post(
            "/v1/mfa/devices",
            headers=self.headers(client_id=client_id),
            # A person per device: the cases bind devices, and five would reach the limit.
            json={
                "person_id": f"person-{uuid.uuid4().hex[:8]}",
                "key_type": "ecdsa-p256",
                "key": key.public_hex,
            },
        )
        assert response.status_code == 202, response.text
        body = response.json()
        challenge_id: str = body["challenge"]["id"]
        [otp] = await self.otps.wait_for(lambda r: r["value"]["challenge_id"] == challenge_id)
        return body["id"], challenge_id, otp["value"]["otp"]

    async def end_offsets(self) -> dict[str, int]:
        """How many records each topic holds: what the API or a worker has published."""
        totals = {}
        for topic in (
            self.settings.commands_topic,
            self.settings.events_topic,
            self.settings.otp_deliveries_topic,
            self.settings.dead_letter_topic,
        ):
            partitions = [TopicPartition(topic, p) for p in range(self.settings.topic_partitions)]
            ends = await self.offsets.end_offsets(partitions)
            totals[topic] = sum(ends.values())
        return totals

    async def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table of the store."""
        async with self.store.connect() as connection:
            return {
                table.name: [
                    tuple(row)
                    for row in await connection.execute(select(table).order_by(*table.primary_key))
                ]
                for table in Base.metadata.sorted_tables
            }

    async def challenge(self, challenge_id: str) -> ChallengeRow:
        async with AsyncSession(self.store) as session:
            challenge = await session.get(ChallengeRow, challenge_id)
        assert challenge is not None
        return challenge

    async def device(self, device_id: str) -> DeviceRow:
        async with AsyncSession(self.store) as session:
            device = await session.get(DeviceRow, device_id)
        assert device is not None
        return device

    async def count(self, table: type[AttemptRow] | type[RefusalRow], challenge_id: str) -> int:
        async with AsyncSession(self.store) as session:
            found = await session.scalars(select(table).where(table.challenge_id == challenge_id))
            return len(found.all())

    async def events_until(self, subject: str, last_request_id: str) -> list[dict[str, Any]]:
        """The subject's events up to the one of ``last_request_id``. That request came after
        the others on the same key, hence the same partition: every earlier event of the
        subject is published by the time its own is."""
        await self.events.wait_for(
            lambda r: (
                r["value"]["subject"] == subject
                and r["value"]["data"].get("request_id") == last_request_id
            )
        )
        return [r["value"] for r in self.events.records if r["value"]["subject"] == subject]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    kafka_bootstrap: str, module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    directory = tmp_path_factory.mktemp("hostile")
    # Probes on a free port: other workers may be running on this host.
    settings = worker_settings(
        kafka_bootstrap,
        directory / "store.db",
        database_url=module_database_url,
        worker_http_port=0,
    )
    tokens = Tokens(directory / "keys")
    async with running_worker(settings), api_client(api_settings(settings, tokens)) as http:
        readers = [
            await start_reader(kafka_bootstrap, topic)
            for topic in (
                settings.events_topic,
                settings.otp_deliveries_topic,
                settings.commands_topic,
            )
        ]
        offsets = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None)
        await offsets.start()
        store = create_engine(settings.database_url)
        try:
            events, otps, commands = readers
            stack = Stack(http, tokens, settings, events, otps, commands, offsets, store)
            stack.device_id, stack.challenge_id, _ = await stack.register(DeviceKey())
            yield stack
        finally:
            await store.dispose()
            await offsets.stop()
            for reader in readers:
                await reader.consumer.stop()


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """SPEC §3's body for the status, exactly; returns the error (the flat body or the item)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    request_id = response.headers["X-Request-ID"]
    if status in LISTED:
        assert set(body) == {"errors"}, body
        [item] = body["errors"]
        assert set(item) == ITEM_KEYS, item
        assert (item["status"], item["code"], item["id"]) == (status, code, request_id)
        assert item["source"] == {"field": item["source"]["field"], "message": item["detail"]}
        assert item["title"]
        assert item["detail"]
        error: dict[str, Any] = item
    else:
        assert set(body) == FLAT_KEYS, body
        assert (body["status"], body["code"], body["error_code"]) == (status, code, code)
        assert body["id"] == request_id
        assert body["title"]
        assert body["detail"]
        error = body
    assert "Traceback" not in response.text
    return error


# --- refused by the API: nothing published, nothing stored --------------------------------


@pytest.mark.parametrize("case", cases(), ids=lambda case: case.name)
async def test_refused_by_the_api_changes_nothing(stack: Stack, case: Hostile) -> None:
    before_offsets, before_rows = await stack.end_offsets(), await stack.rows()
    path = case.path.format(challenge=stack.challenge_id, device=stack.device_id)
    response = await stack.http.request(
        case.method,
        path,
        content=case.body,
        headers={**stack.headers(case.auth), **case.headers},
    )

    error = _assert_error(response, case.status, case.code)
    if case.status == 400:
        assert case.field is not None
        assert f"{case.field}:" in error["detail"]
    if case.status in (401, 403):
        assert error["source"]["field"] == case.field == "Authorization"
    if case.status == 405:
        assert response.headers["Allow"]
    # The API publishes before it answers, so an unchanged commands topic now means no
    # command at all; with no command, no worker can publish or store anything later.
    assert await stack.end_offsets() == before_offsets
    assert await stack.rows() == before_rows


async def test_the_shared_challenge_is_untouched(stack: Stack) -> None:
    # Every refusal above left the challenge pending with all its attempts.
    challenge = await stack.challenge(stack.challenge_id)
    assert (challenge.status, challenge.failed_attempts) == ("pending", 0)
    assert await stack.count(AttemptRow, stack.challenge_id) == 0
    assert await stack.count(RefusalRow, stack.challenge_id) == 0
    assert (await stack.device(stack.device_id)).status == "pending"


# --- refused by a worker: one command, one event, and only the state the contract says -----


def _sign(key: DeviceKey, otp: str) -> tuple[int, int]:
    """A correct (r, s) whose DER has no sign-padding byte (70 bytes at most), so one more
    byte still fits in 144 hex characters and the API lets it through to the worker."""
    while True:
        der = key.private_key.sign(otp.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        if r.bit_length() < 256 and s.bit_length() < 256:
            return r, s


def _int(value: int, pad: int = 0) -> bytes:
    content = b"\x00" * pad + value.to_bytes(value.bit_length() // 8 + 1, "big")
    return b"\x02" + bytes([len(content)]) + content


def _seq(body: bytes, long_form: bool = False) -> bytes:
    length = (b"\x81" if long_form else b"") + bytes([len(body)])
    return b"\x30" + length + body


def _ber_long_form(key: DeviceKey, otp: str) -> str:
    r, s = _sign(key, otp)
    return _seq(_int(r) + _int(s), long_form=True).hex()


def _ber_leading_zero(key: DeviceKey, otp: str) -> str:
    r, s = _sign(key, otp)
    return _seq(_int(r, pad=1) + _int(s)).hex()


def _r_zero(key: DeviceKey, otp: str) -> str:
    return encode_dss_signature(0, _sign(key, otp)[1]).hex()


def _s_equals_n(key: DeviceKey, otp: str) -> str:
    return encode_dss_signature(_sign(key, otp)[0], N).hex()


def _s_plus_n(key: DeviceKey, otp: str) -> str:
    r, s = _sign(key, otp)
    return encode_dss_signature(r, s + N).hex()


def _raw_r_s(key: DeviceKey, otp: str) -> str:
    r, s = _sign(key, otp)
    return (r.to_bytes(32, "big") + s.to_bytes(32, "big")).hex()


def _trailing_byte(key: DeviceKey, otp: str) -> str:
    return encode_dss_signature(*_sign(key, otp)).hex() + "00"


def _wrong_key_upper_case(key: DeviceKey, otp: str) -> str:
    return DeviceKey().sign(otp).upper()


# Signatures of the right OTP by the right key (but one), badly encoded or out of range:
# SPEC §2 makes each a failed signature, counted as an attempt.
BAD_SIGNATURES: dict[str, Callable[[DeviceKey, str], str]] = {
    "ber-long-form-length": _ber_long_form,
    "ber-leading-zero-r": _ber_leading_zero,
    "r-zero": _r_zero,
    "s-equals-n": _s_equals_n,
    "s-plus-n": _s_plus_n,
    "raw-r-s-64-bytes": _raw_r_s,
    "trailing-byte": _trailing_byte,
    "upper-case-hex-of-wrong-key": _wrong_key_upper_case,
}


@pytest.mark.parametrize("kind", list(BAD_SIGNATURES))
async def test_badly_made_signature_counts_one_failed_attempt(stack: Stack, kind: str) -> None:
    key = DeviceKey()
    device_id, challenge_id, otp = await stack.register(key)
    before = await stack.end_offsets()

    response = await stack.http.put(
        f"{SIGNATURES}/{challenge_id}",
        headers=stack.headers(),
        json={"signature": BAD_SIGNATURES[kind](key, otp)},
    )

    error = _assert_error(response, 403, "invalid_signature")
    assert error["source"]["field"] == "signature"
    assert "4 attempts remain" in error["detail"]
    challenge = await stack.challenge(challenge_id)
    assert (challenge.status, challenge.failed_attempts) == ("pending", 1)
    assert await stack.count(AttemptRow, challenge_id) == 1
    assert (await stack.device(device_id)).status == "pending"
    after = await stack.end_offsets()
    assert after[stack.settings.commands_topic] == before[stack.settings.commands_topic] + 1
    assert after[stack.settings.dead_letter_topic] == before[stack.settings.dead_letter_topic]

    # The right signature still binds: one failure is not a lock.
    verified = await stack.http.put(
        f"{SIGNATURES}/{challenge_id}", headers=stack.headers(), json={"signature": key.sign(otp)}
    )
    assert verified.status_code == 204, verified.text
    events = await stack.events_until(challenge_id, verified.headers["X-Request-ID"])
    assert [(e["type"].rsplit(".", 1)[1], e["data"].get("reason")) for e in events] == [
        ("challenge_created", None),
        ("signature_rejected", "invalid_signature"),
        ("signature_verified", None),
    ]
    assert events[1]["data"]["request_id"] == response.headers["X-Request-ID"]
    assert events[1]["data"]["attempt"] == 1


async def test_duplicate_keys_are_refused_before_anything_is_published(stack: Stack) -> None:
    """``{"signature": <wrong>, "signature": <valid>}``: a gateway, WAF or log reading the
    first key would see another signature than the one verified, so neither is: 400, no
    command, nothing counted."""
    key = DeviceKey()
    _, challenge_id, otp = await stack.register(key)
    before_offsets = await stack.end_offsets()
    content = b'{"signature": "%s", "signature": "%s"}' % (
        DeviceKey().sign(otp).encode(),
        key.sign(otp).encode(),
    )

    response = await stack.http.put(
        f"{SIGNATURES}/{challenge_id}",
        headers={**stack.headers(), "Content-Type": "application/json"},
        content=content,
    )

    error = _assert_error(response, 400, "validation_error")
    assert "signature: appears more than once" in error["detail"]
    assert await stack.end_offsets() == before_offsets
    challenge = await stack.challenge(challenge_id)
    assert (challenge.status, challenge.failed_attempts) == ("pending", 0)


async def test_another_clients_challenge_is_refused_without_counting(stack: Stack) -> None:
    key = DeviceKey()
    device_id, challenge_id, otp = await stack.register(key, client_id="bank-2")
    before_rows = await stack.rows()

    # bank-1 sends bank-2's device's own correct signature to bank-2's challenge.
    response = await stack.http.put(
        f"{SIGNATURES}/{challenge_id}", headers=stack.headers(), json={"signature": key.sign(otp)}
    )
    _assert_error(response, 404, "not_found")
    # Nor may bank-1 read or unbind bank-2's device: the same 404 as for nothing at all.
    for method in ("GET", "DELETE"):
        other = await stack.http.request(
            method, f"/v1/mfa/devices/{device_id}", headers=stack.headers()
        )
        _assert_error(other, 404, "not_found")
    read = await stack.http.get(f"{SIGNATURES}/{challenge_id}", headers=stack.headers())
    _assert_error(read, 404, "not_found")

    # Only the refusal is remembered (so a redelivery repeats it); the challenge, its
    # attempts and the device are as they were.
    after_rows = await stack.rows()
    assert after_rows["challenges"] == before_rows["challenges"]
    assert after_rows["devices"] == before_rows["devices"]
    assert after_rows["attempts"] == before_rows["attempts"]
    assert len(after_rows["refusals"]) == len(before_rows["refusals"]) + 1

    verified = await stack.http.put(
        f"{SIGNATURES}/{challenge_id}",
        headers=stack.headers(client_id="bank-2"),
        json={"signature": key.sign(otp)},
    )
    assert verified.status_code == 204, verified.text
    events = await stack.events_until(challenge_id, verified.headers["X-Request-ID"])
    assert [(e["type"].rsplit(".", 1)[1], e["data"].get("reason")) for e in events] == [
        ("challenge_created", None),
        ("signature_rejected", "not_found"),
        ("signature_verified", None),
    ]
    refused = events[1]["data"]
    assert refused["request_id"] == response.headers["X-Request-ID"]
    # The event tells the fraud pipeline who tried, not whose challenge it was.
    assert refused["client_id"] == "bank-1"
    assert refused["attempt"] is None
    assert json.dumps(events).count(otp) == 0


async def test_unknown_challenge_is_refused_without_state(stack: Stack) -> None:
    key = DeviceKey()
    _, _, otp = await stack.register(key)
    unknown = "00000000-0000-4000-8000-000000000000"
    before_rows = await stack.rows()

    first = await stack.http.put(
        f"{SIGNATURES}/{unknown}", headers=stack.headers(), json={"signature": key.sign(otp)}
    )
    _assert_error(first, 404, "not_found")
    after_rows = await stack.rows()
    for table in ("challenges", "devices", "attempts"):
        assert after_rows[table] == before_rows[table]

    # A second attempt on the same id is the barrier: its event follows the first's.
    second = await stack.http.put(
        f"{SIGNATURES}/{unknown}", headers=stack.headers(), json={"signature": key.sign(otp)}
    )
    _assert_error(second, 404, "not_found")
    events = await stack.events_until(unknown, second.headers["X-Request-ID"])
    assert [(e["data"]["reason"], e["data"]["request_id"]) for e in events] == [
        ("not_found", first.headers["X-Request-ID"]),
        ("not_found", second.headers["X-Request-ID"]),
    ]
