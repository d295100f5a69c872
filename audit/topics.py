"""Creates the checkpoints topic when it is missing (``PROVISION_TOPICS``, on by default), so
that a development broker, which auto-creates nothing, has it. Production provisions it with
``python -m provisioning`` and sets ``PROVISION_TOPICS=false``.

The events topic is the worker's: it is never created here.
"""

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from audit.settings import AuditSettings
from messaging import kafka_options
from provisioning.specs import checkpoint_configs

logger = logging.getLogger(__name__)


async def provision_checkpoints_topic(settings: AuditSettings) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(settings.kafka_bootstrap_servers))
    await admin.start()
    try:
        name = settings.audit_checkpoints_topic
        if name in set(await admin.list_topics()):
            return
        # One partition: every checkpoint of a chain has its key, so shares one anyway.
        # One replica: a development broker has one node.
        topic = NewTopic(
            name, num_partitions=1, replication_factor=1, topic_configs=checkpoint_configs()
        )
        response = await admin.create_topics([topic])
        errors = [
            f"{error['topic']}: {error['error_message'] or error['error_code']}"
            for error in response.to_object()["topic_errors"]
            if error["error_code"] not in (0, TopicAlreadyExistsError.errno)
        ]
        if errors:
            raise RuntimeError(f"could not create the checkpoints topic: {'; '.join(errors)}")
        logger.info("created topic %s", name)
    finally:
        await admin.close()
