"""The product's Kafka topics: what each one is configured with, and the command that creates
them on a cluster or brings existing ones to that configuration.

    python -m provisioning [--dry-run]

The command (a deployment step: a Kubernetes Job, a one-shot compose service) reads
``KAFKA_BOOTSTRAP_SERVERS``, the topic names (``COMMANDS_TOPIC``, ``EVENTS_TOPIC``,
``OTP_DELIVERIES_TOPIC``, ``DEAD_LETTER_TOPIC``, ``REPLIES_TOPIC``, ``SIGNALS_TOPIC``,
``AUDIT_CHECKPOINTS_TOPIC``) and
``TOPIC_PARTITIONS`` (12), ``TOPIC_REPLICATION_FACTOR`` (3), ``TOPIC_MIN_INSYNC_REPLICAS``
(2), ``EVENTS_RETENTION_DAYS`` (30). It is idempotent: a missing topic is created with the
specs below, an existing one is brought to them, and nothing is ever deleted or decreased
(``provisioning.reconciler`` says how, and what it leaves to an operator). ``--dry-run`` asks
the cluster to validate the same plan and changes nothing.

The worker also calls ``provision_topics`` at start-up (``PROVISION_TOPICS``, on by
default) so that a development broker, which auto-creates nothing, has its topics: it only
creates the missing ones, with the development partitions and replication factor.

No topic is compacted (``cleanup.policy=delete`` everywhere). Compaction keeps the newest
record per key and suits topics whose records are the current state of their key; none of
these is:

- commands: several commands share a challenge id (create, then each signature attempt);
  compacting would drop accepted commands before a worker processed them (SPEC §6).
- events (and fraud signals): a history of facts, several per challenge; the audit trail
  and the fraud windows need every one, not the last.
- OTP deliveries: compaction would keep each person's newest OTP for ever, the opposite of
  the short retention a secret needs.
- replies and the DLQ: every key (command id, or whatever a bad producer sent) is unique
  or meaningless, so compaction would remove nothing that retention does not.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from provisioning.plan import TopicSpec
from schemas import topics


class WorkerTopics(Protocol):
    """The topics a worker writes or reads, by the names its settings give them."""

    @property
    def commands_topic(self) -> str: ...
    @property
    def events_topic(self) -> str: ...
    @property
    def otp_deliveries_topic(self) -> str: ...
    @property
    def dead_letter_topic(self) -> str: ...
    @property
    def replies_topic(self) -> str: ...


_MINUTE_MS = 60 * 1000
_HOUR_MS = 60 * _MINUTE_MS
DAY_MS = 24 * _HOUR_MS

# Commands are accepted work: a week covers a worker outage over a long weekend, so nothing
# accepted is lost (SPEC §6) even though a challenge itself expires after minutes.
COMMANDS_RETENTION_MS = 7 * DAY_MS
# Unparseable commands wait here for someone to look at them and replay or discard them.
DEAD_LETTER_RETENTION_MS = 14 * DAY_MS
# A reply is read within REPLY_WAIT_SECONDS or never (a replica reads from the end of the
# topic); hours are kept only to debug a recent incident.
REPLIES_RETENTION_MS = 6 * _HOUR_MS
REPLIES_SEGMENT_MS = 1 * _HOUR_MS
# OTPs are secrets that expire within 10 minutes (SPEC §4); the SMS gateway reads them in
# seconds. Kafka deletes whole segments only, once their newest record is older than
# retention.ms, and checks every log.retention.check.interval.ms (5 minutes by default):
# 40 minutes of retention on 10-minute segments removes every OTP within about 55 minutes,
# that is within the hour SPEC §5 allows. With the default 7-day segments a busy topic would
# keep them for days.
OTP_RETENTION_MS = 40 * _MINUTE_MS
OTP_SEGMENT_MS = 10 * _MINUTE_MS
# Events are read by the audit trail, the fraud signals and other teams. 30 days lets a
# consumer that was down, or an audit database restored from a backup, catch up from the
# topic; the lasting record is the audit trail's own database, and the events carry personal
# data (person and device ids), so the topic does not keep them for ever.
DEFAULT_EVENTS_RETENTION_DAYS = 30
# Audit checkpoints anchor the audit trail outside its database: `verify --checkpoints` needs
# every one for as long as the trail is kept, so the broker never deletes them (a few small
# records an hour).
CHECKPOINTS_RETENTION_MS = -1


def _configs(retention_ms: int, **extra: str) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(retention_ms), **extra}


def _otp_configs() -> dict[str, str]:
    return _configs(
        OTP_RETENTION_MS,
        **{
            "segment.ms": str(OTP_SEGMENT_MS),
            # Retention then counts from when the broker stored the OTP, not from a
            # producer's clock, which could be set ahead and keep a secret longer.
            "message.timestamp.type": "LogAppendTime",
        },
    )


class ProvisioningSettings(BaseSettings):
    """Settings of ``python -m provisioning``: production defaults."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    commands_topic: str = topics.COMMANDS
    events_topic: str = topics.EVENTS
    otp_deliveries_topic: str = topics.OTP_DELIVERIES
    dead_letter_topic: str = topics.COMMANDS_DLQ
    replies_topic: str = topics.REPLIES
    signals_topic: str = topics.SUSPICIOUS_ACTIVITY
    audit_checkpoints_topic: str = topics.AUDIT_CHECKPOINTS
    # Partitions bound the parallelism of every consumer group: worker processes (one member
    # each) beyond this count idle. They can be added later (keys then map
    # to other partitions), never removed.
    topic_partitions: int = Field(default=12, ge=1)
    topic_replication_factor: int = Field(default=3, ge=1)
    # With acks=all, a write needs this many replicas in sync: 2 of 3 survives one broker
    # down (a rolling restart) without refusing writes or losing acknowledged ones.
    topic_min_insync_replicas: int = Field(default=2, ge=1)
    # At least a week: shorter would lose events for a consumer down over a long weekend.
    events_retention_days: int = Field(default=DEFAULT_EVENTS_RETENTION_DAYS, ge=7)

    @model_validator(mode="after")
    def _replicas_can_be_in_sync(self) -> ProvisioningSettings:
        replicas, in_sync = self.topic_replication_factor, self.topic_min_insync_replicas
        if in_sync > replicas:
            # Every acks=all write would be refused.
            raise ValueError(
                f"TOPIC_MIN_INSYNC_REPLICAS ({in_sync}) exceeds "
                f"TOPIC_REPLICATION_FACTOR ({replicas})"
            )
        if replicas > 1 and in_sync == replicas:
            # One broker down would stop every write: keep one replica of slack.
            raise ValueError(
                f"TOPIC_MIN_INSYNC_REPLICAS ({in_sync}) must be less than "
                f"TOPIC_REPLICATION_FACTOR ({replicas})"
            )
        return self


def worker_configs(
    settings: WorkerTopics, *, events_retention_ms: int
) -> dict[str, dict[str, str]]:
    """The configs of the topics the worker writes or reads, by topic name."""
    return {
        settings.commands_topic: _configs(COMMANDS_RETENTION_MS),
        settings.events_topic: _configs(events_retention_ms),
        settings.otp_deliveries_topic: _otp_configs(),
        settings.dead_letter_topic: _configs(DEAD_LETTER_RETENTION_MS),
        settings.replies_topic: _configs(
            REPLIES_RETENTION_MS, **{"segment.ms": str(REPLIES_SEGMENT_MS)}
        ),
    }


def product_topics(settings: ProvisioningSettings) -> list[TopicSpec]:
    """Every topic of the product, as the provisioning command wants it."""
    events_retention_ms = settings.events_retention_days * DAY_MS
    configs = worker_configs(settings, events_retention_ms=events_retention_ms)
    # Alerts are published facts read by another team, like the events.
    configs[settings.signals_topic] = _configs(events_retention_ms)
    configs[settings.audit_checkpoints_topic] = _configs(CHECKPOINTS_RETENTION_MS)
    in_sync = {"min.insync.replicas": str(settings.topic_min_insync_replicas)}
    return [
        TopicSpec(
            name,
            partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
            configs={**topic_configs, **in_sync},
        )
        for name, topic_configs in configs.items()
    ]
