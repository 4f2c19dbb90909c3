"""Process pools whose workers end when the process that started them dies (``kill -9`` included)."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

_PR_SET_PDEATHSIG = 1


def _exit_with_parent(parent: int) -> None:
    """Ask the kernel to kill this process when its parent dies (Linux), else poll for it in a thread."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) == 0:
                if os.getppid() != parent:  # the parent died before prctl took hold
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="ncc-parent-watch", daemon=True).start()


def _initialise(parent: int, initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    _exit_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def process_pool(workers: int, start: str = "fork", initializer: Callable[..., Any] | None = None,
                 initargs: tuple = ()) -> concurrent.futures.ProcessPoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` processes that die with this one.

    Args:
        start: ``fork`` (where there is one: workers inherit the imported modules, scripts need no
            ``__main__`` guard; else ``spawn``) or ``spawn``.
        initializer, initargs: run in every worker after it is tied to this process.
    """
    if start == "fork" and "fork" not in multiprocessing.get_all_start_methods():
        start = "spawn"
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context(start), initializer=_initialise,
        initargs=(os.getpid(), initializer, initargs))
