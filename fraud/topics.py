"""Creates the signals topic when it is missing (the local broker auto-creates none).

The events topic is the worker's: its partitioning is the worker's to choose, so it is
never created here; the consumer refuses to start without it.
"""

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from fraud.settings import FraudSettings

logger = logging.getLogger(__name__)


async def provision_topics(settings: FraudSettings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        if settings.signals_topic in set(await admin.list_topics()):
            return
        topic = NewTopic(
            settings.signals_topic,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
        )
        # Another instance, or a deployment job, may create it at the same moment.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([topic])
        logger.info("created topic %s", settings.signals_topic)
    finally:
        await admin.close()
