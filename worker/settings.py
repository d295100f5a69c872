"""The worker process's configuration, read once from the environment at start-up."""

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import topics

MAX_CHALLENGE_TTL_SECONDS = 600  # SPEC §4: at most 10 minutes


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: str = "sqlite+aiosqlite:///var/device-binding.db"
    # On SQLite, how hard a batch's commit waits for the disk (storage.engine): NORMAL, the
    # default, syncs at checkpoints only, so a power cut (not a crash of the process) may roll
    # back the last decisions, whose events and offsets Kafka already has: such a challenge
    # is pending again and its next signature decided again. FULL syncs every batch: a
    # millisecond or more per batch on a virtual disk, on every request's path when requests
    # come one at a time. PostgreSQL, for production, commits durably whatever this says.
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    # Upgrade the database to the head revision at start-up instead of refusing one that is
    # behind. For development and tests: production runs `python -m worker migrate` (a Job)
    # before the workers, so a schema change is a deliberate step.
    auto_migrate: bool = False
    consumer_group: str = "device-binding-workers"
    # The most commands a batch takes at once, across the process's partitions. Signature
    # attempts among them are decided in one transaction and announced together: fewer round
    # trips per command under load, while a lone command still goes through at once.
    batch_max_records: int = Field(default=500, ge=1, le=5000)
    # Batches decided but not yet acknowledged by Kafka (and so not committed): the next
    # batch is decided while the previous ones' acknowledgements travel. Past this the
    # worker waits: a bound on what a crash makes it redo, and on memory. 8: a drain of
    # 50,000 measured 4,080-4,227/s with 4, 4,289-4,841/s with 8, 4,282-5,038/s with 16.
    batches_in_flight: int = Field(default=8, ge=1, le=64)
    # Processes that verify signatures beside the event loop (ECDSA is most of an attempt's
    # cost); 0 verifies on the event loop itself.
    verify_processes: int = Field(default=1, ge=0, le=16)

    commands_topic: str = topics.COMMANDS
    events_topic: str = topics.EVENTS
    otp_deliveries_topic: str = topics.OTP_DELIVERIES
    dead_letter_topic: str = topics.COMMANDS_DLQ
    replies_topic: str = topics.REPLIES
    # Partitions given to the topics the worker creates when they are missing. Commands are
    # spread over them by challenge id; workers beyond this count would idle.
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)  # 3 in production
    provision_topics: bool = True

    challenge_ttl_seconds: int = Field(default=300, ge=1, le=MAX_CHALLENGE_TTL_SECONDS)
    # SPEC §9: the keys that seal OTP digests at rest, `kid:base64key,...` (32-byte keys; the
    # first seals, all open). No default: the worker refuses to start without them (the
    # local stack, the test harness and the benchmarks generate one into var/ or pass one).
    otp_encryption_keys: SecretStr | None = None
    # How often pending challenges past their expiry are marked expired and their digests
    # dropped (SPEC §9: within a minute).
    expiry_sweep_seconds: float = Field(default=30.0, gt=0, le=60)
    # SPEC §9: a person's new challenges are refused this long after 5 failed signatures in
    # a row; at most this many OTPs are sent to a person in an hour.
    person_lock_seconds: int = Field(default=900, ge=1)
    otp_sends_per_hour: int = Field(default=5, ge=1)
    max_pending_challenges: int = Field(default=3, ge=1)
    # Refusals that count nothing (unknown or foreign ids, spent challenges) are kept this
    # long to answer redeliveries and identical retries, then deleted.
    refusal_retention_seconds: int = Field(default=7 * 24 * 3600, ge=3600)
    # How long the worker that stored a challenge holds the delivery of its OTP. A worker
    # given the same command meanwhile (a rebalance) waits for it rather than sending a
    # second OTP; after it, the OTP is taken for lost with its crashed worker and replaced.
    # Keep it above a delivery's time under load and near the group's session timeout.
    otp_delivery_lease_seconds: float = Field(default=10.0, gt=0, le=MAX_CHALLENGE_TTL_SECONDS)
    # After this many dead-lettered commands in a row the worker stops instead of
    # dead-lettering everything (a bad deploy of a producer, say).
    max_consecutive_dead_letters: int = Field(default=100, ge=1)
    # Pause before a command that failed transiently (database, Kafka) is tried again.
    retry_backoff_seconds: float = Field(default=1.0, ge=0)

    # The probe and metrics port (GET /healthz, /readyz, /metrics); 0 picks a free one.
    worker_http_host: str = "127.0.0.1"  # 0.0.0.0 in a container
    worker_http_port: int = Field(default=8001, ge=0, le=65535)
    # How often the group's consumer lag is measured for the metrics.
    lag_interval_seconds: float = Field(default=15.0, gt=0)
    # On SIGTERM: how long commands in progress may take to finish before the worker closes
    # anyway (their offsets then stay uncommitted and another worker redoes them safely).
    # Keep it below the orchestrator's grace period (terminationGracePeriodSeconds).
    shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    # How long a readiness probe waits for Kafka and the database.
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)
