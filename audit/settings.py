"""The audit consumer's configuration, read once from the environment at start-up."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import topics
from schemas.checkpoints import ChainName


class AuditSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Its own database, not the service's: the audit trail is kept by another team, and a
    # compromised service must not be able to rewrite it.
    audit_database_url: str = "sqlite+aiosqlite:///var/audit.db"
    # PostgreSQL: the role the consumer connects as, when it is not the one migrating. Read by
    # `python -m audit migrate` only, which grants it exactly the rights appending needs
    # (audit/roles.py). Unset: no grants (SQLite, or one role for both, in development).
    audit_runtime_role: str | None = None
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

    # Checkpoints (SPEC §9): the chain head signed and published outside the database.
    # The chain's name: the checkpoints' Kafka key, so one topic can anchor several trails.
    audit_chain_name: ChainName = "device-binding-audit"
    # Ed25519 private key (PKCS#8 PEM). Unset: the consumer runs but anchors nothing, and
    # says so at start-up; production always sets it (a Secret).
    audit_signing_key_file: Path | None = None
    # Public key(s) for `verify --checkpoints`; unset, the signing key file's public half.
    audit_verify_key_file: Path | None = None
    # A checkpoint after this many records appended, or this long after the last one if
    # anything was appended since (nothing new, no checkpoint). The seconds bound how long
    # the newest records stay unanchored, rewritable without a trace: a minute. The count
    # bounds it under load: at a thousand events a second, about one checkpoint a second,
    # one signature (tens of microseconds) and one small message per thousand records.
    audit_checkpoint_records: int = Field(default=1000, ge=1)
    audit_checkpoint_seconds: float = Field(default=60.0, gt=0)
    audit_checkpoints_topic: str = topics.AUDIT_CHECKPOINTS
    # Create the checkpoints topic at start-up if missing (development brokers create none);
    # deployments provision it (`python -m provisioning`) and set this to false.
    provision_topics: bool = True
