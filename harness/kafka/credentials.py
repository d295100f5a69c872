"""The local SASL_SSL broker's SCRAM users: one random password per principal and broker start.

Kept in ``credentials.json`` (mode 0600) in the broker's own folder, from which the harness
hands each process the ``KAFKA_*`` variables of its role only (:meth:`environment`). Nothing
here prints or logs a password; the repr shows the user names alone.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pydantic import SecretStr

from messaging import KafkaConnection
from provisioning.acls import PRINCIPALS

MECHANISM: Final = "SCRAM-SHA-512"


@dataclass(frozen=True)
class BrokerCredentials:
    """Each principal's password on one broker, and the CA its clients trust."""

    ca_file: Path
    passwords: dict[str, str] = field(repr=False)

    @classmethod
    def generate(cls, ca_file: Path) -> BrokerCredentials:
        # URL-safe characters only: StorageTool's --add-scram syntax splits on ',' '[' ']'.
        return cls(ca_file, {name: secrets.token_urlsafe(24) for name in PRINCIPALS})

    def save(self, path: Path) -> None:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump({"ca_file": str(self.ca_file), "passwords": self.passwords}, file)

    @classmethod
    def load(cls, path: Path) -> BrokerCredentials:
        stored = json.loads(path.read_text())
        return cls(Path(stored["ca_file"]), dict(stored["passwords"]))

    def scram_arguments(self) -> list[str]:
        """StorageTool's ``--add-scram`` arguments, creating every user at format time."""
        arguments = []
        for name, password in self.passwords.items():
            arguments += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
        return arguments

    def connection(self, principal: str) -> KafkaConnection:
        """The client settings of ``principal``: SASL_SSL, SCRAM-SHA-512, this broker's CA."""
        return KafkaConnection(
            security_protocol="SASL_SSL",
            sasl_mechanism=MECHANISM,
            sasl_username=principal,
            sasl_password=SecretStr(self.passwords[principal]),
            ssl_cafile=str(self.ca_file),
        )

    def environment(self, principal: str) -> dict[str, str]:
        """The ``KAFKA_*`` variables that make a process connect as ``principal``."""
        return {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": MECHANISM,
            "KAFKA_SASL_USERNAME": principal,
            "KAFKA_SASL_PASSWORD": self.passwords[principal],
            "KAFKA_SSL_CAFILE": str(self.ca_file),
        }
