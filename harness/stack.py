"""The product as ``make run`` starts it, for the tests and benchmarks: worker processes and
API replicas on a Kafka broker, on private topics and a private group, each process waited
for until it can take work.

- environments: :func:`stack_environment` (workers and API on :class:`StackTopics`),
  :func:`worker_environment` (a worker's settings, as variables), :func:`auth_environment`;
- :func:`start_stack`: ``workers`` workers, then ``apis`` API replicas on free ports once the
  workers have made the topics; returns the API URLs once every replica is ready and every
  worker is in the group (:func:`start_replicas`: with each replica's admin URL, where its
  ``/readyz`` and ``/metrics`` are);
- waits: :func:`wait_until_ready` (``/readyz``), :func:`wait_for_topics`.

The replicas run with :data:`OPEN_API_LIMITS` unless ``api_env`` sets the limits: tests and
benchmarks drive one client id at rates a production client is refused at, and measure
queueing unless they ask for shedding.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from harness import devkeys
from harness.kafka.secure_plane import SecurePlane
from harness.otp_keys import otp_environment
from harness.ports import free_port
from harness.processes import PYTHON, ROOT, Children
from harness.topics import wait_for_group
from messaging import KafkaConnection, kafka_options
from provisioning.acls import API, WORKER
from worker.settings import WorkerSettings

READY_TIMEOUT_SECONDS = 180.0
# Far above what one machine's tests and benchmarks send (the e2e ladders: up to 1,000
# requests/s from one client, on up to 1,000 connections).
OPEN_API_LIMITS = {
    "CLIENT_RATE_PER_SECOND": "1000000",
    "CLIENT_RATE_BURST": "1000000",
    "MAX_IN_FLIGHT": "10000",
}


@dataclass(frozen=True)
class Replica:
    """An API replica: its API's base URL and its admin port's (probes, metrics)."""

    url: str
    admin_url: str


@dataclass(frozen=True)
class StackTopics:
    """The product's topics and worker group under one private prefix."""

    prefix: str

    @classmethod
    def fresh(cls, label: str) -> StackTopics:
        return cls(f"{label}.{uuid.uuid4().hex[:8]}")

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def replies(self) -> str:
        return f"{self.prefix}.replies"

    @property
    def otp(self) -> str:
        return f"{self.prefix}.otp"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.commands.dlq"

    @property
    def group(self) -> str:
        return f"{self.prefix}.workers"

    def worker_env(self) -> dict[str, str]:
        """What ``python -m worker`` reads to use these topics and this group."""
        return {
            "CONSUMER_GROUP": self.group,
            "COMMANDS_TOPIC": self.commands,
            "EVENTS_TOPIC": self.events,
            "OTP_DELIVERIES_TOPIC": self.otp,
            "DEAD_LETTER_TOPIC": self.dead_letters,
            "REPLIES_TOPIC": self.replies,
        }

    def api_env(self) -> dict[str, str]:
        return {"COMMANDS_TOPIC": self.commands, "REPLIES_TOPIC": self.replies}


def auth_environment(jwks: Path) -> dict[str, str]:
    """The API's token settings for the development signing key in ``jwks``."""
    return {
        "AUTH_JWKS_FILE": str(jwks),
        "AUTH_ISSUER": devkeys.DEFAULT_ISSUER,
        "AUTH_AUDIENCE": devkeys.DEFAULT_AUDIENCE,
    }


def stack_environment(
    *, bootstrap: str, database_url: str, jwks: Path, topics: StackTopics
) -> dict[str, str]:
    """What workers and API replicas on ``topics`` read (the API's topics added by
    :func:`start_stack`)."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        **auth_environment(jwks),
        **topics.worker_env(),
        **otp_environment(),
        "PYTHONUNBUFFERED": "1",
    }


def worker_environment(settings: WorkerSettings) -> dict[str, str]:
    """The environment that makes ``python -m worker`` run with ``settings``: its own
    topics, group and database, migrated at start-up, probes on a free port (several
    workers share the host in tests)."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url,
        "CONSUMER_GROUP": settings.consumer_group,
        "COMMANDS_TOPIC": settings.commands_topic,
        "EVENTS_TOPIC": settings.events_topic,
        "OTP_DELIVERIES_TOPIC": settings.otp_deliveries_topic,
        "DEAD_LETTER_TOPIC": settings.dead_letter_topic,
        "REPLIES_TOPIC": settings.replies_topic,
        "TOPIC_PARTITIONS": str(settings.topic_partitions),
        "AUTO_MIGRATE": "true",
        "WORKER_HTTP_PORT": "0",
        "PYTHONUNBUFFERED": "1",
        **_otp_keys(settings),
    }


def _otp_keys(settings: WorkerSettings) -> dict[str, str]:
    # The settings' own keys (a test's), else the run's: never a worker without keys.
    if settings.otp_encryption_keys is None:
        return otp_environment()
    return {"OTP_ENCRYPTION_KEYS": settings.otp_encryption_keys.get_secret_value()}


def migrate(env: dict[str, str], *, cwd: Path = ROOT) -> None:
    """The worker's schema first, once, as ``make run`` and the Kubernetes Job do."""
    done = subprocess.run(
        [PYTHON, "-m", "worker", "migrate"],
        env={**os.environ, **env},
        cwd=cwd,
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    if done.returncode != 0:
        output = done.stdout.decode(errors="replace")
        raise RuntimeError(f"python -m worker migrate failed:\n{output}")


async def wait_until_ready(
    url: str, *, within: float = READY_TIMEOUT_SECONDS, children: Children | None = None
) -> None:
    """Until ``url`` answers 200, failing early if one of ``children`` died."""
    async with httpx.AsyncClient() as http, asyncio.timeout(within):
        while True:
            if children is not None:
                children.check_alive()
            try:
                if (await http.get(url, timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)


async def wait_for_topics(
    bootstrap: str,
    names: set[str],
    *,
    within: float = READY_TIMEOUT_SECONDS,
    connection: KafkaConnection | None = None,
) -> None:
    """Until every topic of ``names`` exists (the workers create them as they start)."""
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap, connection))
    await admin.start()
    try:
        async with asyncio.timeout(within):
            while not names <= set(await admin.list_topics()):
                await asyncio.sleep(0.25)
    finally:
        await admin.close()


async def start_stack(
    children: Children,
    *,
    worker_env: dict[str, str],
    api_env: dict[str, str],
    workers: int,
    apis: int,
    worker_ports: list[int] | None = None,
    plane: SecurePlane | None = None,
) -> list[str]:
    """Start ``workers`` workers (``worker-1``...) and, once they have made the topics,
    ``apis`` API replicas (``api-1``...) on free ports; the API URLs, once every replica is
    ready and every worker is a member of the group."""
    replicas = await start_replicas(
        children,
        worker_env=worker_env,
        api_env=api_env,
        workers=workers,
        apis=apis,
        worker_ports=worker_ports,
        plane=plane,
    )
    return [replica.url for replica in replicas]


async def start_replicas(
    children: Children,
    *,
    worker_env: dict[str, str],
    api_env: dict[str, str],
    workers: int,
    apis: int,
    worker_ports: list[int] | None = None,
    plane: SecurePlane | None = None,
) -> list[Replica]:
    """:func:`start_stack`, answering each replica's API and admin URLs.

    On a SASL_SSL broker's ``plane`` each worker and replica gets its own role's ``KAFKA_*``
    variables (and no topic provisioning: the plane's ``admin`` made them), and the harness
    watches topics and the group as ``admin``; else everything connects as the environment
    says."""
    connection: KafkaConnection | None = None
    if plane is not None:
        worker_env = {**worker_env, **plane.environment(WORKER)}
        api_env = {**api_env, **plane.environment(API)}
        connection = plane.connection()
    ports = worker_ports or [free_port() for _ in range(workers)]
    for number, port in enumerate(ports, start=1):
        children.spawn(
            f"worker-{number}",
            ["-m", "worker"],
            env={**worker_env, "WORKER_HTTP_PORT": str(port)},
            role="worker",
        )
    bootstrap = worker_env["KAFKA_BOOTSTRAP_SERVERS"]
    needed = {worker_env[name] for name in ("COMMANDS_TOPIC", "REPLIES_TOPIC", "EVENTS_TOPIC")}
    await wait_for_topics(bootstrap, needed, connection=connection)
    replicas = []
    for number in range(1, apis + 1):
        port, admin_port = free_port(), free_port()
        while admin_port == port:
            admin_port = free_port()
        children.spawn(
            f"api-{number}",
            ["-m", "api"],
            env={
                **OPEN_API_LIMITS,
                **api_env,
                "API_HOST": "127.0.0.1",
                "API_PORT": str(port),
                "API_ADMIN_PORT": str(admin_port),
            },
            role="api",
        )
        replicas.append(Replica(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"))
    for replica in replicas:
        await wait_until_ready(f"{replica.admin_url}/readyz", children=children)
    # One group member per worker process.
    await wait_for_group(bootstrap, worker_env["CONSUMER_GROUP"], workers, connection=connection)
    return replicas
