"""Probes for the orchestrator, served on the admin port (api/admin.py): ``/healthz`` (the
process lives) and ``/readyz`` (it can serve: connected to Kafka, positioned on the replies
topic, and Kafka answers now).

Kafka's answer is kept for :data:`READINESS_CACHE_SECONDS`, and probes arriving while one
check is under way wait for that check: a storm of probes asks Kafka once a second at most.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final, cast

from fastapi import APIRouter, Request

from api.dependencies import SettingsDep
from api.errors import ServiceUnavailable, error_responses
from api.gateway import Gateway

READINESS_CACHE_SECONDS: Final = 1.0

router = APIRouter(tags=["health"])


class CachedCheck:
    """The answer of an async yes/no check, reused for ``seconds`` after it came; callers
    that arrive while the check runs share it (a caller that goes away does not cancel it)."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._answer: bool | None = None
        self._answered_at = 0.0
        self._running: asyncio.Future[bool] | None = None

    async def __call__(self, check: Callable[[], Awaitable[bool]]) -> bool:
        if self._answer is not None and self._clock() - self._answered_at < self._seconds:
            return self._answer
        if self._running is None:
            self._running = asyncio.ensure_future(self._ask(check))
        return await asyncio.shield(self._running)

    async def _ask(self, check: Callable[[], Awaitable[bool]]) -> bool:
        try:
            answer = await check()
        finally:
            self._running = None
        self._answer, self._answered_at = answer, self._clock()
        return answer


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=error_responses(503))
async def readyz(request: Request, settings: SettingsDep) -> dict[str, str]:
    # The replica's lifespan puts the gateway in the state once it has started; the probes
    # are served from the start.
    gateway = cast(Gateway | None, getattr(request.app.state, "gateway", None))
    readiness = cast(CachedCheck, request.app.state.readiness)
    if gateway is None or not await readiness(gateway.reachable):
        raise ServiceUnavailable(settings.retry_after_seconds)
    return {"status": "ok"}
