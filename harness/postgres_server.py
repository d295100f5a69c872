"""A throwaway PostgreSQL server: ``initdb`` into a temporary folder, trust authentication,
127.0.0.1 and a free port only, its socket in that folder; run as the ``postgres`` user when
run as root (PostgreSQL refuses root). Stopped with ``pg_ctl stop -m fast`` when done (or at
exit), and interrupted by the kernel should its owner die without cleaning up
(``PR_SET_PDEATHSIG``); the folders of owners that died are removed at the next start."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from harness.ports import free_port
from harness.postgres_admin import admin_engine, run_blocking

# Names a server to use instead of starting one (read by harness.postgres).
URL_VARIABLE = "DATABASE_URL_TEST"

SERVER_USER = "postgres"  # the system user Debian's package creates, and the superuser
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30
_ROOT_PREFIX = "pg-test-"
_OWNER_FILE = "owner.pid"  # the test process that started the server
_PR_SET_PDEATHSIG = 1


def find_bin_dir() -> Path:
    """The newest PostgreSQL server's bin folder (Debian's layout, else ``pg_ctl`` on PATH)."""
    found = [path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    if found:
        return max(found, key=lambda bin_dir: _version_key(bin_dir.parent.name))
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and (Path(pg_ctl).parent / "initdb").exists():
        return Path(pg_ctl).parent
    raise RuntimeError(
        "no PostgreSQL server found (initdb under /usr/lib/postgresql/*/bin or on PATH); "
        f"run `bash harness/ensure_postgres.sh` or set {URL_VARIABLE}"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


class ThrowawayPostgres:
    """One ``postgres`` process on 127.0.0.1 with its cluster in a temporary folder."""

    def __init__(self, bin_dir: Path | None = None, *, durable: bool = False) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        # Tests run without durability (faster); a benchmark keeps PostgreSQL's defaults,
        # every commit flushed to disk, as production would.
        self.durable = durable
        self.root: Path | None = None
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        # As root, everything runs as the postgres user, whose groups replace root's.
        self._as_root = os.geteuid() == 0
        self._user: dict[str, Any] = {}
        self._owner = (os.getuid(), os.getgid())
        if self._as_root:
            try:
                account = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root, but there is no {SERVER_USER!r} user to run PostgreSQL"
                ) from None
            self._user = {
                "user": account.pw_uid,
                "group": account.pw_gid,
                "extra_groups": [],
            }
            self._owner = (account.pw_uid, account.pw_gid)

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "postgres.log"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def start(self, *, timeout: float = START_TIMEOUT_SECONDS) -> None:
        started = time.monotonic()
        _remove_abandoned_clusters()
        # Under /tmp, not pytest's tmp_path: its parents are closed to the postgres user.
        self.root = Path(tempfile.mkdtemp(prefix=_ROOT_PREFIX))
        atexit.register(self.stop)
        try:
            (self.root / _OWNER_FILE).write_text(f"{os.getpid()}\n")
            if self._as_root:
                os.chown(self.root, *self._owner)
            self._run(
                "initdb",
                f"--pgdata={self.data_dir}",
                f"--username={SERVER_USER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
            # A port found free can be taken before the server binds it: try another then.
            for _ in range(3):
                self.port = free_port()
                self._spawn()
                if self._wait_ready(deadline=started + timeout):
                    break
            else:
                raise RuntimeError(f"PostgreSQL could not bind a port:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def _command(self, program: str, *args: str) -> list[str]:
        return [str(self.bin_dir / program), *args]

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            self._command(program, *args),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            **self._user,
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace").strip()
            raise RuntimeError(f"{program} failed with {done.returncode}:\n{output}")

    def _spawn(self) -> None:
        assert self.root is not None
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
        }
        if not self.durable:
            # Throwaway data: durability only slows the tests down.
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        options = [f"--{name}={value}" for name, value in settings.items()]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self._command("postgres", "-D", str(self.data_dir), *options),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C meant for pytest does not reach it; teardown stops it.
                start_new_session=True,
                preexec_fn=_interrupt_when_parent_dies(os.getpid()),
                **self._user,
            )

    def _wait_ready(self, *, deadline: float) -> bool:
        """True once the server accepts connections; False if it exited for want of its port."""
        url = self.url("postgres")
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                self.process = None
                if "Address already in use" in self.log_tail():
                    return False
                raise RuntimeError(f"PostgreSQL exited at start:\n{self.log_tail()}")
            if run_blocking(lambda: _accepts_connections(url)):
                return True
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL not ready in time:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its cluster; safe to call again."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(RuntimeError):
                self._run(
                    "pg_ctl",
                    "stop",
                    f"--pgdata={self.data_dir}",
                    "--mode=fast",
                    "--wait",
                    f"--timeout={STOP_TIMEOUT_SECONDS}",
                )
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                # The server and its backends share the session (process group) it leads.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        root, self.root = self.root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
            atexit.unregister(self.stop)


def _remove_abandoned_clusters() -> None:
    """Delete the folders of runs that were killed (their servers stopped with them)."""
    for root in Path(tempfile.gettempdir()).glob(f"{_ROOT_PREFIX}*"):
        try:
            owner = int((root / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being set up
        if not _alive(owner) and not _alive(_postmaster_of(root)):
            shutil.rmtree(root, ignore_errors=True)


def _postmaster_of(root: Path) -> int:
    """The pid a server left in its data folder (it removes the file when it stops), or 0."""
    try:
        return int((root / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _interrupt_when_parent_dies(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        # Runs in the child after it became the postgres user (a change of user would clear
        # the setting) and before exec. SIGINT is PostgreSQL's fast shutdown.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return preexec


async def _accepts_connections(url: str) -> bool:
    engine = admin_engine(url, connect_timeout=2)
    try:
        async with engine.connect():
            return True
    except (OSError, TimeoutError, DBAPIError):
        return False  # refused, or "the database system is starting up"
    finally:
        await engine.dispose()
