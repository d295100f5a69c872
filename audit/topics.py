"""Creates the checkpoints topic when it is missing (``PROVISION_TOPICS``, on by default), so
that a development broker, which auto-creates nothing, has it. Production provisions it with
``python -m provisioning`` and sets ``PROVISION_TOPICS=false``.

The events topic is the worker's: it is never created here.
"""

from audit.settings import AuditSettings
from provisioning.development import create_missing_topics
from provisioning.plan import TopicSpec
from provisioning.specs import checkpoint_configs


async def provision_checkpoints_topic(settings: AuditSettings) -> None:
    # One partition: every checkpoint of a chain has its key, so shares one anyway.
    # One replica: a development broker has one node.
    topic = TopicSpec(settings.audit_checkpoints_topic, 1, 1, checkpoint_configs())
    await create_missing_topics(settings.kafka_bootstrap_servers, [topic])
