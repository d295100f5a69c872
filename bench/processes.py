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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

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


@dataclass
class Children:
    """The children of one stage; ``with Children(logs) as children:`` stops them all."""

    logs: Path
    running: list[Child] = field(default_factory=list)
    # Peak resident memory (KiB) of every child stopped so far, by child name.
    peaks_kib: dict[str, int] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)

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
        repository's root unless another checkout's code is to run)."""
        command = [PYTHON, *args] if python else list(args)
        log_path = self.logs / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        child = Child(name=name, process=process, log_path=log_path, role=role)
        self.running.append(child)
        self.roles[name] = role
        return child

    def stop(self, child: Child, *, sig: int = signal.SIGTERM) -> int | None:
        """Record the child's peak memory, then stop it (and its group); its exit code."""
        peak = child.peak_rss_kib()
        if peak is not None:
            self.peaks_kib[child.name] = max(peak, self.peaks_kib.get(child.name, 0))
        if child in self.running:
            self.running.remove(child)
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, sig)
            try:
                child.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.process.wait()
        return child.process.returncode

    def stop_all(self) -> None:
        # Newest first: the API before the workers it depends on, as stack.py does.
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
