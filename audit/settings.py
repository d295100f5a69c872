"""The audit consumer's configuration, read once from the environment at start-up."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import topics


class AuditSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Its own database, not the service's: the audit trail is kept by another team, and a
    # compromised service must not be able to rewrite it.
    audit_database_url: str = "sqlite+aiosqlite:///var/audit.db"
    # Upgrade the database to the head revision at start-up instead of refusing one that is
    # behind. For development and tests: production runs `python -m audit migrate` first.
    audit_auto_migrate: bool = False
    events_topic: str = topics.EVENTS
    audit_consumer_group: str = "device-binding-audit"
    # Events appended per transaction: one fsync and one offset commit per batch.
    audit_batch_max_records: int = Field(default=500, ge=1)
    # How long the group waits for a silent member (a killed process) before giving its
    # partitions to another: the longest an event can wait behind a crashed consumer.
    audit_session_timeout_ms: int = Field(default=10_000, ge=6_000)  # the broker's minimum
    # Pause before a batch that failed (database or Kafka) is read and tried again.
    audit_retry_backoff_seconds: float = Field(default=1.0, ge=0)
