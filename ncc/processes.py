"""Where batch work runs: process pools whose workers end when the process that started them dies
(``kill -9`` included), and :func:`run_jobs`, which runs a batch on that pool or on a Dask cluster."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import concurrent.futures

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
                 initargs: tuple = ()) -> "concurrent.futures.ProcessPoolExecutor":
    """A ``ProcessPoolExecutor`` of ``workers`` processes that die with this one.

    Args:
        start: ``fork`` (where there is one: workers inherit the imported modules, scripts need no
            ``__main__`` guard; else ``spawn``) or ``spawn``.
        initializer, initargs: run in every worker after it is tied to this process.
    """
    import concurrent.futures  # here, not at the top: a one-file batch never pays for them
    import multiprocessing

    if start == "fork" and "fork" not in multiprocessing.get_all_start_methods():
        start = "spawn"
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context(start), initializer=_initialise,
        initargs=(os.getpid(), initializer, initargs))


# ------------------------------------------------------------------------------------------ executors
#
# Batch work (compiles, graphs) runs as a list of jobs through one function, run_jobs, on one of two
# engines: ``local``, the process pool above (one machine), or ``dask``, a Dask distributed cluster (a
# local one started here, or one already running at an address). Jobs go to Dask in chunks that shrink as
# the batch goes (dask_chunks), so that the engine's cost per task (~3 ms on 2 loaded cores) stays small
# beside the work of a chunk and no worker idles at the end; every job's outcome comes back to the caller,
# which keeps the cache, the failure list and the progress bar exactly as with the local pool.

#: Accepted forms of an executor, for messages.
EXECUTOR_FORMS = "local, dask (a local Dask cluster of --workers processes), or a Dask scheduler address " \
                 "(tcp://host:8786, dask://host:8786)"


@dataclass(frozen=True)
class ExecutorSpec:
    """Where batch jobs run.

    Attributes:
        kind: ``local`` (this machine's process pool) or ``dask``.
        address: the Dask scheduler to connect to; None starts a local Dask cluster.
    """

    kind: str = "local"
    address: str | None = None

    def __str__(self) -> str:
        return self.address or self.kind


class JobFailed:
    """The outcome of a job whose function raised, or whose worker died: a one-line reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self) -> str:
        return f"JobFailed({self.reason!r})"


def parse_executor(spec: str | ExecutorSpec | None) -> ExecutorSpec:
    """``local`` / ``dask`` / a scheduler address -> ExecutorSpec; NccError names the accepted forms.

    None means ``$NCC_EXECUTOR`` when that is set, else ``local``: so a batch deep inside a task (the
    compiles of ``ncc reproduce classifyapp``) goes to a cluster too. ``dask`` connects to
    ``$DASK_SCHEDULER_ADDRESS`` when that is set (as Dask's own tools do), else starts a local cluster.
    """
    from ncc.errors import NccError

    if isinstance(spec, ExecutorSpec):
        return spec
    text = (spec or os.environ.get("NCC_EXECUTOR") or "local").strip()
    lowered = text.lower()
    if lowered == "local":
        return ExecutorSpec("local")
    if lowered == "dask":
        address = os.environ.get("DASK_SCHEDULER_ADDRESS") or None
        return ExecutorSpec("dask", address)
    if lowered.startswith("dask://"):
        return ExecutorSpec("dask", "tcp://" + text[len("dask://"):])
    if lowered.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
        return ExecutorSpec("dask", text)
    if lowered == "ray" or lowered.startswith("ray://"):
        raise NccError(f"executor {text!r}: ncc runs batches on Dask, not Ray; use {EXECUTOR_FORMS}")
    raise NccError(f"unknown executor {text!r}; use {EXECUTOR_FORMS}")


def run_jobs(function: Callable[[Any], Any], jobs: Sequence[Any], workers: int | None = None,
             executor: str | ExecutorSpec | None = None, chunksize: int | None = None,
             shared_paths: Sequence[str | os.PathLike] = ()) -> Iterator[tuple[int, Any]]:
    """Run ``function`` over ``jobs`` and yield ``(position, outcome)`` as each finishes.

    An outcome is what ``function`` returned, or a :class:`JobFailed` when it raised or its worker died;
    one bad job never stops the others. Closing the generator early (an error in the caller, Ctrl-C)
    cancels what has not run.

    Args:
        function: a module-level function (it is pickled by name and run in other processes).
        jobs: its arguments, one per job (picklable).
        workers: local processes (default: the CPU count; 1 runs in this process) or, for a local Dask
            cluster, its worker processes. A Dask cluster at an address uses all of its workers.
        executor: see :func:`parse_executor` (default ``local``).
        chunksize: jobs per Dask task (default: shrinking sizes, see :func:`dask_chunks`).
        shared_paths: files or folders the jobs read or write; on a Dask cluster at an address every worker
            must see them at the same path (a shared filesystem), which is checked first.

    Raises:
        NccError: the executor cannot be used (Dask missing, no scheduler at the address, a worker that
            does not see ``shared_paths``).
    """
    spec = parse_executor(executor)
    if not jobs:
        return iter(())
    if spec.kind == "dask":
        client = dask_client(spec, workers)  # here, not in the generator: a bad executor fails at once
        if spec.address and shared_paths:
            _check_shared_paths(client, shared_paths)
        return _run_dask(function, jobs, client, chunksize)
    return _run_local(function, jobs, workers)


def _run_local(function: Callable[[Any], Any], jobs: Sequence[Any], workers: int | None) -> Iterator[tuple[int, Any]]:
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        for position, job in enumerate(jobs):
            try:
                yield position, function(job)
            except Exception as error:  # noqa: BLE001 - the job's failure, reported as its outcome
                yield position, JobFailed(_describe(error))
        return
    import concurrent.futures.process

    with process_pool(workers) as pool:
        futures = {pool.submit(function, job): position for position, job in enumerate(jobs)}
        try:
            for future in concurrent.futures.as_completed(futures):
                try:
                    outcome = future.result()
                except concurrent.futures.process.BrokenProcessPool as error:  # a worker died: its job with it
                    outcome = JobFailed(f"worker failed: {_describe(error)}")
                except Exception as error:  # noqa: BLE001 - the job's failure, reported as its outcome
                    outcome = JobFailed(_describe(error))
                yield futures[future], outcome
        finally:
            for future in futures:
                future.cancel()


def _describe(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(str(message).split())


def _run_chunk(function: Callable[[Any], Any], chunk: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """One Dask task: the jobs of a chunk, one after the other, each failure caught on its own."""
    outcomes = []
    for position, job in chunk:
        try:
            outcomes.append((position, function(job)))
        except Exception as error:  # noqa: BLE001
            outcomes.append((position, JobFailed(_describe(error))))
    return outcomes


_DASK_CLIENTS: dict[tuple, Any] = {}
_DASK_LOCK = threading.Lock()


def dask_client(spec: ExecutorSpec, workers: int | None = None) -> Any:
    """A ``distributed.Client`` for ``spec``, made once per process and kept for later batches.

    A local cluster has ``workers`` worker processes (default: the CPU count) of one thread each, no
    dashboard, and ends with this process.
    """
    from ncc.errors import NccError

    try:
        import distributed
    except ImportError:
        raise NccError("executor dask needs Dask's distributed scheduler: pip install 'ncc[cluster]'") from None
    workers = max(1, workers or os.cpu_count() or 1)
    key = (spec.address,) if spec.address else (None, workers)
    import logging

    # Dask logs every scheduler and worker event at INFO on its own loggers; ncc's batches say what they do
    # through their progress bars and summaries, so only Dask's warnings and errors go through.
    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.worker",
                 "distributed.core", "distributed.http.proxy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with _DASK_LOCK:
        client = _DASK_CLIENTS.get(key)
        if client is not None and client.status == "running":
            return client
        try:
            if spec.address:
                client = distributed.Client(spec.address, set_as_default=False)  # timeout: Dask's config (30 s)
            else:
                cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                   dashboard_address=":0", silence_logs=logging.ERROR)
                client = distributed.Client(cluster, set_as_default=False)
        except (OSError, TimeoutError) as error:
            where = spec.address or "a local cluster"
            raise NccError(f"cannot reach the Dask scheduler at {where}: {_describe(error)}") from None
        _DASK_CLIENTS[key] = client
        return client


def close_dask_clients() -> None:
    """Close the Dask clients (and the local clusters) this process made."""
    with _DASK_LOCK:
        clients = list(_DASK_CLIENTS.values())
        _DASK_CLIENTS.clear()
    for client in clients:
        cluster = client.cluster
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        except Exception:  # noqa: BLE001 - shutting down; nothing left to report to
            pass


atexit.register(close_dask_clients)


def _check_shared_paths(client: Any, paths: Sequence[str | os.PathLike]) -> None:
    """Every worker sees each path (a folder through a token file written here, a file as it is)."""
    from ncc.errors import NccError

    tokens = []
    for path in paths:
        path = Path(path).resolve()
        if path.is_dir() or not path.exists():
            path.mkdir(parents=True, exist_ok=True)
            token = path / f".ncc-visible-{uuid.uuid4().hex}"
            token.write_text("")
            tokens.append((str(path), token))
        else:
            tokens.append((str(path), path))
    try:
        seen = client.run(_visible, [str(token) for _, token in tokens])
    finally:
        for path, token in tokens:
            if token.name.startswith(".ncc-visible-"):
                token.unlink(missing_ok=True)
    for worker, answers in sorted(seen.items()):
        for (path, _), visible in zip(tokens, answers):
            if not visible:
                raise NccError(f"Dask worker {worker} does not see {path}: the cache and output folders must be on "
                               "a filesystem every worker shares, at the same path")


def _visible(paths: list[str]) -> list[bool]:
    return [os.path.exists(path) for path in paths]


#: Most jobs in one Dask task: a few seconds of compiling, so that even a cluster of thousands of cores
#: sends its scheduler no more tasks a second than it handles (~1 ms each, see benchmarks/README.md).
MAX_CHUNK = 256


def dask_chunks(jobs: int, threads: int, chunksize: int | None = None) -> list[int]:
    """How many jobs each Dask task gets, in the order they are sent.

    ``chunksize`` fixes it; by default the sizes shrink as the batch goes ("guided" scheduling): each task
    takes the jobs left divided by twice the worker threads (at most :data:`MAX_CHUNK`), so the first tasks
    are large (few tasks for the scheduler) and the last ones single jobs (no worker idles while another
    finishes a long chunk).
    """
    sizes = []
    left = jobs
    while left > 0:
        size = chunksize or max(1, min(MAX_CHUNK, -(-left // (2 * threads))))
        size = min(size, left)
        sizes.append(size)
        left -= size
    return sizes


def _run_dask(function: Callable[[Any], Any], jobs: Sequence[Any], client: Any,
              chunksize: int | None) -> Iterator[tuple[int, Any]]:
    import distributed

    threads = max(1, sum(client.nthreads().values()))
    items = list(enumerate(jobs))
    chunks, start = [], 0
    for size in dask_chunks(len(items), threads, chunksize):
        chunks.append(items[start:start + size])
        start += size
    futures = client.map(_run_chunk, [function] * len(chunks), chunks, pure=False)
    by_future = dict(zip(futures, chunks))
    try:
        for future in distributed.as_completed(futures, loop=client.loop):
            try:
                outcomes = future.result()
            except Exception as error:  # noqa: BLE001 - a worker died more often than Dask retries
                outcomes = [(position, JobFailed(f"worker failed: {_describe(error)}"))
                            for position, _ in by_future[future]]
            yield from outcomes
    finally:
        client.cancel([future for future in futures if not future.done()])
