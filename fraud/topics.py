"""Creates the signals topic when it is missing (the local broker auto-creates none).

The events topic is the worker's: its partitioning is the worker's to choose, so it is
never created here; the consumer refuses to start without it.
"""

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from fraud.settings import FraudSettings
from messaging import kafka_options

logger = logging.getLogger(__name__)


async def provision_topics(settings: FraudSettings) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(settings.kafka_bootstrap_servers))
    await admin.start()
    try:
        if settings.signals_topic in set(await admin.list_topics()):
            return
        topic = NewTopic(
            settings.signals_topic,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
        )
        response = await admin.create_topics([topic])
        # aiokafka reports per-topic errors in the response rather than raising them. Another
        # instance, or the provisioning job, may have created it at the same moment: fine.
        errors = [
            f"{error['topic']}: {error['error_message'] or error['error_code']}"
            for error in response.to_object()["topic_errors"]
            if error["error_code"] not in (0, TopicAlreadyExistsError.errno)
        ]
        if errors:
            raise RuntimeError(f"could not create the signals topic: {'; '.join(errors)}")
        logger.info("created topic %s", settings.signals_topic)
    finally:
        await admin.close()
