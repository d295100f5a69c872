"""The HTTP front's configuration, read from the environment once, at start-up.

Nothing else in ``api`` reads ``os.environ``. Variable names are the field names in upper
case (``KAFKA_BOOTSTRAP_SERVERS``, ``AUTH_JWKS_FILE``, ...).
"""

import os
import socket
import uuid
from pathlib import Path
from typing import Annotated

from pydantic import Field, HttpUrl, StringConstraints, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import topics

NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
TopicName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,249}$")]


def _default_instance_id() -> str:
    # Unique per process, readable in logs: which replica a reply was addressed to.
    return f"api-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Settings(BaseSettings):
    """Settings of one API replica."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka_bootstrap_servers: NonEmpty = "127.0.0.1:9092"
    # How long one attempt to reach Kafka may take, and how long start-up waits for the
    # first successful one before serving (answering 503 until Kafka is reachable).
    kafka_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    # Exactly one of the two: a JWKS file, or the identity provider's JWKS URL.
    auth_jwks_file: Path | None = None
    auth_jwks_url: HttpUrl | None = None
    auth_jwks_refresh_seconds: float = Field(default=300.0, gt=0)
    auth_issuer: NonEmpty
    auth_audience: NonEmpty
    reply_wait_seconds: float = Field(default=5.0, gt=0)
    publish_timeout_seconds: float = Field(default=5.0, gt=0)
    retry_after_seconds: int = Field(default=1, ge=1)
    # Per client id (the token's client_id), per replica: a token bucket refilled at this
    # rate, holding at most this many; past it 429 too_many_requests (api/rate_limits.py).
    client_rate_per_second: float = Field(default=200.0, gt=0)
    client_rate_burst: int = Field(default=400, ge=1)
    # Requests on /v1 being served at once by this replica; past it 503 at once (api/limits.py).
    max_in_flight: int = Field(default=256, ge=1)
    commands_topic: TopicName = topics.COMMANDS
    replies_topic: TopicName = topics.REPLIES
    instance_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        default_factory=_default_instance_id
    )

    @model_validator(mode="after")
    def _one_key_source(self) -> "Settings":
        if (self.auth_jwks_file is None) == (self.auth_jwks_url is None):
            raise ValueError("set exactly one of AUTH_JWKS_FILE and AUTH_JWKS_URL")
        return self


class ServerSettings(BaseSettings):
    """Where ``python -m api`` listens: the API on ``api_port``, the probes and metrics
    (``/healthz``, ``/readyz``, ``/metrics``) on ``api_admin_port``, never on the API's."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    api_host: NonEmpty = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_admin_port: int = Field(default=8010, ge=1, le=65535)

    @model_validator(mode="after")
    def _two_ports(self) -> "ServerSettings":
        if self.api_port == self.api_admin_port:
            raise ValueError("API_PORT and API_ADMIN_PORT must differ")
        return self
