"""Run a program under limits: wall and CPU time, address space, output, in its own session and folder.

The program starts in a new session (so in a process group of its own) inside a scratch folder that is also
its ``HOME`` and ``TMPDIR``. Limits: ``RLIMIT_AS``/``RLIMIT_DATA`` (memory), ``RLIMIT_FSIZE`` (any one file,
stdout and stderr included: they are files in the scratch folder), ``RLIMIT_CPU``, no core files, and the
scratch folder's total size, watched while it runs. On a timeout or too much output the whole process group is
killed; when the program ends, whatever it started and left behind in its process group or session is
killed too (a child that calls ``setsid()`` itself is beyond this reach: that would need cgroups).
"""

from __future__ import annotations

import os
import resource
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

#: Defaults of :class:`Limits`.
DEFAULT_TIME_LIMIT_S = 10.0
DEFAULT_MEMORY_LIMIT = 2 << 30
DEFAULT_OUTPUT_LIMIT = 64 << 20

_STDOUT, _STDERR = ".ncc-stdout", ".ncc-stderr"


@dataclass(frozen=True)
class Limits:
    """What a program may use.

    Attributes:
        time_s: wall-clock seconds (the CPU-time limit is one second more).
        memory_bytes: address space (``RLIMIT_AS`` and ``RLIMIT_DATA``).
        output_bytes: the most any one file may hold (stdout, stderr, files it writes), and the most the
            scratch folder may hold in all (checked every 50 ms).
    """

    time_s: float = DEFAULT_TIME_LIMIT_S
    memory_bytes: int = DEFAULT_MEMORY_LIMIT
    output_bytes: int = DEFAULT_OUTPUT_LIMIT


@dataclass(frozen=True)
class RunResult:
    """How a sandboxed run ended.

    Attributes:
        status: ``ok`` (exited, whatever its exit code), ``signal``, ``timeout``, ``output-limit`` or ``error``
            (could not start).
        exit_code: the exit status, or None when it did not exit.
        signal: the number of the signal that ended it, or None.
        stdout, stderr: what it wrote (at most ``output_bytes`` each).
        wall_s: wall-clock seconds; cpu_s: user + system CPU seconds of the program (and children it waited for).
        max_rss_bytes: its peak resident memory (the kernel counts the forked Python process before ``exec`` too,
            so a small program shows the size of the process that started it).
        reason: one line for a run that did not end with ``exit(0)``.
    """

    status: str
    exit_code: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes
    wall_s: float
    cpu_s: float
    max_rss_bytes: int
    reason: str = ""

    @property
    def succeeded(self) -> bool:
        """Exited with status 0."""
        return self.status == "ok" and self.exit_code == 0


def _set_limits(limits: Limits) -> None:
    """In the child, before exec: the resource limits."""
    memory = limits.memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes, limits.output_bytes))
    cpu = int(limits.time_s) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_sandboxed(command: Sequence[str], scratch: str | os.PathLike, limits: Limits = Limits(),
                  env: dict[str, str] | None = None, stdin: bytes | None = None) -> RunResult:
    """Run ``command`` in ``scratch`` under ``limits``; never raises for what the program does.

    Args:
        command: the program and its arguments (the program as an absolute path).
        scratch: an existing folder: the program's working folder, ``HOME`` and ``TMPDIR``.
        limits: see :class:`Limits`.
        env: extra environment variables (on top of ``PATH``, ``HOME``, ``TMPDIR``, ``LANG=C``).
        stdin: bytes for its standard input (default: none, read from ``/dev/null``).
    """
    scratch = Path(scratch)
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(scratch), "TMPDIR": str(scratch), "LANG": "C",
                   "LC_ALL": "C", **(env or {})}
    stdout_path, stderr_path = scratch / _STDOUT, scratch / _STDERR
    input_file = None
    if stdin is not None:
        input_file = tempfile.TemporaryFile()
        input_file.write(stdin)
        input_file.seek(0)
    started = time.perf_counter()
    try:
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            process = subprocess.Popen(list(command), cwd=scratch, env=environment, stdout=out, stderr=err,
                                       stdin=input_file if input_file is not None else subprocess.DEVNULL,
                                       start_new_session=True, close_fds=True,
                                       preexec_fn=lambda: _set_limits(limits))
    except OSError as error:
        return RunResult("error", None, None, b"", b"", 0.0, 0.0, 0, f"cannot start: {error.strerror or error}")
    finally:
        if input_file is not None:
            input_file.close()
    status, wait_status, usage = _wait(process, scratch, limits, started)
    wall = time.perf_counter() - started
    _end_group(process.pid)
    process.returncode = -1  # reaped by os.wait4; keeps Popen from waiting again
    stdout, stderr = _read_capped(stdout_path, limits.output_bytes), _read_capped(stderr_path, limits.output_bytes)
    cpu = usage.ru_utime + usage.ru_stime if usage is not None else 0.0
    rss = usage.ru_maxrss * 1024 if usage is not None else 0
    exit_code = signal_number = None
    if wait_status is not None:
        if os.WIFEXITED(wait_status):
            exit_code = os.WEXITSTATUS(wait_status)
        elif os.WIFSIGNALED(wait_status):
            signal_number = os.WTERMSIG(wait_status)
    if status == "timeout":
        reason = f"timed out after {limits.time_s:g} s"
    elif status == "output-limit":
        reason = f"wrote more than {_size(limits.output_bytes)}"
    elif signal_number is not None:
        status = "signal"
        reason = _signal_reason(signal_number, limits, rss)
        if signal_number == signal.SIGXFSZ:
            status, reason = "output-limit", f"wrote more than {_size(limits.output_bytes)} to one file"
        elif signal_number == signal.SIGXCPU:
            status, reason = "timeout", f"used more than {int(limits.time_s) + 1} s of CPU time"
    elif exit_code:
        reason = f"exit status {exit_code}"
    else:
        reason = ""
    return RunResult(status, exit_code, signal_number, stdout, stderr, wall, cpu, rss, reason)


def _wait(process: subprocess.Popen, scratch: Path, limits: Limits, started: float):
    """Wait for the program, killing its group on a timeout or on too much output; returns (status, wait status, rusage)."""
    pid = process.pid
    try:
        descriptor = os.pidfd_open(pid)
    except (AttributeError, OSError):
        descriptor = None
    poller = select.poll()
    if descriptor is not None:
        poller.register(descriptor, select.POLLIN)
    status = "ok"
    next_size_check = started + 0.05
    try:
        while True:
            finished, wait_status, usage = os.wait4(pid, os.WNOHANG)
            if finished:
                return status, wait_status, usage
            now = time.perf_counter()
            if status == "ok" and now - started > limits.time_s:
                status = "timeout"
                _kill_group(pid)
            elif status == "ok" and now >= next_size_check:
                next_size_check = now + 0.05
                if _folder_size(scratch, limits.output_bytes) > limits.output_bytes:
                    status = "output-limit"
                    _kill_group(pid)
            if status != "ok":
                _, wait_status, usage = os.wait4(pid, 0)
                return status, wait_status, usage
            remaining = max(0.0, min(limits.time_s - (now - started), next_size_check - now))
            if descriptor is not None:
                poller.poll(max(1, int(remaining * 1000)))
            else:
                time.sleep(min(0.005, remaining))
    finally:
        if descriptor is not None:
            os.close(descriptor)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _end_group(leader: int) -> None:
    """Kill what the program left running: its process group, and any process of its session elsewhere."""
    _kill_group(leader)
    for _ in range(50):
        left = [pid for pid in _session_members(leader)]
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)


def _session_members(leader: int) -> list[int]:
    """Live processes whose process group or session is the one ``leader`` started."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # fields after the name: state ppid pgrp session ...
        if fields[0] != b"Z" and (int(fields[2]) == leader or int(fields[3]) == leader):
            found.append(int(entry))
    return found


def _folder_size(folder: Path, stop_above: int) -> int:
    """Bytes in ``folder`` (recursively), counting no further once past ``stop_above``."""
    total = 0
    stack = [str(folder)]
    while stack and total <= stop_above:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def _read_capped(path: Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return b""


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:g} {unit}"
    return f"{count} bytes"


def _signal_reason(number: int, limits: Limits, rss: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    reason = f"killed by {name}"
    if number in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGKILL) and \
            rss >= 0.8 * limits.memory_bytes:
        reason += f" near the memory limit ({_size(limits.memory_bytes)})"
    return reason


class ScratchFolder:
    """A temporary folder removed with all it holds (even files made read-only) when the block ends."""

    def __init__(self, prefix: str = "ncc-run-", parent: str | os.PathLike | None = None):
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        remove_tree(self.path)


def remove_tree(path: Path) -> None:
    """Delete ``path``, making read-only folders writable on the way."""
    def retry(function, target, _):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            function(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=retry)
