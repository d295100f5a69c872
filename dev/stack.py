"""``make run``: the whole product on this machine, with local defaults. DEVELOPMENT ONLY.

Starts, in order, and stops in reverse on Ctrl-C or SIGTERM:

1. Apache Kafka on 127.0.0.1:9092 (harness/kafka; none if KAFKA_BOOTSTRAP_SERVERS is set);
2. ``WORKERS`` worker processes (default 2) on SQLite under var/ (or ``DATABASE_URL``),
   after migrating the databases; their probes and metrics on ports 8001, 8002, ...; they
   seal OTP digests with ``OTP_ENCRYPTION_KEYS`` if set, else with a development key made
   on the first run in var/otp-encryption-keys (only the workers are given it);
3. the development OTP sink, which prints each OTP instead of sending an SMS;
4. the reference audit consumer (trail in var/audit.db; ``python -m audit verify``) and the
   fraud-signal consumer, unless ``CONSUMERS=0``. The audit consumer signs its checkpoints
   with a key made for this run in var/audit/ (mode 0600; the broker's data is new each
   run too), unless ``AUDIT_SIGNING_KEY_FILE`` names one;
5. the API on 127.0.0.1:8000. Its token settings are the environment's when it has them:
   with ``AUTH_JWKS_FILE`` or ``AUTH_JWKS_URL`` the API trusts that key set, with
   ``AUTH_ISSUER`` and ``AUTH_AUDIENCE`` (both required then), and no development key is
   made; without either, it trusts the development signing key in var/dev/, with
   ``AUTH_ISSUER`` and ``AUTH_AUDIENCE`` if set, else ``device-binding-dev`` and
   ``device-binding`` (what ``make token`` mints).

With ``KAFKA_SECURITY=sasl_ssl`` the broker takes TLS and SCRAM-SHA-512 only, its topics and
ACLs are made by the ``admin`` principal before anything starts, and every process connects as
its own principal (:mod:`dev.kafka_plane`); plaintext otherwise.

Mint a token with ``make token`` (development key); play the bank's app with ``make demo``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Final

from audit.signing import ensure_key_file
from dev.kafka_plane import provision_development_plane, requested_security, role_environment
from harness import devkeys
from harness.kafka import local_kafka
from harness.kafka.secure_plane import SecurePlane
from harness.stack import auth_environment, wait_for_topics, wait_until_ready
from provisioning.acls import API, AUDIT, FRAUD, SMS_GATEWAY, WORKER
from schemas import topics
from worker.otp_keyring import new_key_text

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var"

KEY_SET_VARIABLES: Final = ("AUTH_JWKS_FILE", "AUTH_JWKS_URL")
CLAIM_VARIABLES: Final = ("AUTH_ISSUER", "AUTH_AUDIENCE")
AUTH_VARIABLES: Final = (*KEY_SET_VARIABLES, *CLAIM_VARIABLES)


class AuthConfigurationError(ValueError):
    """The token settings in the environment cannot make a working API."""


def development_jwks() -> Path:
    return devkeys.ensure_keys(VAR / "dev")


def api_auth(
    environ: Mapping[str, str], make_development_jwks: Callable[[], Path] = development_jwks
) -> dict[str, str]:
    """The API's token settings: the key set ``environ`` names, with its issuer and audience;
    without one, the development key (made only then), with the issuer and audience
    ``environ`` sets or else the development ones (what ``make token`` mints by default).
    An empty variable counts as unset."""
    given = {name: environ[name] for name in AUTH_VARIABLES if environ.get(name, "").strip()}
    key_sets = [name for name in KEY_SET_VARIABLES if name in given]
    if len(key_sets) > 1:
        raise AuthConfigurationError("set one of AUTH_JWKS_FILE and AUTH_JWKS_URL, not both")
    if key_sets:
        missing = [name for name in CLAIM_VARIABLES if name not in given]
        if missing:
            # The development issuer and audience are no identity provider's: every token
            # would be refused.
            raise AuthConfigurationError(
                f"{key_sets[0]} is set, so set {' and '.join(missing)} too: the values the"
                " identity provider puts in its tokens"
            )
        return given
    return {**auth_environment(make_development_jwks()), **given}


OTP_KEYS_VARIABLE: Final = "OTP_ENCRYPTION_KEYS"


def worker_otp_keys(environ: Mapping[str, str], key_file: Path | None = None) -> dict[str, str]:
    """The workers' ``OTP_ENCRYPTION_KEYS``: the environment's, else the development key in
    ``key_file`` (var/otp-encryption-keys), made there (readable by its owner only) when
    missing and kept, so that a restart can still verify the challenges pending before."""
    given = environ.get(OTP_KEYS_VARIABLE, "").strip()
    if given:
        return {OTP_KEYS_VARIABLE: given}
    key_file = key_file or VAR / "otp-encryption-keys"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(new_key_text("dev") + "\n")
    return {OTP_KEYS_VARIABLE: key_file.read_text().strip()}


def process_environment(
    environ: Mapping[str, str], *, bootstrap: str, auth: Mapping[str, str]
) -> dict[str, str]:
    """What every process of the stack runs with (the API reads ``auth``): ``environ``, its
    token settings replaced by ``auth`` (see :func:`api_auth`), local defaults added."""
    return {
        # The OTP keys go to the workers alone (worker_otp_keys).
        **{
            name: value
            for name, value in environ.items()
            if name not in AUTH_VARIABLES and name != OTP_KEYS_VARIABLE
        },
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": environ.get(
            "DATABASE_URL", f"sqlite+aiosqlite:///{VAR / 'device-binding.db'}"
        ),
        "AUDIT_DATABASE_URL": environ.get(
            "AUDIT_DATABASE_URL", f"sqlite+aiosqlite:///{VAR / 'audit.db'}"
        ),
        **auth,
        "PYTHONUNBUFFERED": "1",
    }


def audit_checkpoint_key(environ: Mapping[str, str]) -> dict[str, str]:
    """The audit consumer's signing key: the environment's, else a new one for this run
    (the old one is replaced: its checkpoints were on the previous run's broker)."""
    if environ.get("AUDIT_SIGNING_KEY_FILE", "").strip():
        return {}
    key = VAR / "audit" / "checkpoint-signing-key.pem"
    key.unlink(missing_ok=True)
    public = ensure_key_file(key)
    return {"AUDIT_SIGNING_KEY_FILE": str(key), "AUDIT_VERIFY_KEY_FILE": str(public)}


def uses_development_key(environ: Mapping[str, str]) -> bool:
    return not any(environ.get(name, "").strip() for name in KEY_SET_VARIABLES)


def token_hint(auth: Mapping[str, str], *, development_key: bool) -> str:
    """How to get a token that the API started with ``auth`` accepts."""
    if not development_key:
        return "token: from the identity provider    demo: API_TOKEN=... make demo"
    issuer, audience = auth["AUTH_ISSUER"], auth["AUTH_AUDIENCE"]
    if (issuer, audience) == (devkeys.DEFAULT_ISSUER, devkeys.DEFAULT_AUDIENCE):
        return "token: make token    demo: make demo"
    return (
        "token: .venv/bin/python -m harness.devkeys mint --client-id bank-app-1"
        f" --issuer {issuer} --audience {audience}"
    )


def main() -> int:
    VAR.mkdir(exist_ok=True)
    try:
        auth = api_auth(os.environ)
        security = requested_security(os.environ)
    except ValueError as exc:  # AuthConfigurationError among them
        print(f"make run: {exc}", file=sys.stderr)
        return 2
    if security == "sasl_ssl" and os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        # The roles' credentials are those of the broker this command starts.
        print("make run: KAFKA_SECURITY=sasl_ssl starts its own broker;", end=" ", file=sys.stderr)
        print("unset KAFKA_BOOTSTRAP_SERVERS", file=sys.stderr)
        return 2
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = local_kafka.LocalKafka(VAR / "kafka", port=9092, security=security)
        print(f"starting Kafka ({security}) on 127.0.0.1:9092 ...", flush=True)
        broker.start()
        bootstrap = broker.bootstrap_servers
    plane: SecurePlane | None = None
    if broker is not None and broker.credentials is not None:
        plane = asyncio.run(provision_development_plane(broker.credentials, bootstrap))
        print(f"topics and ACLs provisioned as admin (credentials {broker.credentials_path})")
    env = process_environment(os.environ, bootstrap=bootstrap, auth=auth)
    otp_keys = worker_otp_keys(os.environ)
    python = sys.executable
    children: list[subprocess.Popen[bytes]] = []

    def spawn(role: str, *args: str, **extra_env: str) -> None:
        role_env = role_environment(env, plane, role)
        children.append(subprocess.Popen([python, *args], env={**role_env, **extra_env}, cwd=ROOT))

    def migrate(package: str, role: str, **extra_env: str) -> None:
        # The schema first, once, as the Kubernetes Job does: the processes only check it.
        role_env = {**role_environment(env, plane, role), **extra_env}
        subprocess.run([python, "-m", package, "migrate"], env=role_env, cwd=ROOT, check=True)

    consumers = os.environ.get("CONSUMERS", "1") != "0"
    audit_key: dict[str, str] = {}
    try:
        migrate("worker", WORKER, **otp_keys)  # 0005 seals digests of pending challenges
        if consumers:
            migrate("audit", AUDIT)
        for number in range(int(os.environ.get("WORKERS", "2"))):
            # Each worker's probes and metrics on its own port: 8001, 8002, ...
            spawn(WORKER, "-m", "worker", WORKER_HTTP_PORT=str(8001 + number), **otp_keys)
        asyncio.run(
            wait_for_topics(
                bootstrap,
                {topics.COMMANDS, topics.EVENTS, topics.REPLIES, topics.OTP_DELIVERIES},
                connection=plane.connection() if plane else None,
            )
        )
        spawn(SMS_GATEWAY, "-m", "dev.otp_sink")
        if consumers:
            audit_key = audit_checkpoint_key(os.environ)
            if "AUDIT_VERIFY_KEY_FILE" in audit_key:
                print(
                    "audit checkpoints: AUDIT_VERIFY_KEY_FILE="
                    f"{audit_key['AUDIT_VERIFY_KEY_FILE']} .venv/bin/python -m audit verify "
                    "--checkpoints",
                    flush=True,
                )
            spawn(AUDIT, "-m", "audit", **audit_key)
            spawn(FRAUD, "-m", "fraud")
        spawn(API, "-m", "api")
        try:
            # The API's probes are on its admin port (API_ADMIN_PORT, 8010), not on 8000.
            asyncio.run(wait_until_ready("http://127.0.0.1:8010/readyz", within=90))
        except TimeoutError:
            print("the API is not ready after 90 s; see the log above", file=sys.stderr)
        key_set = auth.get("AUTH_JWKS_FILE") or auth.get("AUTH_JWKS_URL")
        print(
            f"\nstack up: Kafka {bootstrap}, API http://127.0.0.1:8000, JWKS {key_set}"
            f" (issuer {auth['AUTH_ISSUER']}, audience {auth['AUTH_AUDIENCE']})\n"
            f"  {token_hint(auth, development_key=uses_development_key(os.environ))}"
            "    stop: Ctrl-C\n",
            flush=True,
        )
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    print(f"{child.args!r} exited with {child.returncode}", file=sys.stderr)
                    return 1
            if broker is not None and (broker.process is None or broker.process.poll() is not None):
                print(f"Kafka exited:\n{broker.log_tail()}", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(children):
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if broker is not None:
            broker.stop()
        print("stack stopped", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
