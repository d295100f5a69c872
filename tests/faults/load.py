"""Shared machinery of the fault suite: the product's real processes, a load that behaves like a
bank's app (it retries every 503 until it gets a real answer), and the guarantees of SPEC §3-6
checked afterwards by counting, against the worker's database and the topics themselves.

Typical use::

    with Fleet(tmp_path) as fleet:
        urls = await start_stack(fleet, settings, tokens, apis=2, workers=2)
        async with OtpBook.reading(bootstrap, settings.otp_deliveries_topic) as otps, \
                httpx.AsyncClient(timeout=60) as http:
            driver = LoadDriver(AppClient(http, urls, tokens.headers()), otps)
            await asyncio.gather(driver.run(min_requests=500), inject_faults(driver))
        await wait_until_drained(bootstrap, settings.consumer_group, settings.commands_topic)
        report = check_invariants(driver.calls, await read_store(url), await read_topic(...),
                                  await read_topic(...otp topic...))
        assert report.violations == []

Nothing here measures time to decide a result: every wait is for a condition (a reply, a
group being stable, offsets being committed), bounded only so a broken run ends.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.challenges import MAX_FAILED_ATTEMPTS
from storage.engine import create_engine
from tests.conftest import REPO_ROOT
from tests.integration.http_stack import Tokens
from tests.integration.stack import DeviceKey, worker_environment
from worker.settings import WorkerSettings
from worker.tables import AttemptRow, ChallengeRow, DeviceRow, RefusalRow

DEVICES = "/v1/mfa/devices"
SIGNATURES = "/v1/mfa/challenges/signatures"

VERIFIED = "mfa.device_binding.signature_verified"
REJECTED = "mfa.device_binding.signature_rejected"
CREATED = "mfa.device_binding.challenge_created"

# Generous on purpose: the machine is shared, and these bound only a run that is broken.
READY_TIMEOUT = 180.0
GROUP_TIMEOUT = 240.0
DRAIN_TIMEOUT = 300.0
# How long one logical request may keep getting 503s before the client gives up on it (it
# is then counted as lost, which fails the test).
GIVE_UP_AFTER = 300.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# Processes


class Fleet:
    """The test's API and worker processes, each under a name that can be killed, stopped and
    started again; every incarnation logs to ``<log_dir>/<name>.<n>.log``.

    On exit every process still running gets SIGTERM, then SIGKILL after 30 s.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        self._incarnations: Counter[str] = Counter()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        """Start ``python <args>`` with ``env`` added to this process's environment."""
        self._commands[name] = (args, env)
        self._spawn(name)

    def restart(self, name: str) -> None:
        """Start ``name`` again with its first command, as a supervisor would after a crash."""
        self._spawn(name)

    def kill(self, name: str) -> None:
        """SIGKILL: no drain, no offset commit, no goodbye to the group."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def terminate(self, name: str, timeout: float = 120) -> int:
        """SIGTERM and wait for the process to finish draining; its exit code."""
        process = self.processes[name]
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=timeout)

    def logs(self, name: str) -> str:
        return "\n".join(
            path.read_text(errors="replace") for path in sorted(self.log_dir.glob(f"{name}.*.log"))
        )

    def count_in_logs(self, prefix: str, text: str) -> int:
        """Lines containing ``text`` in the logs of every process whose name starts with
        ``prefix`` (all incarnations): e.g. commands a worker received."""
        return sum(
            line.count(text)
            for path in self.log_dir.glob(f"{prefix}*.log")
            for line in path.read_text(errors="replace").splitlines()
        )

    def stop_all(self) -> None:
        running = [p for p in self.processes.values() if p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _spawn(self, name: str) -> None:
        args, env = self._commands[name]
        if (previous := self.processes.get(name)) is not None and previous.poll() is None:
            raise RuntimeError(f"{name} is still running")
        self._incarnations[name] += 1
        path = self.log_dir / f"{name}.{self._incarnations[name]}.log"
        with path.open("wb") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, *args],
                env={**os.environ, **env},
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )


def api_environment(
    settings: WorkerSettings, tokens: Tokens, *, port: int, reply_wait_seconds: float
) -> dict[str, str]:
    """``python -m api`` on the workers' topics. A short reply wait makes a stalled partition
    answer 503 ``verification_pending``, which the load then retries."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "AUTH_JWKS_FILE": str(tokens.jwks_file),
        "AUTH_ISSUER": tokens.devkeys.DEFAULT_ISSUER,
        "AUTH_AUDIENCE": tokens.devkeys.DEFAULT_AUDIENCE,
        "COMMANDS_TOPIC": settings.commands_topic,
        "REPLIES_TOPIC": settings.replies_topic,
        "REPLY_WAIT_SECONDS": str(reply_wait_seconds),
        "API_PORT": str(port),
    }


async def start_stack(
    fleet: Fleet,
    settings: WorkerSettings,
    tokens: Tokens,
    *,
    apis: int,
    workers: int,
    reply_wait_seconds: float = 3.0,
    worker_env: dict[str, str] | None = None,
) -> list[str]:
    """Start ``workers`` worker processes (``worker-0``...) and ``apis`` API processes
    (``api-0``...); return the API URLs once every API is ready and every worker's consumers
    are in the group."""
    environment = {**worker_environment(settings), **(worker_env or {})}
    for number in range(workers):
        fleet.start(f"worker-{number}", ["-m", "worker"], environment)
    urls = []
    for number in range(apis):
        port = free_port()
        env = api_environment(settings, tokens, port=port, reply_wait_seconds=reply_wait_seconds)
        fleet.start(f"api-{number}", ["-m", "api"], env)
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        await wait_until_ready(url)
    # One group member per worker process.
    await wait_for_group(settings.kafka_bootstrap_servers, settings.consumer_group, workers)
    return urls


async def wait_until_ready(url: str, within: float = READY_TIMEOUT) -> None:
    async with httpx.AsyncClient() as http, asyncio.timeout(within):
        while True:
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)


async def wait_for_group(
    bootstrap: str,
    group: str,
    members: int,
    *,
    known: frozenset[str] = frozenset(),
    newcomers: int = 0,
    within: float = GROUP_TIMEOUT,
) -> frozenset[str]:
    """Until the group is stable (every partition assigned) with exactly ``members`` members,
    at least ``newcomers`` of them not in ``known``; the members' ids.

    A killed member stays in the group until its session times out, so a count alone could
    be met by the survivors and the dead before the replacement even joined: ``known`` (the
    ids before the fault) and ``newcomers`` make it wait for the group that replaced it.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        async with asyncio.timeout(within):
            while True:
                try:
                    [description] = await admin.describe_consumer_groups([group])
                except KafkaError:
                    # The coordinator may be loading or moving while members come and go.
                    await asyncio.sleep(0.3)
                    continue
                _error, _group, state, _type, _protocol, found = description.groups[0]
                ids = frozenset(member[0] for member in found)
                if state == "Stable" and len(ids) == members and len(ids - known) >= newcomers:
                    return ids
                await asyncio.sleep(0.3)
    finally:
        await admin.close()


async def wait_until_drained(
    bootstrap: str, group: str, topic: str, within: float = DRAIN_TIMEOUT
) -> None:
    """Until the group has committed every command on ``topic``.

    A worker commits a command only after its event and reply were acknowledged (SPEC §6), so
    afterwards the events topic holds every event the load caused: reading it is complete.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await offsets.start()
    try:
        partitions = await _partitions(admin, topic)
        async with asyncio.timeout(within):
            while True:
                ends = await offsets.end_offsets(partitions)
                committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
                behind = [
                    p
                    for p in partitions
                    if ends[p] > 0 and (committed.get(p) is None or committed[p].offset < ends[p])
                ]
                if not behind:
                    return
                await asyncio.sleep(0.5)
    finally:
        await offsets.stop()
        await admin.close()


async def _partitions(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
    [description] = await admin.describe_topics([topic])
    return sorted(TopicPartition(topic, p["partition"]) for p in description["partitions"])


# Topics


@dataclass(frozen=True)
class TopicRecord:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None

    def json(self) -> Any:
        """The value as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.value) if self.value is not None else None
        except ValueError:
            return None


async def read_topic(
    bootstrap: str, topic: str, within: float = DRAIN_TIMEOUT
) -> list[TopicRecord]:
    """Every record on ``topic`` up to its end offsets as they are now, partition by partition.

    Reading to the end offsets, rather than for a while, makes the result complete.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await admin.start()
    await consumer.start()
    records: list[TopicRecord] = []
    try:
        partitions = await _partitions(admin, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        async with asyncio.timeout(within):
            while [p for p in partitions if await consumer.position(p) < ends[p]]:
                batches = await consumer.getmany(timeout_ms=500)
                for partition, batch in batches.items():
                    records.extend(
                        TopicRecord(partition.partition, r.offset, r.timestamp, r.key, r.value)
                        for r in batch
                        if r.offset < ends[partition]
                    )
    finally:
        await consumer.stop()
        await admin.close()
    return records


class OtpBook:
    """Every OTP delivered on the OTP topic, by challenge id, read in the background: what the
    customer's phone would receive by SMS."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self._otps: dict[str, list[str]] = defaultdict(list)
        self._arrived = asyncio.Condition()

    @classmethod
    @asynccontextmanager
    async def reading(cls, bootstrap: str, topic: str) -> AsyncIterator[OtpBook]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        book = cls(consumer)
        task = asyncio.create_task(book._read(), name="otp-book")
        try:
            yield book
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await consumer.stop()

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            delivered = [r for batch in batches.values() for r in batch]
            if not delivered:
                continue
            async with self._arrived:
                for record in delivered:
                    value = json.loads(record.value)
                    self._otps[value["challenge_id"]].append(value["otp"])
                self._arrived.notify_all()

    def all_of(self, challenge_id: str) -> list[str]:
        return list(self._otps.get(challenge_id, []))

    async def latest(self, challenge_id: str, within: float = GIVE_UP_AFTER) -> str:
        """The newest OTP of the challenge, waiting for its first."""
        return await self._wait(challenge_id, lambda otps: bool(otps), within)

    async def newer_than(self, challenge_id: str, otp: str, within: float) -> str | None:
        """An OTP of the challenge other than ``otp`` (it was replaced), or None."""
        try:
            return await self._wait(
                challenge_id, lambda otps: bool(otps) and otps[-1] != otp, within
            )
        except TimeoutError:
            return None

    async def _wait(
        self, challenge_id: str, ready: Callable[[list[str]], bool], within: float
    ) -> str:
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: ready(self._otps.get(challenge_id, [])))
            return self._otps[challenge_id][-1]


# The bank's app


@dataclass
class Call:
    """One logical request: sent again after every 503 until it got a terminal answer."""

    label: str
    method: str
    path: str
    request_id: str
    challenge_id: str | None = None
    signature: str | None = None
    # The signature is the device key's over the challenge's latest known OTP.
    correct: bool = False
    # (status, code) the scenario expects; None when it cannot know (see Device.otp_replaced).
    expected: tuple[int, str | None] | None = None
    status: int | None = None  # None: no terminal answer before the client gave up
    code: str | None = None
    body: Any = None
    retries: Counter[str] = field(default_factory=Counter)  # by 503 code / transport error
    http_requests: int = 0
    # Something wrong with the answer that its status does not show (a different body).
    problem: str | None = None

    @property
    def retries_503(self) -> int:
        return sum(n for code, n in self.retries.items() if code != "transport")


def error_code(response: httpx.Response) -> str | None:
    """The ``code`` of either error shape (flat, or ``{errors: [...]}``)."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        code = body["errors"][0].get("code")
    else:
        code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


class AppClient:
    """Sends a call and, like the bank's app, retries it after every 503 (honouring
    ``Retry-After``) and after a connection failure, rotating over the API replicas as a load
    balancer would. A retry is the very same request: same body, same ``X-Request-ID``, same
    ``Idempotency-Key``."""

    def __init__(self, http: httpx.AsyncClient, urls: list[str], headers: dict[str, str]) -> None:
        self._http = http
        self._urls = itertools.cycle(urls)
        self._headers = headers

    async def send(self, call: Call, *, body: Any, headers: dict[str, str] | None = None) -> Call:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GIVE_UP_AFTER
        while loop.time() < deadline:
            call.http_requests += 1
            try:
                response = await self._http.request(
                    call.method,
                    f"{next(self._urls)}{call.path}",
                    json=body,
                    headers={**self._headers, "X-Request-ID": call.request_id, **(headers or {})},
                )
            except httpx.TransportError:
                call.retries["transport"] += 1
                await asyncio.sleep(1)
                continue
            if response.status_code == 503:
                call.retries[error_code(response) or "503"] += 1
                await asyncio.sleep(_retry_after(response))
                continue
            call.status, call.code = response.status_code, error_code(response)
            call.body = response.json() if response.content else None
            return call
        return call


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", "1")), 0.2), 5.0)
    except ValueError:
        return 1.0


@dataclass
class Device:
    """One customer device and the challenge that binds it, as a scenario drives it."""

    person_id: str
    key: DeviceKey = field(default_factory=DeviceKey)
    idempotency_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    challenge_id: str | None = None
    # Its OTP was replaced after the test signed it (the registration was processed again
    # before its OTP was recorded as delivered, and sent a new one): from then on the
    # scenario cannot predict answers.
    otp_replaced: bool = False


Scenario = Callable[["LoadDriver", Device], Awaitable[None]]


class LoadDriver:
    """Runs scenarios (one device each, its calls in order) on ``concurrency`` lanes at once,
    until enough calls were made; every call is kept in :attr:`calls`.

    The scenarios mix what a bank's app does: registrations (some retried with their
    ``Idempotency-Key``), correct and wrong signatures, identical retries, lock-outs, second
    signatures after success, and signatures for unknown challenges. Each expects exact answers,
    because a challenge's calls are sequential: a retry's command is processed after its
    original (same key, same partition), so retries never change the outcome.
    """

    def __init__(
        self,
        client: AppClient,
        otps: OtpBook,
        *,
        concurrency: int = 24,
        seed: int = 1,
        mix: dict[str, int] | None = None,
    ) -> None:
        self.client = client
        self.otps = otps
        self.calls: list[Call] = []
        self.devices: list[Device] = []
        self.concurrency = concurrency
        self.rng = random.Random(seed)
        self._run_id = uuid.uuid4().hex[:8]
        self._impostor = DeviceKey()
        weights = DEFAULT_MIX if mix is None else mix
        self._scenarios = [SCENARIOS[name] for name in weights]
        self._weights = list(weights.values())
        self._finish_at: int | None = None

    @property
    def answered(self) -> int:
        return sum(1 for call in self.calls if call.status is not None)

    async def reached(self, answered: int) -> None:
        """Until ``answered`` calls have their terminal answer."""
        while self.answered < answered:
            await asyncio.sleep(0.1)

    def finish_after(self, more: int) -> None:
        """Stop starting scenarios once ``more`` calls beyond those answered now are answered
        (used to keep the load going for a while after the last fault)."""
        self._finish_at = self.answered + more

    async def run(self, *, min_requests: int, wait_for_finish: bool = False) -> None:
        """Run until ``min_requests`` calls are answered (and, with ``wait_for_finish``, until
        :meth:`finish_after` was called and its count is reached). Scenarios in progress end
        normally."""

        def enough() -> bool:
            if self.answered < min_requests:
                return False
            return not wait_for_finish or (
                self._finish_at is not None and self.answered >= self._finish_at
            )

        async def lane() -> None:
            while not enough():
                [scenario] = self.rng.choices(self._scenarios, self._weights)
                device = Device(person_id=f"person-{self._run_id}-{len(self.devices)}")
                self.devices.append(device)
                await scenario(self, device)

        await asyncio.gather(*(lane() for _ in range(self.concurrency)))

    # Steps scenarios are made of

    def _call(self, label: str, method: str, path: str, **fields: Any) -> Call:
        call = Call(label, method, path, request_id=f"req-{uuid.uuid4().hex}", **fields)
        self.calls.append(call)
        return call

    async def register(self, device: Device, *, label: str = "register") -> bool:
        call = self._call(label, "POST", DEVICES, expected=(202, None))
        body = {
            "person_id": device.person_id,
            "key_type": "ecdsa-p256",
            "key": device.key.public_hex,
        }
        await self.client.send(call, body=body, headers={"Idempotency-Key": device.idempotency_key})
        if call.status != 202:
            return False
        challenge_id: str = call.body["challenge"]["id"]
        if device.challenge_id not in (None, challenge_id):
            call.problem = f"retried registration answered challenge {challenge_id}, " + (
                f"not {device.challenge_id}"
            )
        device.challenge_id = call.challenge_id = challenge_id
        return True

    async def sign(self, device: Device, *, correct: bool) -> tuple[str, str]:
        """A fresh signature (ECDSA signatures are randomised) and the OTP it signs."""
        assert device.challenge_id is not None
        otp = await self.otps.latest(device.challenge_id)
        return (device.key if correct else self._impostor).sign(otp), otp

    async def put(
        self,
        device: Device,
        label: str,
        signature: str,
        *,
        correct: bool,
        expected: tuple[int, str | None],
        otp: str | None = None,
    ) -> Call:
        call = self._call(
            label,
            "PUT",
            f"{SIGNATURES}/{device.challenge_id}",
            challenge_id=device.challenge_id,
            signature=signature,
            correct=correct,
            expected=None if device.otp_replaced else expected,
        )
        await self.client.send(call, body={"signature": signature})
        if (
            correct
            and otp is not None
            and device.challenge_id is not None
            and (call.status, call.code) == (403, "invalid_signature")
            and await self.otps.newer_than(device.challenge_id, otp, within=60) is not None
        ):
            # The OTP signed was superseded by a redelivered registration; not the verifier's
            # fault. The answer is kept (the store must agree with it) but no longer predicted.
            device.otp_replaced = True
            call.expected = None
        return call


# Scenarios: each a few calls on one device, with the answers SPEC §3-4 prescribe.


async def bind(driver: LoadDriver, device: Device) -> None:
    """Correct signature, then the same bytes again (a retry after a lost answer)."""
    if not await driver.register(device):
        return
    signature, otp = await driver.sign(device, correct=True)
    await driver.put(device, "correct", signature, correct=True, expected=(204, None), otp=otp)
    await driver.put(device, "identical_retry", signature, correct=True, expected=(204, None))


async def fail_then_bind(driver: LoadDriver, device: Device) -> None:
    """One to three wrong signatures (the last repeated identically), then the right one."""
    if not await driver.register(device):
        return
    failures = driver.rng.randint(1, 3)
    wrong = ""
    for number in range(1, failures + 1):
        wrong, _ = await driver.sign(device, correct=False)
        await driver.put(device, "wrong", wrong, correct=False, expected=(403, "invalid_signature"))
        assert number <= MAX_FAILED_ATTEMPTS
    # Not counted again: the stored outcome answers.
    await driver.put(
        device, "identical_retry", wrong, correct=False, expected=(403, "invalid_signature")
    )
    signature, otp = await driver.sign(device, correct=True)
    await driver.put(device, "correct", signature, correct=True, expected=(204, None), otp=otp)


async def lockout(driver: LoadDriver, device: Device) -> None:
    """Five wrong signatures lock the challenge; the right one is then refused."""
    if not await driver.register(device):
        return
    first = ""
    for _ in range(MAX_FAILED_ATTEMPTS):
        wrong, _ = await driver.sign(device, correct=False)
        first = first or wrong
        await driver.put(device, "wrong", wrong, correct=False, expected=(403, "invalid_signature"))
    signature, _ = await driver.sign(device, correct=True)
    await driver.put(
        device, "correct_after_lock", signature, correct=True, expected=(409, "challenge_locked")
    )
    await driver.put(
        device, "identical_retry", first, correct=False, expected=(403, "invalid_signature")
    )


async def already_verified(driver: LoadDriver, device: Device) -> None:
    """After success, another correct signature (different bytes) is refused."""
    if not await driver.register(device):
        return
    signature, otp = await driver.sign(device, correct=True)
    await driver.put(device, "correct", signature, correct=True, expected=(204, None), otp=otp)
    again, _ = await driver.sign(device, correct=True)
    await driver.put(
        device, "second_correct", again, correct=True, expected=(409, "challenge_already_verified")
    )


async def registration_retry(driver: LoadDriver, device: Device) -> None:
    """The registration sent twice under one ``Idempotency-Key`` is one device, one OTP."""
    if not await driver.register(device):
        return
    if not await driver.register(device, label="register_retry"):
        return
    signature, otp = await driver.sign(device, correct=True)
    await driver.put(device, "correct", signature, correct=True, expected=(204, None), otp=otp)


async def unknown_challenge(driver: LoadDriver, device: Device) -> None:
    """A signature for a challenge that does not exist."""
    device.challenge_id = str(uuid.uuid4())
    signature = device.key.sign("123456")
    await driver.put(device, "unknown", signature, correct=False, expected=(404, "not_found"))


SCENARIOS: dict[str, Scenario] = {
    "bind": bind,
    "fail_then_bind": fail_then_bind,
    "lockout": lockout,
    "already_verified": already_verified,
    "registration_retry": registration_retry,
    "unknown_challenge": unknown_challenge,
}
DEFAULT_MIX = {
    "bind": 3,
    "fail_then_bind": 3,
    "lockout": 1,
    "already_verified": 2,
    "registration_retry": 2,
    "unknown_challenge": 1,
}


# The store


@dataclass(frozen=True)
class StoreSnapshot:
    challenges: dict[str, ChallengeRow]
    devices: dict[str, DeviceRow]
    attempts: list[AttemptRow]
    refusals: list[RefusalRow]


async def read_store(database_url: str) -> StoreSnapshot:
    """The worker database's rows, read directly (not through the API)."""
    engine = create_engine(database_url)
    try:
        async with AsyncSession(engine) as session:
            challenges = (await session.scalars(select(ChallengeRow))).all()
            devices = (await session.scalars(select(DeviceRow))).all()
            attempts = (await session.scalars(select(AttemptRow))).all()
            refusals = (await session.scalars(select(RefusalRow))).all()
    finally:
        await engine.dispose()
    return StoreSnapshot(
        {c.id: c for c in challenges}, {d.id: d for d in devices}, list(attempts), list(refusals)
    )


# The invariants


def canonical(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal content, equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Report:
    """What :func:`check_invariants` counted; ``violations`` names every broken guarantee."""

    requests: int = 0
    http_requests: int = 0
    retries_503: int = 0
    retried_requests: int = 0
    transport_retries: int = 0
    lost: int = 0
    double_counted: int = 0
    wrongly_verified: int = 0
    otp_replaced: int = 0
    challenges: int = 0
    challenges_with_several_otps: int = 0
    # Challenge id -> OTP deliveries, for every challenge that got more than one.
    several_otps: dict[str, int] = field(default_factory=dict)
    events: int = 0
    distinct_events: int = 0
    statuses: Counter[int | None] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.violations.append(message)

    def summary(self) -> str:
        return (
            f"requests={self.requests} http_requests={self.http_requests} "
            f"503_retries={self.retries_503} (on {self.retried_requests} requests) "
            f"transport_retries={self.transport_retries} lost={self.lost} "
            f"double_counted={self.double_counted} wrongly_verified={self.wrongly_verified} "
            f"challenges={self.challenges} otp_replaced={self.otp_replaced} "
            f"several_otps={self.challenges_with_several_otps} "
            f"events={self.events} distinct_events={self.distinct_events} "
            f"statuses={dict(sorted(self.statuses.items(), key=lambda kv: str(kv[0])))}"
        )


def check_invariants(
    calls: list[Call],
    devices: list[Device],
    store: StoreSnapshot,
    events: list[TopicRecord],
    otps: list[TopicRecord],
) -> Report:
    """SPEC §3-6 under faults, by counting. Compares three independent records: what the
    clients were answered, what the worker stored, and what the events topic carries."""
    report = Report(requests=len(calls), otp_replaced=sum(d.otp_replaced for d in devices))
    _check_answers(report, calls)
    distinct = _distinct_events(report, events)
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in distinct.values():
        by_subject[str(event.get("subject"))].append(event)

    registered = {c.challenge_id for c in calls if c.status == 202 and c.challenge_id}
    report.challenges = len(registered)
    _check_challenges(report, store, by_subject, registered)
    _check_stored_events(report, store, distinct)
    _check_answers_against_store(report, calls, store, by_subject)
    _check_otps(report, otps, registered)
    return report


def _check_answers(report: Report, calls: list[Call]) -> None:
    for call in calls:
        report.http_requests += call.http_requests
        report.retries_503 += call.retries_503
        report.retried_requests += call.retries_503 > 0
        report.transport_retries += call.retries["transport"]
        report.statuses[call.status] += 1
        if call.status is None:
            report.lost += 1
            report.fail(f"{call.label} {call.request_id}: no terminal answer ({call.retries})")
        if call.problem is not None:
            report.fail(f"{call.label} {call.request_id}: {call.problem}")
        expected = call.expected
        if call.status is not None and expected not in (None, (call.status, call.code)):
            report.fail(
                f"{call.label} {call.request_id} on {call.challenge_id}: answered "
                f"{call.status} {call.code}, expected {expected}"
            )


def _distinct_events(report: Report, events: list[TopicRecord]) -> dict[str, dict[str, Any]]:
    """One event per CloudEvents id; copies of an id must be identical."""
    copies: dict[str, set[str]] = defaultdict(set)
    first: dict[str, dict[str, Any]] = {}
    for record in events:
        value = record.json()
        if not isinstance(value, dict) or not isinstance(value.get("id"), str):
            report.fail(f"event at {record.partition}/{record.offset} is not a CloudEvent")
            continue
        copies[value["id"]].add(canonical(value))
        first.setdefault(value["id"], value)
        if record.key is not None and record.key.decode() != value.get("subject"):
            report.fail(f"event {value['id']} keyed {record.key!r}, not by its challenge")
    for event_id, texts in copies.items():
        if len(texts) > 1:
            report.fail(f"event id {event_id} published with {len(texts)} different contents")
    report.events, report.distinct_events = len(events), len(first)
    return first


def _check_challenges(
    report: Report,
    store: StoreSnapshot,
    by_subject: dict[str, list[dict[str, Any]]],
    registered: set[str],
) -> None:
    attempts: dict[str, list[AttemptRow]] = defaultdict(list)
    for attempt in store.attempts:
        attempts[attempt.challenge_id].append(attempt)
    for challenge_id in registered - store.challenges.keys():
        report.lost += 1
        report.fail(f"challenge {challenge_id} answered 202 but not in the store")
    for challenge_id, challenge in store.challenges.items():
        events = by_subject.get(challenge_id, [])
        created = [e for e in events if e["type"] == CREATED]
        verified = [e for e in events if e["type"] == VERIFIED]
        counted = sorted(
            e["data"]["attempt"]
            for e in events
            if e["type"] == REJECTED
            and e["data"]["reason"] == "invalid_signature"
            and e["data"]["attempt"] is not None
        )
        rejected_rows = [a for a in attempts[challenge_id] if a.outcome == "rejected"]
        verified_rows = [a for a in attempts[challenge_id] if a.outcome == "verified"]
        failures = challenge.failed_attempts
        if len(created) != 1:
            report.fail(f"challenge {challenge_id}: {len(created)} challenge_created events")
        if failures > MAX_FAILED_ATTEMPTS or len(rejected_rows) != failures:
            report.double_counted += 1
            report.fail(
                f"challenge {challenge_id}: failed_attempts={failures}, "
                f"{len(rejected_rows)} rejected attempt rows"
            )
        if counted != list(range(1, failures + 1)):
            report.double_counted += len(counted) > failures
            report.fail(
                f"challenge {challenge_id}: failed_attempts={failures} but counted "
                f"invalid_signature events have attempts {counted}"
            )
        is_verified = challenge.status == "verified"
        if len(verified) > 1 or (len(verified) == 1) != is_verified:
            report.fail(
                f"challenge {challenge_id}: status {challenge.status} with "
                f"{len(verified)} signature_verified events"
            )
        if len(verified_rows) != int(is_verified):
            report.fail(
                f"challenge {challenge_id}: status {challenge.status} with "
                f"{len(verified_rows)} verified attempt rows"
            )
        if (challenge.status == "locked") != (failures == MAX_FAILED_ATTEMPTS):
            report.fail(f"challenge {challenge_id}: status {challenge.status}, {failures} failures")
        device = store.devices.get(challenge.device_id)
        if device is None or (device.status == "bound") != is_verified:
            report.fail(f"challenge {challenge_id}: {challenge.status}, device not matching")


def _check_stored_events(
    report: Report, store: StoreSnapshot, distinct: dict[str, dict[str, Any]]
) -> None:
    """Every stored decision's event is on the topic, exactly as stored."""
    stored = [a.event_json for a in store.attempts] + [r.event_json for r in store.refusals]
    for event_json in stored:
        event = json.loads(event_json)
        published = distinct.get(event["id"])
        if published is None:
            report.lost += 1
            report.fail(f"stored decision {event['id']} ({event['type']}) never published")
        elif canonical(published) != canonical(event):
            report.fail(f"event {event['id']} published differently from how it was stored")


def _check_answers_against_store(
    report: Report,
    calls: list[Call],
    store: StoreSnapshot,
    by_subject: dict[str, list[dict[str, Any]]],
) -> None:
    verified_signature = {
        a.challenge_id: a.signature for a in store.attempts if a.outcome == "verified"
    }
    correct = {(c.challenge_id, c.signature) for c in calls if c.correct}
    told_failed: dict[str, set[str]] = defaultdict(set)
    told_verified: set[str] = set()
    for call in calls:
        if call.method != "PUT" or call.status is None or call.challenge_id is None:
            continue
        if (call.status, call.code) == (403, "invalid_signature") and call.signature:
            told_failed[call.challenge_id].add(call.signature)
        if call.status == 204:
            told_verified.add(call.challenge_id)
            challenge = store.challenges.get(call.challenge_id)
            if (
                challenge is None
                or challenge.status != "verified"
                or verified_signature.get(call.challenge_id) != call.signature
            ):
                report.wrongly_verified += 1
                report.fail(f"204 for {call.challenge_id} not verified by that signature in store")
        # Every attempt that reached a worker has its event (an identical retry: the original).
        if not any(
            e["data"].get("signature") == call.signature
            for e in by_subject.get(call.challenge_id, [])
            if e["type"] in (VERIFIED, REJECTED)
        ):
            report.lost += 1
            report.fail(f"{call.label} {call.request_id}: answered {call.status}, no event")
    for challenge_id, challenge in store.challenges.items():
        failures = len(told_failed.get(challenge_id, ()))
        if challenge.failed_attempts > failures:
            report.double_counted += 1
            report.fail(
                f"challenge {challenge_id}: {challenge.failed_attempts} failures stored, "
                f"{failures} distinct signatures answered invalid_signature"
            )
        elif challenge.failed_attempts < failures:
            report.lost += 1
            report.fail(
                f"challenge {challenge_id}: {failures} signatures answered invalid_signature, "
                f"only {challenge.failed_attempts} stored"
            )
        if challenge_id in verified_signature:
            if (challenge_id, verified_signature[challenge_id]) not in correct:
                report.wrongly_verified += 1
                report.fail(f"challenge {challenge_id} verified by a signature that was not right")
            if challenge_id not in told_verified:
                report.fail(f"challenge {challenge_id} verified but no client was answered 204")


def _check_otps(report: Report, otps: list[TopicRecord], registered: set[str]) -> None:
    per_challenge = Counter(str(record.json()["challenge_id"]) for record in otps)
    for challenge_id in registered:
        if per_challenge[challenge_id] == 0:
            report.fail(f"challenge {challenge_id}: no OTP delivered")
    report.several_otps = {c: per_challenge[c] for c in sorted(registered) if per_challenge[c] > 1}
    report.challenges_with_several_otps = len(report.several_otps)


def longest_stall(events: list[TopicRecord], since_ms: int) -> float | None:
    """Seconds from ``since_ms`` until every partition of the events topic had an event again.

    Events carry the time the worker produced them; a partition whose worker was killed gets
    none until the group has handed it to another member, so this is how long the killed
    worker's partitions went unprocessed (the slowest partition, every partition pausing
    during the rebalance). None when some partition never had an event afterwards.
    """
    first_after: dict[int, int] = {}
    partitions = {record.partition for record in events}
    for record in events:
        if record.timestamp_ms > since_ms:
            seen = first_after.get(record.partition)
            if seen is None or record.timestamp_ms < seen:
                first_after[record.partition] = record.timestamp_ms
    if not partitions or first_after.keys() != partitions:
        return None
    return (max(first_after.values()) - since_ms) / 1000
