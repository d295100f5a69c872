"""The FastAPI application of one API replica: :func:`create_app`."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api.error_handlers import install_error_handlers
from api.gateway import KafkaGateway
from api.jwks import KeySet
from api.limits import install_limits, within_client_rate
from api.metrics import MetricsMiddleware
from api.openapi import install_openapi
from api.request_ids import RequestIdMiddleware
from api.routes import challenges, device_challenges, devices, keys
from api.settings import Settings
from api.tracing import TracingMiddleware
from schemas.challenges import SignatureSubmission
from schemas.devices import DeviceRegistration
from schemas.signing import DeviceChallengeRequest, KeyAddition

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; ``settings`` default to the environment's, read here, once."""
    settings = settings or Settings()  # required fields come from the environment

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Keys that cannot be read are a configuration error: refuse to start.
        keys = KeySet(settings)
        await keys.load()
        app.state.keys = keys
        refreshing = asyncio.create_task(keys.refresh_forever(), name="jwks-refresh")
        gateway = KafkaGateway(settings)
        app.state.gateway = gateway
        await gateway.start()
        try:
            if await gateway.wait_ready(settings.kafka_connect_timeout_seconds):
                logger.info("ready: instance %s", settings.instance_id)
            else:
                logger.warning(
                    "Kafka not reachable at start-up; answering 503 until it is (instance %s)",
                    settings.instance_id,
                )
            yield
        finally:
            refreshing.cancel()
            await gateway.stop()

    app = FastAPI(
        title="Device-binding signature verification",
        version="1.0",
        description=(
            "Binds a customer's device key by verifying its signature of an OTP, then"
            " verifies the bound device's signatures of logins and payments."
        ),
        lifespan=lifespan,
    )
    serve_routes(app, settings)
    install_openapi(
        app, [DeviceRegistration, SignatureSubmission, DeviceChallengeRequest, KeyAddition]
    )
    return app


def serve_routes(app: FastAPI, settings: Settings) -> None:
    """The routes, error answers, limits and middlewares of the API on ``app``, whose
    lifespan puts the key set and the gateway in its state (the benchmark's inline peer
    shares these). The probes and metrics are the admin app's (api/admin.py)."""
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(TracingMiddleware)
    # Outside the tracing and the metrics: a refusal for overload costs as little as it can.
    install_limits(app, settings)
    # Added last, so outermost: every answer, a 500 included, carries the request id.
    app.add_middleware(RequestIdMiddleware)
    # Each route's first dependency: the client's rate, right after its token is checked
    # and before the path, the body or anything published.
    for router in (devices.router, challenges.router, keys.router, device_challenges.router):
        app.include_router(router, dependencies=[Depends(within_client_rate)])
