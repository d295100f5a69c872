"""The admin app: ``/healthz``, ``/readyz`` and ``/metrics`` of one API replica, served on
its own port (``API_ADMIN_PORT``) by a second server in the same process (api/__main__.py).

Not on the API's port: the orchestrator and Prometheus reach the admin port from inside the
cluster, while the public Service and the compose file expose only the API's. And a flood of
API requests does not starve the probes: each server has its own connection limit.

The admin app shares the API app's state (settings, and the gateway its lifespan starts), so
``/readyz`` answers for the very gateway the API sends through; until the lifespan has
started it, ``/readyz`` answers 503.
"""

from fastapi import FastAPI

from api.error_handlers import install_error_handlers
from api.metrics import router as metrics_router
from api.request_ids import RequestIdMiddleware
from api.routes import health


def serve_admin_routes(app: FastAPI) -> None:
    """The probes and the metrics on ``app``, and the readiness answer's cache in its state
    (the benchmark's inline peer serves them beside its API routes)."""
    app.state.readiness = health.CachedCheck(health.READINESS_CACHE_SECONDS)
    app.include_router(health.router)
    app.include_router(metrics_router)


def create_admin_app(api: FastAPI) -> FastAPI:
    """The admin app of the replica whose API app is ``api`` (no lifespan of its own)."""
    admin = FastAPI(
        title="Device-binding probes and metrics",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    admin.state = api.state
    install_error_handlers(admin)
    admin.add_middleware(RequestIdMiddleware)
    serve_admin_routes(admin)
    return admin
