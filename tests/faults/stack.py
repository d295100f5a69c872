"""The fault suite's stack: real worker and API processes on a test's topics and database,
under names a test can kill, stop and start again (:class:`harness.processes.Children`)."""

from __future__ import annotations

from harness.processes import Children
from harness.stack import start_stack as start_processes
from harness.stack import worker_environment
from tests.support.http import Tokens
from worker.settings import WorkerSettings


def api_environment(
    settings: WorkerSettings, tokens: Tokens, *, reply_wait_seconds: float
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
    }


async def start_stack(
    children: Children,
    settings: WorkerSettings,
    tokens: Tokens,
    *,
    apis: int,
    workers: int,
    reply_wait_seconds: float = 3.0,
    worker_env: dict[str, str] | None = None,
) -> list[str]:
    """``workers`` workers (``worker-1``...) and ``apis`` API replicas (``api-1``...) on
    ``settings``' topics; the API URLs once all are ready and in the group."""
    return await start_processes(
        children,
        worker_env={**worker_environment(settings), **(worker_env or {})},
        api_env=api_environment(settings, tokens, reply_wait_seconds=reply_wait_seconds),
        workers=workers,
        apis=apis,
    )
