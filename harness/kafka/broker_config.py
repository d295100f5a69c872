"""The local broker's ``server.properties``: the common settings of
``server.properties.template`` and the listeners of its security mode.

``plaintext``: one PLAINTEXT listener. ``sasl_ssl`` (listeners-sasl-ssl.properties.template):
a SASL_SSL client listener with a CA and broker certificate made here, SCRAM users whose
passwords are drawn here (:class:`BrokerCredentials`, created by StorageTool at format time),
loopback-only listeners for the broker's own traffic, and the authorizer.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Literal

from harness.kafka.certificates import generate_broker_tls
from harness.kafka.credentials import BrokerCredentials

HERE = Path(__file__).resolve().parent
Security = Literal["plaintext", "sasl_ssl"]


@dataclass(frozen=True)
class BrokerPorts:
    client: int
    controller: int
    internal: int | None  # the broker's own listener, sasl_ssl mode only


def write_server_properties(
    workdir: Path, security: Security, ports: BrokerPorts
) -> tuple[Path, BrokerCredentials | None]:
    """Write ``workdir/server.properties`` (mode 0600: it may hold the broker's password);
    in sasl_ssl mode also the TLS files and ``credentials.json``, and return the credentials."""
    credentials_path = workdir / "credentials.json"
    # A plaintext start leaves no password file of an earlier secure one behind (make demo
    # takes its presence for a SASL_SSL broker).
    credentials_path.unlink(missing_ok=True)
    values: dict[str, object] = {"port": ports.client, "controller_port": ports.controller}
    credentials = None
    if security == "sasl_ssl":
        tls = generate_broker_tls(workdir / "tls")
        credentials = BrokerCredentials.generate(tls.ca_file)
        credentials.save(credentials_path)
        values |= {
            "internal_port": ports.internal,
            "keystore_file": tls.keystore_file,
            "ca_file": tls.ca_file,
            # The broker's own password exists only in this file.
            "broker_password": secrets.token_urlsafe(24),
        }
    listeners = Template(
        (HERE / f"listeners-{security.replace('_', '-')}.properties.template").read_text()
    )
    template = Template((HERE / "server.properties.template").read_text())
    config = workdir / "server.properties"
    descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(
            template.substitute(
                listeners=listeners.substitute(values), data_dir=workdir / "data", **values
            )
        )
    return config, credentials
