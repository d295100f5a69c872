"""Creates the product's topics when they are missing (the local broker auto-creates none)."""

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from worker.settings import WorkerSettings

logger = logging.getLogger(__name__)

# The OTP topic carries secrets: keep them for an hour at most (SPEC §5, short retention).
_OTP_RETENTION_MS = str(60 * 60 * 1000)


async def provision_topics(settings: WorkerSettings) -> None:
    wanted = {
        settings.commands_topic: {},
        settings.events_topic: {},
        settings.replies_topic: {"retention.ms": str(24 * 60 * 60 * 1000)},
        settings.dead_letter_topic: {},
        settings.otp_deliveries_topic: {"retention.ms": _OTP_RETENTION_MS},
    }
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs=configs,
            )
            for name, configs in wanted.items()
            if name not in existing
        ]
        if missing:
            # Another worker may create them at the same moment.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            logger.info("created topics %s", [topic.name for topic in missing])
    finally:
        await admin.close()
