"""Reliability under faults (SPEC §3, §5, §6): a Kafka outage in the middle of a load, and
poison on the commands topic.

The outage test runs its own broker, because stopping it must not touch the other tests;
the poison tests share the session's broker on topics of their own.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY
from pydantic import ValidationError

from harness.kafka.local_kafka import LocalKafka
from schemas.commands import COMMAND_ADAPTER
from schemas.topics import DLQ_REASON_HEADER, DLQ_SOURCE_HEADER
from tests.support.http import Tokens, api_client, api_settings
from tests.support.worker import DeviceKey, running_worker, worker_settings

pytestmark = [pytest.mark.faults, pytest.mark.kafka]

CREATED = "mfa.device_binding.challenge_created"
VERIFIED = "mfa.device_binding.signature_verified"
REJECTED = "mfa.device_binding.signature_rejected"


# Everything published on a few topics, read in the background.


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes | None
    headers: dict[str, bytes]
    value: Any  # the JSON, or None when the value is not JSON


def _json_or_none(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # the poison includes JSON nested 5,000 deep
        return None


class Collector:
    """Reads topics from their beginning for the whole test, in one background task.

    One task owns the consumer, so the waits of many concurrent flows never poll it at
    once; it survives a broker outage because the consumer reconnects by itself.
    """

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.records: dict[str, list[Received]] = {topic: [] for topic in topics}
        self._next: dict[TopicPartition, int] = {}
        self._consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            # The poison includes 100 KB messages; fetch them without a size retry.
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="collector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=200)
            except KafkaError:
                await asyncio.sleep(0.5)  # the broker is away; the consumer reconnects
                continue
            for partition, records in batches.items():
                for record in records:
                    self.records[record.topic].append(
                        Received(
                            topic=record.topic,
                            partition=record.partition,
                            offset=record.offset,
                            key=record.key,
                            raw=record.value,
                            headers=dict(record.headers),
                            value=_json_or_none(record.value),
                        )
                    )
                    self._next[partition] = record.offset + 1

    async def wait(self, check: Callable[[], bool], *, within: float, what: str) -> None:
        try:
            async with asyncio.timeout(within):
                while not check():
                    if self._task is not None and self._task.done():
                        self._task.result()  # the reader failed: say why, do not wait on
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"not within {within:.0f}s: {what}") from None

    async def drain(self, *, within: float = 120) -> None:
        """Wait until everything on the topics now has been read: afterwards, a record that is
        missing is missing, not late."""
        # The collector's own consumer: it has every partition of the topics assigned.
        partitions = sorted(self._consumer.assignment())
        assert {tp.topic for tp in partitions} == set(self.topics)
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(partitions)
        await self.wait(
            lambda: all(self._next.get(tp, 0) >= end for tp, end in ends.items()),
            within=within,
            what="reading every topic to its end",
        )

    def of(self, topic: str) -> list[Received]:
        return self.records[topic]


@asynccontextmanager
async def collecting(bootstrap: str, *topics: str) -> AsyncIterator[Collector]:
    collector = Collector(bootstrap, *topics)
    await collector.start()
    try:
        yield collector
    finally:
        await collector.stop()


async def until(condition: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    try:
        async with asyncio.timeout(within):
            while not await condition():
                await asyncio.sleep(0.25)
    except TimeoutError:
        raise AssertionError(f"not within {within:.0f}s: {what}") from None


async def probe_status(http: httpx.AsyncClient, url: str) -> int:
    try:
        return (await http.get(url, timeout=10)).status_code
    except httpx.TransportError:
        return 0


# 1. Broker outage under load.

PUBLISH_TIMEOUT = 3.0
REPLY_WAIT = 3.0
# What a loaded two-core machine may add to the product's own bound (publish + reply wait).
MARGIN = 4.0
WAIT_LIMIT = PUBLISH_TIMEOUT + REPLY_WAIT + MARGIN
OUTAGE_SECONDS = 10.0
RECOVERY_LIMIT = 30.0
SLOTS = 5  # flows in flight at once
FLOWS_BEFORE_OUTAGE = 8
FLOWS_AFTER_RECOVERY = 4


@dataclass
class Exchange:
    """One HTTP request and its answer, as the load saw it."""

    flow: int
    step: str
    retry: bool
    started: float
    ended: float
    status: int
    code: str | None
    retry_after: str | None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class Flow:
    """One customer: register a device, maybe sign wrongly once, then sign the OTP.

    Each step's request is fixed the first time it is sent, so a step parked by a 503 is
    retried with exactly the same request (the same signature bytes, the same
    Idempotency-Key and body).
    """

    number: int
    run: str
    wrong_first: bool
    key: DeviceKey = field(default_factory=DeviceKey)
    impostor: DeviceKey = field(default_factory=DeviceKey)
    step: str = "register"
    challenge_id: str | None = None
    bodies: dict[str, bytes] = field(default_factory=dict)
    answers: dict[str, Exchange] = field(default_factory=dict)
    parked: Exchange | None = None
    unexpected: list[str] = field(default_factory=list)

    @property
    def idempotency_key(self) -> str:
        return f"outage-{self.run}-{self.number}"

    @property
    def done(self) -> bool:
        return self.step == "done"


class Load:
    """Drives flows through the in-process API and records every exchange."""

    def __init__(
        self, client: httpx.AsyncClient, headers: dict[str, str], otps: Collector, otp_topic: str
    ) -> None:
        self.client = client
        self.headers = headers
        self.otps = otps
        self.otp_topic = otp_topic
        self.run = uuid.uuid4().hex[:8]
        self.flows: list[Flow] = []
        self.exchanges: list[Exchange] = []
        self.stopping = False

    def new_flow(self) -> Flow:
        flow = Flow(number=len(self.flows), run=self.run, wrong_first=len(self.flows) % 3 == 0)
        self.flows.append(flow)
        return flow

    def completed(self, *, started_after: float = 0.0) -> int:
        return sum(1 for f in self.flows if f.done and f.answers["sign"].started >= started_after)

    async def otp_of(self, challenge_id: str) -> str:
        def found() -> list[Received]:
            return [
                r
                for r in self.otps.of(self.otp_topic)
                if r.value and r.value.get("challenge_id") == challenge_id
            ]

        # Generous: an OTP published just before the outage is read only after it.
        await self.otps.wait(lambda: bool(found()), within=150, what=f"OTP of {challenge_id}")
        otp: str = found()[0].value["otp"]
        return otp

    async def _send(self, flow: Flow, retry: bool) -> Exchange:
        step = flow.step
        body = flow.bodies[step]
        headers = {**self.headers, "Content-Type": "application/json"}
        started = time.monotonic()
        if step == "register":
            headers["Idempotency-Key"] = flow.idempotency_key
            response = await self.client.post("/v1/mfa/devices", content=body, headers=headers)
        else:
            path = f"/v1/mfa/challenges/signatures/{flow.challenge_id}"
            response = await self.client.put(path, content=body, headers=headers)
        ended = time.monotonic()
        code: str | None = None
        if response.status_code >= 400:
            payload = response.json()
            code = payload["code"] if "code" in payload else payload["errors"][0]["code"]
        exchange = Exchange(
            flow=flow.number,
            step=step,
            retry=retry,
            started=started,
            ended=ended,
            status=response.status_code,
            code=code,
            retry_after=response.headers.get("Retry-After"),
        )
        self.exchanges.append(exchange)
        if response.status_code == 202:
            flow.challenge_id = response.json()["challenge"]["id"]
        return exchange

    async def advance(self, flow: Flow) -> None:
        """Run ``flow`` until it is done, parked by a 503, or off the expected path."""
        retry = flow.parked is not None
        flow.parked = None
        while not flow.done:
            if flow.step not in flow.bodies:
                flow.bodies[flow.step] = await self._body(flow)
            exchange = await self._send(flow, retry)
            retry = False
            if exchange.status == 503:
                flow.parked = exchange
                return
            expected = {
                "register": (202, None),
                "wrong": (403, "invalid_signature"),
                "sign": (204, None),
            }[flow.step]
            if (exchange.status, exchange.code) != expected:
                flow.unexpected.append(f"{flow.step}: {exchange.status} {exchange.code}")
                return
            flow.answers[flow.step] = exchange
            flow.step = {
                "register": "wrong" if flow.wrong_first else "sign",
                "wrong": "sign",
                "sign": "done",
            }[flow.step]

    async def _body(self, flow: Flow) -> bytes:
        if flow.step == "register":
            registration = {
                "person_id": f"person-{self.run}-{flow.number}",
                "key_type": "ecdsa-p256",
                "key": flow.key.public_hex,
                "language": "de",
            }
            return json.dumps(registration).encode()
        assert flow.challenge_id is not None
        otp = await self.otp_of(flow.challenge_id)
        signer = flow.impostor if flow.step == "wrong" else flow.key
        return json.dumps({"signature": signer.sign(otp)}).encode()

    async def slot(self) -> None:
        """One client: new flows one after the other until told to stop."""
        while not self.stopping:
            flow = self.new_flow()
            await self.advance(flow)
            if flow.parked is not None:
                # A client honours Retry-After; the parked step is retried after recovery.
                await asyncio.sleep(float(flow.parked.retry_after or 1))


@pytest.mark.slow
async def test_kafka_outage_under_load_answers_503_recovers_and_loses_nothing(
    own_broker: LocalKafka, database_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(
        own_broker.bootstrap_servers,
        tmp_path / "store.db",
        database_url=database_url,
        worker_http_port=0,
    )
    tokens = Tokens(tmp_path / "keys")
    api = api_settings(
        settings,
        tokens,
        reply_wait_seconds=REPLY_WAIT,
        publish_timeout_seconds=PUBLISH_TIMEOUT,
        kafka_connect_timeout_seconds=2.0,
    )
    async with (
        running_worker(settings) as worker,
        api_client(api) as client,
        httpx.AsyncClient() as http,
        collecting(
            own_broker.bootstrap_servers, settings.events_topic, settings.otp_deliveries_topic
        ) as seen,
    ):
        worker_ready = f"http://127.0.0.1:{worker.probes.port}/readyz"
        load = Load(client, tokens.headers(), seen, settings.otp_deliveries_topic)
        slots = [asyncio.create_task(load.slot(), name=f"slot-{n}") for n in range(SLOTS)]
        try:
            await seen.wait(
                lambda: load.completed() >= FLOWS_BEFORE_OUTAGE,
                within=120,
                what=f"{FLOWS_BEFORE_OUTAGE} flows before the outage",
            )

            stop_called = time.monotonic()
            await asyncio.to_thread(own_broker.stop)
            stopped = time.monotonic()
            await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, under the load
            restart_called = time.monotonic()
            await asyncio.to_thread(own_broker.restart)
            restarted = time.monotonic()

            ready: dict[str, float] = {}

            async def api_ready() -> bool:
                if (await client.get("/readyz")).status_code == 200:
                    ready.setdefault("api", time.monotonic() - restarted)
                    return True
                return False

            async def worker_is_ready() -> bool:
                if await probe_status(http, worker_ready) == 200:
                    ready.setdefault("worker", time.monotonic() - restarted)
                    return True
                return False

            def first_204_after_restart() -> float | None:
                ends = [
                    e.ended for e in load.exchanges if e.status == 204 and e.started >= restarted
                ]
                return min(ends) - restarted if ends else None

            # Measured up to twice the limit so a slow recovery shows its duration.
            try:
                await asyncio.gather(
                    until(api_ready, within=2 * RECOVERY_LIMIT, what="API ready again"),
                    until(worker_is_ready, within=2 * RECOVERY_LIMIT, what="worker ready again"),
                    seen.wait(
                        lambda: first_204_after_restart() is not None,
                        within=2 * RECOVERY_LIMIT,
                        what="a 204 after Kafka returned",
                    ),
                )
            except AssertionError as failure:
                # What the API answered since Kafka came back, and what the probes say now.
                since = Counter(
                    (e.status, e.code) for e in load.exchanges if e.started >= restarted
                )
                probes = (
                    (await client.get("/readyz")).status_code,
                    await probe_status(http, worker_ready),
                )
                raise AssertionError(
                    f"{failure}; answers since Kafka returned: {dict(since)};"
                    f" readyz now (api, worker): {probes}; ready after: {ready}"
                ) from None
            end_to_end = first_204_after_restart()
            assert end_to_end is not None
            await seen.wait(
                lambda: load.completed(started_after=restarted) >= FLOWS_AFTER_RECOVERY,
                within=120,
                what=f"{FLOWS_AFTER_RECOVERY} flows after recovery",
            )
        finally:
            load.stopping = True
            await asyncio.gather(*slots)

        # The same requests again, as a client retries its 503s; Kafka is back.
        parked = [flow for flow in load.flows if flow.parked is not None]
        for _ in range(5):
            waiting = [flow for flow in load.flows if flow.parked is not None]
            if not waiting:
                break
            await asyncio.gather(*(load.advance(flow) for flow in waiting))
            await asyncio.sleep(1)  # Retry-After, should a retry still meet a 503

        # What the worker stored, as the API reads it.
        states: dict[str, str] = {}
        for flow in load.flows:
            if flow.challenge_id is not None:
                view = await client.get(
                    f"/v1/mfa/challenges/signatures/{flow.challenge_id}", headers=tokens.headers()
                )
                assert view.status_code == 200, view.text
                states[flow.challenge_id] = view.json()["status"]
        await seen.drain()

    exchanges = load.exchanges
    during = [e for e in exchanges if e.started >= stopped and e.ended <= restart_called]
    outage_503s = [e for e in exchanges if e.status == 503 and e.started >= stop_called]
    pending = [e for e in exchanges if e.code == "verification_pending"]
    # Lost: a request Kafka accepted (503 verification_pending) whose step never reached
    # its terminal outcome, even when retried.
    lost = [e for e in pending if e.step not in load.flows[e.flow].answers]
    print(
        f"\noutage: requests={len(exchanges)} flows={len(load.flows)}"
        f" outage_seconds={restarted - stop_called:.1f}"
        f" (stop {stopped - stop_called:.1f}s + down {OUTAGE_SECONDS:.0f}s"
        f" + restart {restarted - restart_called:.1f}s)"
        f" 503s_during_outage={len([e for e in during if e.status == 503])}/{len(during)}"
        f" 503s_total={len([e for e in exchanges if e.status == 503])}"
        f" (verification_pending={len(pending)})"
        f" max_503_latency={max((e.seconds for e in outage_503s), default=0.0):.2f}s"
        f" max_latency={max(e.seconds for e in exchanges):.2f}s"
        f" recovery_seconds: api_ready={ready['api']:.1f} worker_ready={ready['worker']:.1f}"
        f" first_204={end_to_end:.1f}"
        f" parked_and_retried={len(parked)} lost={len(lost)}"
    )

    # Every answer within its wait limit: never a hang, whatever Kafka's state.
    slowest = max(exchanges, key=lambda e: e.seconds)
    assert slowest.seconds <= WAIT_LIMIT, slowest
    for exchange in exchanges:
        if exchange.status == 503:
            assert exchange.code in {"service_unavailable", "verification_pending"}, exchange
            assert exchange.retry_after is not None, exchange
    # During the outage (Kafka's process gone for the whole request): 503, and nothing else.
    assert during, "no request ran during the outage"
    assert all(e.status == 503 for e in during), [e for e in during if e.status != 503]
    # Recovery, by themselves.
    assert ready["api"] <= RECOVERY_LIMIT, ready
    assert ready["worker"] <= RECOVERY_LIMIT, ready
    assert end_to_end <= RECOVERY_LIMIT, end_to_end

    # Nothing accepted is lost: every flow reached its true terminal outcome after retrying
    # its 503s with the same request.
    assert not [(f.number, f.unexpected) for f in load.flows if f.unexpected]
    assert not [(f.number, f.step, f.parked) for f in load.flows if not f.done]
    assert not lost

    events = seen.of(settings.events_topic)
    otps = seen.of(settings.otp_deliveries_topic)
    for flow in load.flows:
        assert flow.challenge_id is not None
        cid = flow.challenge_id
        mine = [e.value for e in events if e.value and e.value["subject"] == cid]
        # Registered (202): exactly one OTP, and its challenge_created event (the same event
        # again at most, with its id, if a retry republished it).
        assert len([o for o in otps if o.value and o.value["challenge_id"] == cid]) == 1, cid
        assert len({e["id"] for e in mine if e["type"] == CREATED}) == 1, cid
        # Verified exactly once, with its event, by the signature that got the 204.
        verified = {e["id"]: e for e in mine if e["type"] == VERIFIED}
        assert len(verified) == 1, (cid, mine)
        [event] = verified.values()
        assert event["data"]["signature"] == json.loads(flow.bodies["sign"])["signature"]
        assert states[cid] == "verified"
        rejected = {e["id"] for e in mine if e["type"] == REJECTED}
        assert len(rejected) == (1 if flow.wrong_first else 0), (cid, mine)
    # No 204 but for a flow's own correct signature, whose verification event exists (above).
    assert all(e.step == "sign" for e in exchanges if e.status == 204)


# 2. Poison on the commands topic.

POISON_COUNT = 1000
# Per partition, at most this many poison commands follow each other: the worker's run
# counter is per process, across its partitions, so a run it sees is at most the sum of one
# run per partition, which must stay below max_consecutive_dead_letters.
RUN_CAP = 40
PARTITIONS = 2


def _command(kind: str, marker: str, public_hex: str, **changes: Any) -> dict[str, Any]:
    """A well-formed command as JSON, changed by ``changes`` (a value of ``...`` removes the
    field). ``marker`` makes every poison message's bytes unique."""
    base: dict[str, Any] = {
        "type": kind,
        "command_id": str(uuid.uuid4()),
        "request_id": marker,
        "client_id": "bank-1",
        "reply_to": "poison-test",
        "issued_at": datetime.now(UTC).isoformat(),
        "challenge_id": str(uuid.uuid4()),
    }
    if kind == "register_device":
        base.update(
            device_id=str(uuid.uuid4()),
            key_id=str(uuid.uuid4()),
            registration={"person_id": "person-1", "key_type": "ecdsa-p256", "key": public_hex},
        )
    else:
        base["signature"] = "3045022100" + "ab" * 32 + "0220" + "cd" * 32
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
    good = "3045022100" + "ab" * 32 + "0220" + "cd" * 32

    def verify(marker: str, **changes: Any) -> bytes:
        return json.dumps(_command("verify_signature", marker, public_hex, **changes)).encode()

    def register(marker: str, **changes: Any) -> bytes:
        return json.dumps(_command("register_device", marker, public_hex, **changes)).encode()

    kinds: list[Callable[[int, str], bytes]] = [
        lambda i, m: f"not json at all {m}".encode(),
        lambda i, m: b"\xff\xfe\x00\x81 binary " + m.encode(),
        lambda i, m: verify(m)[: 40 + i % 60],  # truncated JSON
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
    return {
        "type": "register_device",
        "command_id": str(uuid.uuid4()),
        "request_id": f"req-{uuid.uuid4().hex[:8]}",
        "client_id": "bank-1",
        "reply_to": "poison-test",
        "issued_at": datetime.now(UTC).isoformat(),
        "device_id": str(uuid.uuid4()),
        "key_id": str(uuid.uuid4()),
        "challenge_id": str(challenge_id),
        "registration": {"person_id": person, "key_type": "ecdsa-p256", "key": key.public_hex},
    }


def valid_verify(challenge_id: uuid.UUID, signature: str) -> dict[str, Any]:
    return {
        "type": "verify_signature",
        "command_id": str(uuid.uuid4()),
        "request_id": f"req-{uuid.uuid4().hex[:8]}",
        "client_id": "bank-1",
        "reply_to": "poison-test",
        "issued_at": datetime.now(UTC).isoformat(),
        "challenge_id": str(challenge_id),
        "signature": signature,
    }


@pytest.mark.slow
async def test_poison_interleaved_with_work_is_dead_lettered_once_and_the_work_done(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(
        kafka_bootstrap,
        tmp_path / "store.db",
        database_url=database_url,
        topic_partitions=PARTITIONS,
    )
    assert settings.max_consecutive_dead_letters > RUN_CAP * PARTITIONS
    rng = random.Random(20240611)  # the same interleaving on every run
    devices_per_partition = 60
    keys = {p: [DeviceKey() for _ in range(devices_per_partition)] for p in range(PARTITIONS)}
    challenges = {
        p: [uuid.uuid4() for _ in range(devices_per_partition)] for p in range(PARTITIONS)
    }
    payloads = poison(POISON_COUNT, DeviceKey().public_hex)
    for payload in payloads:
        # Each is poison as the worker judges it, not just as this test means it.
        with pytest.raises(ValidationError):
            COMMAND_ADAPTER.validate_json(payload)
    # Half the poison with the registrations, half with the signatures; split over the
    # partitions; some with a key, some without (the DLQ keeps the key as received).
    quarter = POISON_COUNT // (2 * PARTITIONS)
    chunks = [payloads[n * quarter : (n + 1) * quarter] for n in range(2 * PARTITIONS)]

    def poison_key(raw: bytes) -> bytes | None:
        return None if len(raw) % 3 == 0 else f"poison-key-{len(raw)}".encode()

    replies_expected: dict[str, tuple[str, str | None]] = {}  # command id -> outcome, reason
    event_expected: dict[str, tuple[str, str]] = {}  # request id -> challenge id, event type

    async with (
        running_worker(settings),
        collecting(
            kafka_bootstrap,
            settings.replies_topic,
            settings.events_topic,
            settings.otp_deliveries_topic,
            settings.dead_letter_topic,
        ) as seen,
        raw_producer(kafka_bootstrap) as producer,
    ):
        commands = Commands(producer, settings.commands_topic)

        def plan(
            chunk: list[bytes], valid: list[dict[str, Any]]
        ) -> list[tuple[bool, bytes, bytes | None]]:
            encoded = [json.dumps(command).encode() for command in valid]
            return [
                (is_valid, raw, raw_key(is_valid, raw))
                for is_valid, raw in interleave(encoded, chunk, rng, RUN_CAP)
            ]

        def raw_key(is_valid: bool, raw: bytes) -> bytes | None:
            if is_valid:
                return str(json.loads(raw)["challenge_id"]).encode()
            return poison_key(raw)

        # Phase 1: registrations among poison.
        registrations: dict[int, list[dict[str, Any]]] = {}
        for p in range(PARTITIONS):
            registrations[p] = [
                valid_register(cid, key, f"person-{p}-{n}")
                for n, (cid, key) in enumerate(zip(challenges[p], keys[p], strict=True))
            ]
            for command in registrations[p]:
                replies_expected[command["command_id"]] = ("ok", None)
                event_expected[command["request_id"]] = (command["challenge_id"], CREATED)
        await commands.publish({p: plan(chunks[p], registrations[p]) for p in range(PARTITIONS)})

        def otp_of() -> dict[str, str]:
            return {
                r.value["challenge_id"]: r.value["otp"]
                for r in seen.of(settings.otp_deliveries_topic)
                if r.value
            }

        await seen.wait(
            lambda: len(otp_of()) >= PARTITIONS * devices_per_partition,
            within=180,
            what="an OTP for every registration",
        )
        otps = otp_of()

        # Phase 2: signatures among poison, one in six wrong.
        verifications: dict[int, list[dict[str, Any]]] = {}
        for p in range(PARTITIONS):
            verifications[p] = []
            for n, (cid, key) in enumerate(zip(challenges[p], keys[p], strict=True)):
                wrong = n % 6 == 0
                signer = DeviceKey() if wrong else key
                command = valid_verify(cid, signer.sign(otps[str(cid)]))
                verifications[p].append(command)
                replies_expected[command["command_id"]] = (
                    ("rejected", "invalid_signature") if wrong else ("ok", None)
                )
                event_expected[command["request_id"]] = (str(cid), REJECTED if wrong else VERIFIED)
        await commands.publish(
            {p: plan(chunks[PARTITIONS + p], verifications[p]) for p in range(PARTITIONS)}
        )

        # The worker never stopped: a fresh command on each partition, after all the
        # poison, is answered (and, partitions being in order, everything before it is done).
        fresh = {
            p: valid_register(uuid.uuid4(), DeviceKey(), f"fresh-{p}") for p in range(PARTITIONS)
        }
        for command in fresh.values():
            replies_expected[command["command_id"]] = ("ok", None)
            event_expected[command["request_id"]] = (command["challenge_id"], CREATED)
        await commands.publish(
            {
                p: [(True, json.dumps(c).encode(), c["challenge_id"].encode())]
                for p, c in fresh.items()
            }
        )

        def replied() -> set[str]:
            return {r.value["command_id"] for r in seen.of(settings.replies_topic) if r.value}

        fresh_ids = {c["command_id"] for c in fresh.values()}
        await seen.wait(
            lambda: fresh_ids <= replied(), within=180, what="the replies to fresh commands"
        )
        await seen.drain()

    sent_poison = [s for s in commands.sent if not s.valid]
    assert len(sent_poison) == POISON_COUNT
    assert len([s for s in commands.sent if s.valid]) == len(replies_expected)

    # Every poison command on the DLQ exactly once: its bytes, key, reason and source.
    dead = seen.of(settings.dead_letter_topic)
    by_raw: dict[bytes | None, list[Received]] = {}
    for record in dead:
        by_raw.setdefault(record.raw, []).append(record)
    assert len(dead) == POISON_COUNT
    for sent in sent_poison:
        [record] = by_raw[sent.raw]
        assert record.key == sent.key
        reason = record.headers[DLQ_REASON_HEADER].decode()
        assert reason
        assert "ab" * 100 not in reason
        assert "p" * 1000 not in reason
        source = record.headers[DLQ_SOURCE_HEADER].decode()
        assert source == f"{settings.commands_topic}/{sent.partition}/{sent.offset}"

    # Every valid command processed: its reply, with the true outcome, and its event.
    replies: dict[str, list[dict[str, Any]]] = {}
    for record in seen.of(settings.replies_topic):
        replies.setdefault(record.value["command_id"], []).append(record.value)
    for command_id, (outcome, why) in replies_expected.items():
        assert command_id in replies, command_id
        assert {(r["outcome"], r["reason"]) for r in replies[command_id]} == {(outcome, why)}
    events: dict[str, list[dict[str, Any]]] = {}
    for record in seen.of(settings.events_topic):
        events.setdefault(record.value["data"]["request_id"], []).append(record.value)
    for request_id, (challenge_id, kind) in event_expected.items():
        assert request_id in events, request_id
        assert {(e["subject"], e["type"]) for e in events[request_id]} == {(challenge_id, kind)}
    otp_records = seen.of(settings.otp_deliveries_topic)
    assert len({r.value["challenge_id"] for r in otp_records}) == len(otp_records)

    print(
        f"\npoison: {POISON_COUNT} poison and {len(replies_expected)} valid commands on"
        f" {PARTITIONS} partitions (runs of at most {RUN_CAP} per partition):"
        f" {len(dead)} dead-lettered, {len(replies)} replies,"
        f" {len(seen.of(settings.events_topic))} events"
    )


async def test_one_poison_command_past_the_limit_stops_dead_lettering(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    settings = worker_settings(
        kafka_bootstrap, tmp_path / "store.db", database_url=database_url, topic_partitions=1
    )
    limit = settings.max_consecutive_dead_letters
    payloads = [f"poison in a row #{n}".encode() for n in range(limit + 1)]
    after = valid_verify(uuid.uuid4(), "3045022100" + "ab" * 32 + "0220" + "cd" * 32)
    before = dead_lettered_count()
    async with (
        running_worker(settings),
        collecting(kafka_bootstrap, settings.dead_letter_topic, settings.replies_topic) as seen,
        raw_producer(kafka_bootstrap) as producer,
    ):
        commands = Commands(producer, settings.commands_topic)
        in_a_row: list[tuple[bool, bytes, bytes | None]] = [(False, raw, None) for raw in payloads]
        in_a_row.append((True, json.dumps(after).encode(), None))
        await commands.publish({0: in_a_row})
        # Counted before each try: past ``limit`` the worker is trying the one past the
        # limit again and again, refusing it each time.
        await seen.wait(
            lambda: dead_lettered_count() - before >= limit + 3,
            within=120,
            what="the worker reaching the command past the limit",
        )
        await seen.drain()
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(settings.consumer_group)
        finally:
            await admin.close()

    dead = seen.of(settings.dead_letter_topic)
    assert [record.raw for record in dead] == payloads[:limit]
    past_limit = commands.sent[limit]
    assert past_limit.raw == payloads[limit]
    # Not committed: a restarted worker begins with it (and an operator sees the lag).
    [position] = committed.values()
    assert position.offset == past_limit.offset
    # Nothing behind it on the partition was processed.
    assert not [
        r
        for r in seen.of(settings.replies_topic)
        if r.value and r.value["command_id"] == after["command_id"]
    ]
