"""A real, single-node Apache Kafka 4.x (KRaft) for development and tests, without Docker.

    python -m harness.kafka.local_kafka fetch            # jars into the cache, nothing else
    python -m harness.kafka.local_kafka run [--port N] [--security sasl_ssl]
                                                         # start, print the bootstrap address,
                                                         # stop cleanly on SIGTERM / Ctrl-C

Two security modes (:mod:`harness.kafka.broker_config`). ``plaintext``, the default: one
PLAINTEXT listener. ``sasl_ssl``: TLS and SCRAM-SHA-512 only, a CA and certificate and one
user per principal of :mod:`provisioning.acls` made at each start (``credentials.json``,
mode 0600), the authorizer denying by default; ``admin`` then makes the topics and ACLs
(:mod:`harness.kafka.secure_plane`).

No JVM may outlive its owner: the broker runs in its own process group, is asked to stop with
SIGTERM (and killed if it does not within the grace period), and the kernel sends it SIGTERM
by itself if the owning process dies without cleaning up (``PR_SET_PDEATHSIG``), which covers
an interrupted or killed test run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from harness.kafka.broker_config import BrokerPorts, Security, write_server_properties
from harness.kafka.credentials import BrokerCredentials
from harness.ports import free_port
from messaging import KafkaConnection, kafka_options
from provisioning.acls import ADMIN

HERE = Path(__file__).resolve().parent
KAFKA_VERSION = "4.1.1"  # keep equal to <kafka.version> in pom.xml
# What kafka-server-start.sh gives a broker: a fixed 1 GiB heap and G1 tuned for short pauses.
# A smaller heap spent a draining benchmark's broker CPU on concurrent marking.
HEAP_OPTS = ["-Xms1g", "-Xmx1g"]
JVM_OPTS = [
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
    # Two cores: a parallel JIT and GC sized for more would only contend.
    "-XX:ActiveProcessorCount=2",
]
STOP_GRACE_SECONDS = 20.0
_PR_SET_PDEATHSIG = 1


def cache_dir() -> Path:
    root = os.environ.get("DEVICE_BINDING_CACHE") or str(Path.home() / ".cache" / "device-binding")
    return Path(root) / "kafka" / KAFKA_VERSION


def ensure_jars(*, quiet: bool = False) -> Path:
    """Return the folder of broker jars, fetching them with Maven the first time."""
    libs = cache_dir() / "libs"
    if (libs / ".complete").exists():
        return libs
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed once to fetch the Kafka broker jars")
    libs.parent.mkdir(parents=True, exist_ok=True)
    # Copy into a scratch folder and rename at the end, so an interrupted fetch is never
    # mistaken for a complete one.
    scratch = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    command = [
        "mvn",
        "-B",
        "-q",
        "-f",
        str(HERE / "pom.xml"),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={scratch}",
        "-DincludeScope=runtime",
    ]
    if not quiet:
        print(f"fetching Apache Kafka {KAFKA_VERSION} jars with Maven into {libs}", flush=True)
    try:
        subprocess.run(command, check=True, stdout=sys.stderr)
        (scratch / ".complete").write_text(KAFKA_VERSION + "\n")
        if libs.exists():
            shutil.rmtree(libs)
        scratch.rename(libs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return libs


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64, as Kafka's own Uuid prints them.

    Never starting with '-': StorageTool would read such an id as an option (Kafka's own
    Uuid.randomUuid() draws again for the same reason).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM the broker when its parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class LocalKafka:
    """One broker+controller process on 127.0.0.1, with its data in ``workdir``."""

    def __init__(
        self, workdir: Path, *, port: int | None = None, security: Security = "plaintext"
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.controller_port = free_port()
        self.internal_port = free_port() if security == "sasl_ssl" else None
        self.security: Security = security
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "broker.log"
        # Made at each start in sasl_ssl mode (broker_config): the users' passwords, the CA.
        self.credentials: BrokerCredentials | None = None

    @property
    def credentials_path(self) -> Path:
        return self.workdir / "credentials.json"

    def connection(self, principal: str = ADMIN) -> KafkaConnection | None:
        """Client settings for ``principal`` on this broker; None in plaintext mode (the
        environment's, that is plaintext, apply)."""
        if self.credentials is None:
            return None
        return self.credentials.connection(principal)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        ports = BrokerPorts(self.port, self.controller_port, self.internal_port)
        config, self.credentials = write_server_properties(self.workdir, self.security, ports)
        return config

    def _java(self, libs: Path, main_class: str, *args: str) -> list[str]:
        return [
            "java",
            *HEAP_OPTS,
            *JVM_OPTS,
            f"-Dlog4j2.configurationFile={HERE / 'log4j2.yaml'}",
            "-cp",
            f"{libs}/*",
            main_class,
            *args,
        ]

    def start(self, *, timeout: float = 120.0) -> None:
        libs = ensure_jars()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A fresh log dir each start: the data of a previous run belongs to a different
        # cluster id and would refuse to load.
        shutil.rmtree(self.workdir / "data", ignore_errors=True)
        config = self._write_config()
        users = self.credentials.scram_arguments() if self.credentials else []
        formatted = subprocess.run(
            self._java(
                libs,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                new_cluster_id(),
                "-c",
                str(config),
                *users,
            ),
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        if formatted.returncode != 0:
            output = formatted.stdout.decode(errors="replace")
            raise RuntimeError(f"formatting Kafka storage failed:\n{output}")
        self._launch(libs, config, timeout=timeout)

    def restart(self, *, timeout: float = 120.0) -> None:
        """Start the stopped broker again on its data: the same cluster, topics and offsets,
        as after an outage (tests of recovery use it)."""
        self.stop()
        self._launch(ensure_jars(), self.workdir / "server.properties", timeout=timeout)

    def _launch(self, libs: Path, config: Path, *, timeout: float) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(config)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        try:
            self.wait_ready(timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, *, timeout: float) -> None:
        """Block until an admin client lists topics, or fail with the broker's log tail."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"Kafka exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            if asyncio.run(_can_list_topics(self.bootstrap_servers, self.connection())):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka not ready after {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.25)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no broker log)"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def resident_memory_kib(self) -> int | None:
        if self.process is None:
            return None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None


async def _can_list_topics(bootstrap: str, connection: KafkaConnection | None) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient  # the venv has it; fetch does not need it

    # Refused connections are expected while the broker boots; they are not news.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap, connection), request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.list_topics()
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    return True


@contextlib.contextmanager
def running_kafka(workdir: Path, *, port: int | None = None) -> Iterator[str]:
    """Yield a bootstrap address: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a local broker."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = LocalKafka(workdir, port=port)
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


def _run(args: argparse.Namespace) -> int:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        print(f"KAFKA_BOOTSTRAP_SERVERS is set; using {external}, starting nothing", flush=True)
        return 0
    broker = LocalKafka(Path(args.data_dir).resolve(), port=args.port, security=args.security)
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    started = time.monotonic()
    broker.start()
    rss = broker.resident_memory_kib()
    print(
        f"kafka ready at {broker.bootstrap_servers} in {time.monotonic() - started:.1f}s"
        f" (rss {rss // 1024 if rss else '?'} MiB, log {broker.log_path})",
        flush=True,
    )
    try:
        while not stopping:
            if broker.process is None or broker.process.poll() is not None:
                print(f"kafka exited unexpectedly:\n{broker.log_tail()}", file=sys.stderr)
                return 1
            time.sleep(0.5)
    finally:
        broker.stop()
    print("kafka stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help="fetch the broker jars into the cache")
    run = commands.add_parser("run", help="start a broker and keep it running")
    run.add_argument("--port", type=int, default=9092)
    run.add_argument("--data-dir", default="var/kafka")
    run.add_argument("--security", choices=["plaintext", "sasl_ssl"], default="plaintext")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        print(ensure_jars())
        return 0
    return _run(args)


if __name__ == "__main__":
    raise SystemExit(main())
