"""Probes for the orchestrator: alive, and ready (connected to Kafka, replies positioned)."""

from fastapi import APIRouter

from api.dependencies import GatewayDep, SettingsDep
from api.errors import ServiceUnavailable, error_responses

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", responses=error_responses(503))
async def ready(gateway: GatewayDep, settings: SettingsDep) -> dict[str, str]:
    if not gateway.ready:
        raise ServiceUnavailable(settings.retry_after_seconds)
    return {"status": "ok"}
