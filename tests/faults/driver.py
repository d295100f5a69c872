"""The load of the fault suite: a bank's app that retries every 503 until it gets a real
answer, registering devices, reading OTPs as a phone would get them, signing them, and then
signing logins with the bound devices (SPEC §8).

Typical use::

    async with OtpBook.reading(bootstrap, settings.otp_deliveries_topic) as otps, \\
            httpx.AsyncClient(timeout=60) as http:
        driver = LoadDriver(AppClient(http, urls, tokens.headers()), otps, mix=DEFAULT_MIX)
        await asyncio.gather(driver.run(min_requests=500), inject_faults(driver))

The scenarios themselves are in :mod:`tests.faults.scenarios`.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.faults.client import AppClient, Call
from tests.faults.kinds import BINDING, DEVICE, DEVICES, Kind
from tests.faults.otps import OtpBook
from tests.support.worker import DeviceKey


@dataclass
class Device:
    """One customer device, the challenge that binds it, and what it signs once bound."""

    person_id: str
    key: DeviceKey = field(default_factory=DeviceKey)
    idempotency_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    device_id: str | None = None
    challenge_id: str | None = None
    # Its binding challenge was answered 204: it may open device challenges.
    bound: bool = False
    # Its OTP was replaced after the test signed it (the registration was processed again
    # before its OTP was recorded as delivered, and sent a new one): from then on the
    # scenario cannot predict answers.
    otp_replaced: bool = False


@dataclass(frozen=True)
class Signing:
    """A device challenge as the app was given it (201): its id, what the device signs, and
    the ``Idempotency-Key`` it was opened under."""

    id: str
    string_to_sign: str
    idempotency_key: str = ""


Scenario = Callable[["LoadDriver", Device], Awaitable[None]]


class LoadDriver:
    """Runs scenarios (one device each, its calls in order) on ``concurrency`` lanes at once,
    drawn by the weights of ``mix``, until enough calls were made; every call is kept in
    :attr:`calls`.

    Each scenario expects exact answers, because a challenge's calls are sequential: a retry's
    command is processed after its original (same key, same partition), so retries never
    change the outcome.
    """

    def __init__(
        self,
        client: AppClient,
        otps: OtpBook,
        *,
        mix: Mapping[Scenario, int],
        concurrency: int = 24,
        seed: int = 1,
    ) -> None:
        self.client = client
        self.otps = otps
        self.calls: list[Call] = []
        self.devices: list[Device] = []
        self.concurrency = concurrency
        self.rng = random.Random(seed)
        self._run_id = uuid.uuid4().hex[:8]
        self._impostor = DeviceKey()
        self._scenarios = list(mix)
        self._weights = list(mix.values())
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

    # Steps scenarios are made of: binding (SPEC §3-4)

    def _call(self, label: str, method: str, path: str, kind: Kind, **fields: Any) -> Call:
        request_id = f"req-{uuid.uuid4().hex}"
        call = Call(label, method, path, request_id=request_id, kind=kind.name, **fields)
        self.calls.append(call)
        return call

    async def register(self, device: Device, *, label: str = "register") -> bool:
        call = self._call(label, "POST", DEVICES, BINDING, expected=(202, None))
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
        device.device_id = call.body["id"]
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
        assert device.challenge_id is not None
        expecting = None if device.otp_replaced else expected
        call = await self._put(BINDING, device.challenge_id, label, signature, correct, expecting)
        if (
            correct
            and otp is not None
            and (call.status, call.code) == (403, "invalid_signature")
            and await self.otps.newer_than(device.challenge_id, otp, within=60) is not None
        ):
            # The OTP signed was superseded by a redelivered registration; not the verifier's
            # fault. The answer is kept (the store must agree with it) but no longer predicted.
            device.otp_replaced = True
            call.expected = None
        device.bound = device.bound or call.status == 204
        return call

    async def _put(
        self,
        kind: Kind,
        challenge_id: str,
        label: str,
        signature: str,
        correct: bool,
        expected: tuple[int, str | None] | None,
    ) -> Call:
        call = self._call(
            label,
            "PUT",
            f"{kind.path}/{challenge_id}",
            kind,
            challenge_id=challenge_id,
            signature=signature,
            correct=correct,
            expected=expected,
        )
        await self.client.send(call, body={"signature": signature})
        return call

    # Steps scenarios are made of: device signing (SPEC §8)

    async def open_signing(
        self, device: Device, *, label: str = "open", again: Signing | None = None
    ) -> Signing | None:
        """A device challenge for the bound ``device`` (a login: its unrestricted key), under
        a new ``Idempotency-Key``; or, ``again``, the request that opened that one, repeated
        under its key, which must answer the very same challenge."""
        call = self._call(label, "POST", DEVICE.path, DEVICE, expected=(201, None))
        key = again.idempotency_key if again else uuid.uuid4().hex
        await self.client.send(
            call, body={"device_id": device.device_id}, headers={"Idempotency-Key": key}
        )
        if call.status != 201:
            return None
        opened = call.body
        call.challenge_id = opened["id"]
        signing = Signing(opened["id"], opened["string_to_sign"], key)
        if (opened["device_id"], opened["key_purpose"]) != (device.device_id, "unrestricted"):
            call.problem = f"opened {opened['device_id']} {opened['key_purpose']}"
        elif again not in (None, signing):
            call.problem = f"retried opening answered {signing}, not {again}"
        return signing

    def device_signature(self, device: Device, signing: Signing, *, correct: bool) -> str:
        """A fresh signature of the challenge's string to sign; a wrong one is the impostor's,
        or the device's own over the text with one character changed (another nonce)."""
        if correct:
            return device.key.sign_text(signing.string_to_sign)
        if self.rng.random() < 0.5:
            return self._impostor.sign_text(signing.string_to_sign)
        return device.key.sign_text(_tampered(signing.string_to_sign))

    async def put_signing(
        self,
        signing: Signing,
        label: str,
        signature: str,
        *,
        correct: bool,
        expected: tuple[int, str | None],
    ) -> Call:
        return await self._put(DEVICE, signing.id, label, signature, correct, expected)


def _tampered(text: str) -> str:
    """``text`` with the first hex digit of its nonce changed."""
    at = text.index('"nonce":"') + len('"nonce":"')
    return text[:at] + ("1" if text[at] == "0" else "0") + text[at + 1 :]
