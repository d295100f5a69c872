"""The fraud-signal consumer's configuration, read once from the environment at start-up."""

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from fraud.windows import DEFAULT_REASONS
from schemas import topics
from schemas.reasons import SIGNATURE_REJECTION_REASONS, Reason


class FraudSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    events_topic: str = topics.EVENTS
    signals_topic: str = topics.SUSPICIOUS_ACTIVITY
    # Used only to store the consumed offsets: partitions are assigned, not balanced, since
    # a person's events are spread over every partition (they are keyed by challenge id).
    fraud_consumer_group: str = "device-binding-fraud-signals"

    fraud_window_seconds: int = Field(default=300, ge=1)
    fraud_person_threshold: int = Field(default=10, ge=1)
    fraud_device_threshold: int = Field(default=5, ge=1)
    # Which rejection reasons count, of binding and device signing alike. The environment
    # gives them comma-separated (FRAUD_REASONS=invalid_signature,challenge_locked), hence
    # NoDecode: not JSON.
    fraud_reasons: Annotated[frozenset[Reason], NoDecode] = DEFAULT_REASONS
    # How far behind the newest event time an event may still arrive and be counted with
    # its key's earlier rejections; also how much earlier than strictly needed the
    # start-up warm-up begins reading, for record timestamps that are not in order.
    fraud_lateness_seconds: int = Field(default=60, ge=0)

    # Partitions given to the signals topic when it is created here.
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)  # 3 in production
    provision_topics: bool = True

    @field_validator("fraud_reasons", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("fraud_reasons")
    @classmethod
    def _rejection_reasons_only(cls, value: frozenset[Reason]) -> frozenset[Reason]:
        if not value:
            raise ValueError("at least one reason must be counted")
        # A reason no rejection carries would silently count nothing. Those of
        # device_signature_rejected are among those of signature_rejected (SPEC §8).
        if stray := value - SIGNATURE_REJECTION_REASONS:
            raise ValueError(f"not a signature rejection reason: {sorted(stray)}")
        return value
