"""The outage test's load: customers who each register a device, sign its OTP (some wrongly
first), and then sign a login with the bound device (some wrongly first, SPEC §8), through the
in-process API; every exchange is recorded, and a step a 503 parks is retried later with
exactly the same request."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field

import httpx

from tests.faults.collector import Collector, Received
from tests.faults.kinds import BINDING, DEVICE, DEVICES
from tests.support.worker import DeviceKey

# Each step's path, the answer it expects, and the step after it (the wrong ones only for
# some flows); the POSTs carry an Idempotency-Key.
STEPS: dict[str, tuple[str, tuple[int, str | None], str]] = {
    "register": (DEVICES, (202, None), "wrong"),
    "wrong": (BINDING.path, (403, "invalid_signature"), "sign"),
    "sign": (BINDING.path, (204, None), "open"),
    "open": (DEVICE.path, (201, None), "device_wrong"),
    "device_wrong": (DEVICE.path, (403, "invalid_signature"), "device_sign"),
    "device_sign": (DEVICE.path, (204, None), "done"),
}
LAST = "device_sign"


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
    """One customer: register a device, maybe sign wrongly once, then sign the OTP; then open
    a device challenge, maybe sign it wrongly once, then sign its string.

    Each step's request is fixed the first time it is sent, so a step parked by a 503 is
    retried with exactly the same request (the same signature bytes, the same
    Idempotency-Key and body).
    """

    number: int
    run: str
    wrong_first: bool
    device_wrong_first: bool
    key: DeviceKey = field(default_factory=DeviceKey)
    impostor: DeviceKey = field(default_factory=DeviceKey)
    step: str = "register"
    challenge_id: str | None = None
    device_id: str | None = None
    signing_id: str | None = None  # the device challenge
    string_to_sign: str | None = None
    bodies: dict[str, bytes] = field(default_factory=dict)
    answers: dict[str, Exchange] = field(default_factory=dict)
    parked: Exchange | None = None
    unexpected: list[str] = field(default_factory=list)

    def idempotency_key(self, step: str) -> str:
        return f"outage-{step}-{self.run}-{self.number}"

    @property
    def done(self) -> bool:
        return self.step == "done"

    def path(self, step: str) -> str:
        route = STEPS[step][0]
        subject = {BINDING.path: self.challenge_id, DEVICE.path: self.signing_id}
        return route if step in ("register", "open") else f"{route}/{subject[route]}"

    def next_step(self) -> str:
        following = STEPS[self.step][2]
        if following == "wrong" and not self.wrong_first:
            return "sign"
        if following == "device_wrong" and not self.device_wrong_first:
            return "device_sign"
        return following


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
        number = len(self.flows)
        flow = Flow(number, self.run, number % 3 == 0, device_wrong_first=number % 3 == 1)
        self.flows.append(flow)
        return flow

    def completed(self, *, started_after: float = 0.0) -> int:
        return sum(1 for f in self.flows if f.done and f.answers[LAST].started >= started_after)

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
        headers = {**self.headers, "Content-Type": "application/json"}
        if step in ("register", "open"):
            headers["Idempotency-Key"] = flow.idempotency_key(step)
        started = time.monotonic()
        response = await self.client.request(
            "POST" if step in ("register", "open") else "PUT",
            flow.path(step),
            content=flow.bodies[step],
            headers=headers,
        )
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
            flow.device_id = response.json()["id"]
        if response.status_code == 201:
            flow.signing_id = response.json()["id"]
            flow.string_to_sign = response.json()["string_to_sign"]
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
            if (exchange.status, exchange.code) != STEPS[flow.step][1]:
                flow.unexpected.append(f"{flow.step}: {exchange.status} {exchange.code}")
                return
            flow.answers[flow.step] = exchange
            flow.step = flow.next_step()

    async def _body(self, flow: Flow) -> bytes:
        if flow.step == "register":
            registration = {
                "person_id": f"person-{self.run}-{flow.number}",
                "key_type": "ecdsa-p256",
                "key": flow.key.public_hex,
                "language": "de",
            }
            return json.dumps(registration).encode()
        if flow.step == "open":
            return json.dumps({"device_id": flow.device_id}).encode()
        signer = flow.impostor if flow.step in ("wrong", "device_wrong") else flow.key
        if flow.step in ("device_wrong", "device_sign"):
            assert flow.string_to_sign is not None
            return json.dumps({"signature": signer.sign_text(flow.string_to_sign)}).encode()
        assert flow.challenge_id is not None
        otp = await self.otp_of(flow.challenge_id)
        return json.dumps({"signature": signer.sign(otp)}).encode()

    async def slot(self) -> None:
        """One client: new flows one after the other until told to stop."""
        while not self.stopping:
            flow = self.new_flow()
            await self.advance(flow)
            if flow.parked is not None:
                # A client honours Retry-After; the parked step is retried after recovery.
                await asyncio.sleep(float(flow.parked.retry_after or 1))
