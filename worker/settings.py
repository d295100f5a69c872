"""The worker process's configuration, read once from the environment at start-up."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import topics

MAX_CHALLENGE_TTL_SECONDS = 600  # SPEC §4: at most 10 minutes


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: str = "sqlite+aiosqlite:///var/device-binding.db"
    consumer_group: str = "device-binding-workers"
    # Group members per process. Each takes its own partitions and handles them one command
    # at a time, so order per challenge holds while partitions proceed side by side.
    consumers_per_process: int = Field(default=3, ge=1)

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
    # After this many dead-lettered commands in a row the worker stops instead of
    # dead-lettering everything (a bad deploy of a producer, say).
    max_consecutive_dead_letters: int = Field(default=100, ge=1)
    # Pause before a command that failed transiently (database, Kafka) is tried again.
    retry_backoff_seconds: float = Field(default=1.0, ge=0)
