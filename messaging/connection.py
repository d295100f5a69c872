"""The Kafka connection settings every client shares (SPEC §9).

One place reads `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*` and `KAFKA_SSL_*` so that no
producer, consumer or admin client of the product can be started without them: each
builds its aiokafka keyword arguments with `kafka_options()`. Plaintext stays the local
default; production runs SASL_SSL with SCRAM-SHA-512 and one principal per role.
"""

import ssl
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
# Docker's convention for secrets given as files (compose's `secrets:`): a file named after
# the variable in lower case, /run/secrets/kafka_sasl_password for KAFKA_SASL_PASSWORD, so
# that the password is never in the container's environment as compose shows it. Read only
# when the folder exists (pydantic-settings warns otherwise); the environment wins.
SECRETS_DIR = Path("/run/secrets")


class KafkaConnection(BaseSettings):
    """The environment's `KAFKA_*` connection variables (the bootstrap servers stay with
    each process's own settings: tests and tools point clients at other brokers)."""

    model_config = SettingsConfigDict(
        env_prefix="KAFKA_",
        frozen=True,
        extra="ignore",
        secrets_dir=SECRETS_DIR if SECRETS_DIR.is_dir() else None,
    )

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str = ""
    # A SecretStr: the password never shows in a settings dump, a repr or a log line.
    sasl_password: SecretStr = SecretStr("")
    ssl_cafile: str = ""
    ssl_certfile: str = ""  # a client certificate, for brokers that ask for one
    ssl_keyfile: str = ""

    def check(self) -> "KafkaConnection":
        """Refuses incomplete settings at start-up (outside pydantic's validation, whose
        error would echo the raw input, the password with it)."""
        if self.uses_sasl and not (self.sasl_username and self.sasl_password.get_secret_value()):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ValueError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together")
        return self

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_tls:
            return None
        # The broker's certificate is checked against KAFKA_SSL_CAFILE (or the system's
        # roots when it is empty), host name included: TLS without it would let anyone on
        # the path present their own certificate.
        context: ssl.SSLContext = create_ssl_context(
            cafile=self.ssl_cafile or None,
            certfile=self.ssl_certfile or None,
            keyfile=self.ssl_keyfile or None,
        )
        return context

    def client_options(self) -> dict[str, Any]:
        """The aiokafka keyword arguments for a producer, consumer or admin client."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        context = self.ssl_context()
        if context is not None:
            options["ssl_context"] = context
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return options


@lru_cache(maxsize=1)
def _environment_connection() -> KafkaConnection:
    return KafkaConnection().check()


def kafka_options(
    bootstrap_servers: str, connection: KafkaConnection | None = None
) -> dict[str, Any]:
    """`bootstrap_servers` plus the security settings (the environment's unless given)."""
    chosen = connection.check() if connection is not None else _environment_connection()
    return {"bootstrap_servers": bootstrap_servers, **chosen.client_options()}
