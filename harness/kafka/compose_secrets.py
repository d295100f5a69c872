"""The compose broker's secrets (deploy/compose.yaml). DEVELOPMENT ONLY.

    python -m harness.kafka.compose_secrets [--folder var/compose/kafka] [--renew]

Writes, once, what compose mounts as its ``secrets:``: a throwaway CA and the broker's
certificate (for ``kafka``, ``localhost`` and ``127.0.0.1``), the broker's configuration
(SASL_SSL with SCRAM-SHA-512, the KRaft authorizer denying by default), the SCRAM users to
create when the storage is formatted, the healthcheck's admin login, and one password file
per principal (each service mounts its own as ``/run/secrets/kafka_sasl_password``).

Existing files are kept: the broker created its users with these passwords when it first
formatted its storage. ``--renew`` draws everything again; then ``docker compose down``
first, so that the broker formats a new storage with the new users.

The files are readable by the containers' users (they run under other uids than yours) and
the folder by you alone.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
from pathlib import Path
from string import Template

from harness.kafka.certificates import generate_broker_tls
from harness.kafka.credentials import MECHANISM, BrokerCredentials
from provisioning.acls import ADMIN

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_FOLDER = ROOT / "var" / "compose" / "kafka"
# Where compose mounts the secrets in the broker's container.
CONTAINER_SECRETS = "/run/secrets"
CONTAINER_READABLE = 0o644


def _write(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, CONTAINER_READABLE)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def broker_properties(broker_password: str) -> str:
    """The compose broker's server.properties."""
    template = Template((HERE / "compose-server.properties.template").read_text())
    return template.substitute(secrets=CONTAINER_SECRETS, broker_password=broker_password)


def scram_arguments(credentials: BrokerCredentials) -> str:
    """StorageTool's ``--add-scram`` arguments, NUL-separated for ``xargs -0``."""
    return "".join(f"{argument}\0" for argument in credentials.scram_arguments())


def admin_client_properties(password: str) -> str:
    """A Kafka tool's login as ``admin`` inside the broker's container (its healthcheck)."""
    return "\n".join(
        [
            "security.protocol=SASL_SSL",
            f"sasl.mechanism={MECHANISM}",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required"
            f' username="{ADMIN}" password="{password}";',
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={CONTAINER_SECRETS}/kafka-ca",
            "",
        ]
    )


def write_compose_secrets(folder: Path, *, renew: bool = False) -> bool:
    """Write the secrets into ``folder`` unless they are there; whether it wrote them."""
    if (folder / "credentials.json").exists() and not renew:
        return False
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    tls = generate_broker_tls(folder, host_names=("kafka",), key_mode=CONTAINER_READABLE)
    credentials = BrokerCredentials.generate(tls.ca_file)
    _write(folder / "server.properties", broker_properties(secrets.token_urlsafe(24)))
    _write(folder / "scram-arguments", scram_arguments(credentials))
    admin_login = admin_client_properties(credentials.passwords[ADMIN])
    _write(folder / "admin-client.properties", admin_login)
    for principal, password in credentials.passwords.items():
        _write(folder / f"{principal}.password", password)
    # Last: its presence says the set is complete (and gives host tools every login).
    credentials.save(folder / "credentials.json")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--renew", action="store_true", help="draw every secret again")
    args = parser.parse_args(argv)
    written = write_compose_secrets(args.folder, renew=args.renew)
    print(f"{'wrote' if written else 'kept'} the compose broker's secrets in {args.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
