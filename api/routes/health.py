"""Probes for the orchestrator: ``/healthz`` (the process lives) and ``/readyz`` (it can
serve: connected to Kafka, positioned on the replies topic, and Kafka answers now)."""

from fastapi import APIRouter

from api.dependencies import GatewayDep, SettingsDep
from api.errors import ServiceUnavailable, error_responses

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=error_responses(503))
async def readyz(gateway: GatewayDep, settings: SettingsDep) -> dict[str, str]:
    if not await gateway.reachable():
        raise ServiceUnavailable(settings.retry_after_seconds)
    return {"status": "ok"}
