"""The bank's app as the fault suite's load sees it: one logical request (:class:`Call`) sent
again after every 503 until it gets a real answer (:class:`AppClient`)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

# How long one logical request may keep getting 503s before the client gives up on it (it
# is then counted as lost, which fails the test).
GIVE_UP_AFTER = 300.0


@dataclass
class Call:
    """One logical request: sent again after every 503 until it got a terminal answer."""

    label: str
    method: str
    path: str
    request_id: str
    # Which kind of challenge it opens or signs: "binding" (the OTP) or "device" (SPEC §8).
    kind: str = "binding"
    challenge_id: str | None = None
    signature: str | None = None
    # The signature is the device key's over what the challenge asks it to sign (the latest
    # known OTP, or the string to sign).
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
