"""The load of the fault suite: a bank's app that retries every 503 until it gets a real
answer, registering devices, reading OTPs as a phone would get them, and signing.

Typical use::

    async with OtpBook.reading(bootstrap, settings.otp_deliveries_topic) as otps, \\
            httpx.AsyncClient(timeout=60) as http:
        driver = LoadDriver(AppClient(http, urls, tokens.headers()), otps)
        await asyncio.gather(driver.run(min_requests=500), inject_faults(driver))
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from schemas.challenges import MAX_FAILED_ATTEMPTS
from tests.support.worker import DeviceKey

DEVICES = "/v1/mfa/devices"
SIGNATURES = "/v1/mfa/challenges/signatures"

VERIFIED = "mfa.device_binding.signature_verified"
REJECTED = "mfa.device_binding.signature_rejected"
CREATED = "mfa.device_binding.challenge_created"

# How long one logical request may keep getting 503s before the client gives up on it (it
# is then counted as lost, which fails the test).
GIVE_UP_AFTER = 300.0


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
