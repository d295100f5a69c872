"""The processes a benchmark starts, and the promise that none outlives it.

Every child runs in its own process group with its output in a log file, is told by the
kernel to stop when the benchmark dies without cleaning up (``PR_SET_PDEATHSIG``), and is
stopped by :class:`Children` on the way out: SIGTERM, then SIGKILL after a grace period.
SIGTERM to the benchmark itself is turned into the same unwinding as Ctrl-C
(:func:`stop_on_sigterm`).

Peak memory: the kernel keeps each process's high-water mark of resident memory
(``VmHWM`` in ``/proc/<pid>/status``); it is read just before the child is asked to stop,
so it covers the whole life of the process, load included.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

from harness.cpu import descendants

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
STOP_GRACE_SECONDS = 25.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the benchmark process dies; and SIGINT
    back to its default, which a benchmark started in the background by a shell inherits as
    ignored (py-spy is stopped with SIGINT)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def status_kib(pid: int, field_name: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM``, ``VmRSS``); None if gone."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_folder(root: Path) -> Path:
    """A fresh folder for this run's databases, Kafka data and logs: ``root/<time>-<pid>``.

    Folders of earlier runs whose process has ended are removed first (each holds a
    50,000-challenge store and a broker's data); those of runs still going, a stage started
    alone beside ``make bench`` say, are left alone.
    """
    root.mkdir(parents=True, exist_ok=True)
    for folder in root.iterdir():
        _, _, pid = folder.name.rpartition("-")
        if folder.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    folder.mkdir()
    return folder


def stop_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so every ``finally`` stops its children."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    # What we are to report as this child's kind in the memory table ("api", "worker", ...).
    role: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def peak_rss_kib(self) -> int | None:
        return status_kib(self.pid, "VmHWM")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass(frozen=True)
class _Command:
    args: tuple[str, ...]
    env: Mapping[str, str]
    role: str
    python: bool
    cwd: Path


@dataclass
class Children:
    """The processes of one test or stage, by name; ``with Children(logs) as children:``
    stops them all. A name can be started again after it ended (:meth:`restart`, as a
    supervisor would after a crash); each start logs to ``<logs>/<name>.<n>.log``."""

    logs: Path
    running: list[Child] = field(default_factory=list)
    # Peak resident memory (KiB) of every child stopped so far, by child name.
    peaks_kib: dict[str, int] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    _commands: dict[str, _Command] = field(default_factory=dict)
    _by_name: dict[str, Child] = field(default_factory=dict)
    _starts: Counter[str] = field(default_factory=Counter)

    def __enter__(self) -> Children:
        self.logs.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()

    def spawn(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        role: str = "other",
        python: bool = True,
        cwd: Path = ROOT,
    ) -> Child:
        """Start ``python args...`` (or ``args`` itself if not ``python``) in ``cwd`` (the
        repository's root unless another checkout's code is to run), with ``env`` added to
        this process's environment."""
        self._commands[name] = _Command(tuple(args), dict(env or {}), role, python, cwd)
        return self.restart(name)

    def restart(self, name: str) -> Child:
        """Start ``name`` again with the command it was first given."""
        if (previous := self._by_name.get(name)) is not None and previous.alive():
            raise RuntimeError(f"{name} is still running")
        command = self._commands[name]
        self._starts[name] += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{name}.{self._starts[name]}.log"
        line = [PYTHON, *command.args] if command.python else list(command.args)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                line,
                env={**os.environ, **command.env},
                cwd=command.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        child = Child(name=name, process=process, log_path=log_path, role=command.role)
        self.running.append(child)
        self._by_name[name] = child
        self.roles[name] = command.role
        return child

    def __getitem__(self, name: str) -> Child:
        return self._by_name[name]

    def kill(self, name: str) -> None:
        """SIGKILL to the process and what it started: no drain, no offset commit, no goodbye
        to the group, as when a machine dies."""
        child = self._by_name[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.process.wait()
        if child in self.running:
            self.running.remove(child)

    def terminate(self, name: str, timeout: float = 120) -> int:
        """SIGTERM to the process alone, as an orchestrator sends it, and wait for it to
        finish draining; its exit code."""
        child = self._by_name[name]
        child.process.send_signal(signal.SIGTERM)
        code = child.process.wait(timeout=timeout)
        if child in self.running:
            self.running.remove(child)
        return code

    def stop(self, child: Child, *, sig: int = signal.SIGTERM) -> int | None:
        """Record the child's peak memory (and that of each process it started, as
        ``<name>/<n>``), then stop it: ``sig`` to it, then SIGKILL to whatever of its group
        is left after the grace; its exit code."""
        peak = child.peak_rss_kib()
        if peak is not None:
            self.peaks_kib[child.name] = max(peak, self.peaks_kib.get(child.name, 0))
        for number, pid in enumerate(sorted(descendants(child.pid)), start=1):
            peak = status_kib(pid, "VmHWM")
            if peak is not None:
                name = f"{child.name}/{number}"
                self.peaks_kib[name] = max(peak, self.peaks_kib.get(name, 0))
                self.roles[name] = child.role
        if child in self.running:
            self.running.remove(child)
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(sig)
            try:
                child.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # anything it left behind
        return child.process.returncode

    def stop_all(self) -> None:
        # Newest first: the API before the workers it depends on.
        for child in reversed(list(self.running)):
            self.stop(child)

    def check_alive(self) -> None:
        """Raise, with its log tail, if any child has exited on its own."""
        for child in self.running:
            if not child.alive():
                raise RuntimeError(
                    f"{child.name} exited with {child.process.returncode}; log {child.log_path}:"
                    f"\n{child.log_tail()}"
                )

    def peak_by_role(self) -> dict[str, int]:
        """The highest peak (KiB) among the stopped children of each role."""
        peaks: dict[str, int] = {}
        for name, kib in self.peaks_kib.items():
            role = self.roles.get(name, "other")
            peaks[role] = max(kib, peaks.get(role, 0))
        return peaks

    def logs_of(self, name: str) -> str:
        """Every start's log of ``name``, in order."""
        return "\n".join(
            path.read_text(errors="replace") for path in sorted(self.logs.glob(f"{name}.*.log"))
        )

    def count_in_logs(self, prefix: str, text: str) -> int:
        """Lines holding ``text`` in the logs of every process whose name starts with
        ``prefix`` (all its starts): how many batches the workers handled, say."""
        return sum(
            line.count(text)
            for path in self.logs.glob(f"{prefix}*.log")
            for line in path.read_text(errors="replace").splitlines()
        )


def wait_for(what: str, check: Callable[[], bool], *, timeout: float, children: Children) -> None:
    """Poll ``check()`` until true, failing early if a child died (``what`` names the wait)."""
    deadline = time.monotonic() + timeout
    while True:
        children.check_alive()
        if check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f}s")
        time.sleep(0.25)
