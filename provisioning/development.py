"""The topics a worker creates for itself at start-up (``PROVISION_TOPICS``, on by default),
so that a development broker, which auto-creates nothing, has them: only the missing ones,
with the development partitions and replication factor. Production provisions with
``python -m provisioning`` (a Job) before the workers start."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient

from messaging import kafka_options
from provisioning.plan import TopicSpec
from provisioning.reconciler import TOPIC_ALREADY_EXISTS, create_topics
from provisioning.specs import DAY_MS, DEFAULT_EVENTS_RETENTION_DAYS, WorkerTopics, worker_configs

logger = logging.getLogger(__name__)


class ProvisioningError(Exception):
    """The cluster refused to create a topic."""


async def provision_topics(
    settings: WorkerTopics, *, bootstrap_servers: str, partitions: int, replication_factor: int
) -> None:
    """Create the worker's topics that are missing (its start-up, on a development broker).

    The same retentions as in production (an OTP is a secret on a laptop too), with the
    worker's partitions and replication factor; the broker's min.insync.replicas applies,
    since a development replication factor is usually 1.
    """
    configs = worker_configs(settings, events_retention_ms=DEFAULT_EVENTS_RETENTION_DAYS * DAY_MS)
    specs = [
        TopicSpec(name, partitions, replication_factor, topic_configs)
        for name, topic_configs in configs.items()
    ]
    await create_missing_topics(bootstrap_servers, specs)


async def create_missing_topics(bootstrap_servers: str, specs: list[TopicSpec]) -> None:
    """Create those of ``specs`` the cluster does not have; raise if it refuses one."""
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap_servers))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return
        failures = await create_topics(admin, missing, validate_only=False)
        # Another process may have created some at the same moment: that is what we wanted.
        failures = {
            name: error for name, error in failures.items() if error.code != TOPIC_ALREADY_EXISTS
        }
        if failures:
            raise ProvisioningError(
                "; ".join(f"{name}: {error}" for name, error in failures.items())
            )
        logger.info("created topics %s", [spec.name for spec in missing])
    finally:
        await admin.close()
