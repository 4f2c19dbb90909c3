"""Compile many sources in parallel, with a content-addressed cache of the IR.

Every source becomes a job whose cache key is the sha256 of everything that decides the IR: the
source text (after dialect rewrites), the text of the local headers it includes, the language, the
optimisation level, the flags, the toolchain and its version, and ncc's own headers. A finished job
writes ``<cache>/<key[:2]>/<key>.ll`` through a temporary file and ``os.replace``, so a run that is
killed keeps everything it finished, never leaves a half-written entry that counts, and a second run
of the same batch compiles nothing. Sources clang rejects are remembered as ``<key>.fail.json`` so a
re-run reports them without recompiling (``retry_failures=True`` tries them again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from ncc import plural
from ncc.fileio import current_umask, prepare_output_folder, write_output
from ncc.errors import CompilationError, InputError, NccError
from ncc.frontend.compile import (DEFAULT_TIMEOUT_S, SOURCE_EXTENSIONS, SourceText, compile_source_text,
                                  decode_source, encode_source, language_of, normalise_language, read_text_file,
                                  source_directory)
from ncc.frontend.inputs import BatchFailure, InputFile, claim_outputs, gather_inputs
from ncc.frontend.ir import IRModule
from ncc.frontend.load import IR_EXTENSIONS
from ncc.frontend.toolchain import INCLUDE_DIR, Toolchain, cc1_template, find_toolchain
from ncc.paths import cache_home
from ncc.processes import ExecutorSpec, parse_executor

logger = logging.getLogger(__name__)

#: Bumped when the way ncc builds commands changes, so old cache entries stop matching.
CACHE_FORMAT_VERSION = 3

_LOCAL_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.MULTILINE)

PerSourceFlags = Callable[[Path], Sequence[str]] | Mapping[str, Sequence[str]]
SourceTransform = Callable[[Path, str], str]


@dataclass(frozen=True)
class BatchEntry:
    """A source that produced IR, and where that IR lies.

    Attributes:
        path: the source file.
        ir_path: the cached ``.ll`` file.
        from_cache: True when no compiler ran for it in this batch.
        language, flags, toolchain, toolchain_version, source_sha256: provenance for the IRModule.
        output_path: the copy written under ``output_dir``, if one was asked for.
    """

    path: str
    ir_path: Path
    from_cache: bool
    language: str
    flags: tuple[str, ...]
    toolchain: str
    toolchain_version: str
    source_sha256: str
    output_path: Path | None = None

    def module(self) -> IRModule:
        """Read the IR back as an IRModule with its provenance."""
        return IRModule(text=self.ir_path.read_text(errors="surrogateescape"), name=Path(self.path).stem,
                        source_path=self.path, language=self.language, toolchain=self.toolchain,
                        toolchain_version=self.toolchain_version, flags=self.flags,
                        source_sha256=self.source_sha256)


@dataclass
class BatchResult:
    """What a batch produced.

    Attributes:
        entries: one per source that has IR, in input order.
        failures: one per source without IR, in input order.
        compiled: how many sources a compiler ran for in this batch.
        cache_hits: how many came from the cache (IR or a remembered failure).
        compile_seconds: wall time of each compiler run in this batch.
        elapsed_s: wall time of the whole batch.
    """

    entries: list[BatchEntry] = field(default_factory=list)
    failures: list[BatchFailure] = field(default_factory=list)
    compiled: int = 0
    cache_hits: int = 0
    compile_seconds: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def total(self) -> int:
        """Number of sources in the batch."""
        return len(self.entries) + len(self.failures)

    @property
    def success_rate(self) -> float:
        """Fraction of sources with IR (1.0 for an empty batch)."""
        return len(self.entries) / self.total if self.total else 1.0

    @property
    def ir_paths(self) -> list[Path]:
        """The cached ``.ll`` file of every successful source, in input order."""
        return [entry.ir_path for entry in self.entries]

    def modules(self) -> Iterator[IRModule]:
        """The IRModules, read lazily from the cache one at a time."""
        for entry in self.entries:
            yield entry.module()

    def failure_reasons(self, top: int = 10) -> list[tuple[str, int]]:
        """The most common failure reasons (first clang error with file names and positions removed)."""
        return Counter(_reason_category(failure.reason) for failure in self.failures).most_common(top)

    def summary(self) -> str:
        """One line: counts, rate, cache use and timing."""
        mean_ms = 1000 * sum(self.compile_seconds) / len(self.compile_seconds) if self.compile_seconds else 0.0
        return (f"{len(self.entries)}/{self.total} compiled ({100 * self.success_rate:.1f} %), "
                f"{len(self.failures)} failed; {plural(self.compiled, 'compiler run')} ({mean_ms:.0f} ms mean), "
                f"{plural(self.cache_hits, 'cache hit')}; {self.elapsed_s:.1f} s")


def _reason_category(reason: str) -> str:
    text = re.sub(r"^.*?(error|warning): ", "", reason)
    text = re.sub(r"'[^']*'", "'…'", text)
    return text.strip()[:120]


def expand_inputs(inputs: Iterable[str | os.PathLike],
                  extensions: Iterable[str] = (*SOURCE_EXTENSIONS, *IR_EXTENSIONS)) -> list[Path]:
    """Expand files, directories (searched recursively) and glob patterns into a file list.

    Files are kept when their extension is in ``extensions``; the result is sorted within each input
    and free of duplicates (see :func:`ncc.frontend.inputs.gather_inputs`, which lists the problems
    instead of raising).

    Returns:
        The files, in input order.

    Raises:
        InputError: the first input that is missing, a file of another extension, or a directory or
            pattern with no file to read.
    """
    found = gather_inputs(inputs, extensions)
    if found.problems:
        raise InputError(found.problems[0].reason, found.problems[0].path)
    return found.paths


_NCC_HEADERS_DIGEST: str | None = None


def _ncc_headers_digest() -> str:
    """sha256 over ncc's own headers (the OpenCL shim, the POJ-104 prelude, suite headers)."""
    global _NCC_HEADERS_DIGEST
    if _NCC_HEADERS_DIGEST is None:
        digest = hashlib.sha256()
        for header in sorted(INCLUDE_DIR.rglob("*.h")):
            digest.update(str(header.relative_to(INCLUDE_DIR)).encode())
            digest.update(header.read_bytes())
        _NCC_HEADERS_DIGEST = digest.hexdigest()
    return _NCC_HEADERS_DIGEST


def local_include_digests(text: str, directory: Path | None, limit: int = 256) -> list[tuple[str, str]]:
    """(name, sha256) of the files that ``#include "..."`` pulls in from next to the source, recursively.

    Only headers that exist relative to the including file are followed; system headers and headers
    found through ``-I`` are not (the flags are part of the cache key instead).
    """
    if directory is None:
        return []
    found: list[tuple[str, str]] = []
    visited: set[Path] = set()
    pending = [(name, directory) for name in _LOCAL_INCLUDE.findall(text)]
    while pending and len(visited) < limit:
        name, base = pending.pop(0)
        candidate = (base / name).resolve()
        if candidate in visited or not candidate.is_file():
            continue
        visited.add(candidate)
        data = candidate.read_bytes()
        found.append((name, hashlib.sha256(data).hexdigest()))
        pending.extend((child, candidate.parent) for child in _LOCAL_INCLUDE.findall(decode_source(data)))
    return found


def cache_key(source: SourceText, opt_level: int | str, flags: Sequence[str], toolchain: Toolchain) -> str:
    """The content address of one compile: sha256 of everything that decides the IR."""
    directory = source_directory(source.path) if source.path is not None else None
    material = {
        "format": CACHE_FORMAT_VERSION,
        "source": source.sha256,
        "includes": local_include_digests(source.text, directory),
        "language": source.language,
        "opt_level": str(opt_level),
        "flags": list(flags),
        "toolchain": [toolchain.kind, toolchain.version],
        "ncc_headers": _ncc_headers_digest(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class _Job:
    """One compile, as sent to a worker process."""

    index: int
    source: SourceText
    opt_level: int | str
    flags: tuple[str, ...]
    toolchain: Toolchain
    ir_path: Path
    failure_path: Path
    timeout_s: float


def _run_job(job: _Job) -> tuple[int, bool, str, str, float, tuple[str, ...]]:
    """Compile one job and store the result in the cache.

    Returns:
        (index, succeeded, reason, diagnostics, seconds, full clang arguments).
    """
    started = time.perf_counter()
    if _valid_cache_entry(job.ir_path):  # another batch sharing the cache finished it since this one was planned
        return job.index, True, "", "", 0.0, ()
    try:
        module = compile_source_text(job.source, job.opt_level, job.flags, job.toolchain, job.timeout_s)
    except CompilationError as error:
        seconds = time.perf_counter() - started
        # A timeout or a stale precompiled header says nothing about the source: not remembered.
        if "timed out" not in error.message and "precompiled header" not in error.stderr:
            record = {"reason": error.message, "diagnostics": error.stderr_tail}
            _write_cache_file(job.failure_path, json.dumps(record).encode())
        return job.index, False, error.message, error.stderr_tail, seconds, ()
    except NccError as error:
        return job.index, False, error.message, "", time.perf_counter() - started, ()
    seconds = time.perf_counter() - started
    _write_cache_file(job.ir_path, encode_source(module.text))
    return job.index, True, "", "", seconds, module.flags


def _write_cache_file(path: Path, data: bytes) -> None:
    """Write a cache entry through a temporary file and ``os.replace``, without ``fsync``.

    A killed run never leaves a half-written entry under the final name; after a power cut an entry may
    be empty or cut short, which :func:`_valid_cache_entry` rejects (clang's IR ends with a newline), and
    it is compiled again. (``fsync`` cost 2-5 ms of wall time per file here, a fifth of a compile.)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _clang_arguments(toolchain: Toolchain, language: str, opt_level: int | str, flags: Sequence[str],
                          source: SourceText) -> tuple[str, ...]:
    include_flags = ("-iquote", str(source_directory(source.path))) if source.path is not None else ()
    return tuple(toolchain.compile_arguments(language, opt_level, (*include_flags, *flags)))


def _flags_for(path: Path, per_source_flags: PerSourceFlags | None) -> tuple[str, ...]:
    if per_source_flags is None:
        return ()
    if callable(per_source_flags):
        return tuple(per_source_flags(path))
    for key in (str(path), path.name, path.stem, str(path.resolve())):
        if key in per_source_flags:
            return tuple(per_source_flags[key])
    return ()


def compile_batch(sources: Iterable[str | os.PathLike | InputFile], language: str | None = None, opt_level: int | str = 0,
                  flags: Sequence[str] = (), workers: int | None = None,
                  cache_dir: str | os.PathLike | None = None, progress: bool = True,
                  per_source_flags: PerSourceFlags | None = None, source_transform: SourceTransform | None = None,
                  dialect: str | None = None, clang: str | os.PathLike | Toolchain | None = None,
                  output_dir: str | os.PathLike | None = None, retry_failures: bool = False,
                  timeout_s: float = DEFAULT_TIMEOUT_S, executor: str | ExecutorSpec | None = None) -> BatchResult:
    """Compile many source files in parallel, through the IR cache.

    One bad file never stops the batch: it is listed in ``failures`` with the reason and clang's
    diagnostics, and the other files go on.

    Args:
        sources: source files (see :func:`expand_inputs` for directories and globs), or
            :class:`ncc.frontend.inputs.InputFile` to say where each one's output goes.
        language: force a language; by default each file's extension decides.
        opt_level: 0-3 (or ``s``/``z``).
        flags: clang flags for every source.
        workers: processes to compile in (default: the CPU count); 1 compiles in this process. For a
            local Dask cluster, its worker processes; a Dask cluster at an address uses all its workers.
        cache_dir: where the IR cache lives (default ``ncc.paths.cache_home() / "ir"``).
        progress: show a tqdm progress bar.
        per_source_flags: extra flags per source, a callable ``path -> flags`` or a dict keyed by the
            path, its name or its stem.
        source_transform: ``(path, text) -> text``, applied to each source before the dialect.
        dialect: a dialect of :mod:`ncc.frontend.dialects` (e.g. ``poj104``).
        clang: as for :func:`ncc.frontend.compile.compile`.
        output_dir: also write each IR to ``output_dir``, where
            :func:`ncc.frontend.inputs.claim_outputs` puts it (``src/a.O2.c`` -> ``src/a.O2.ll``); a
            source whose output another source claims is a failure.
        retry_failures: recompile sources whose failure the cache remembers.
        timeout_s: seconds one compile may take.
        executor: where the compiles run: ``local`` (default), ``dask`` or a Dask scheduler address (see
            :func:`ncc.processes.parse_executor`); the cache, failures and results are the same. On a
            cluster at an address, ``cache_dir`` must be on a filesystem every worker shares.

    Returns:
        BatchResult with entries (cached IR paths and provenance), failures and counters.
    """
    started = time.perf_counter()
    executor = parse_executor(executor)  # a bad executor is refused before anything is read
    toolchain = find_toolchain(clang)
    cache_root = Path(cache_dir) if cache_dir is not None else cache_home() / "ir"
    if executor.kind != "local":
        cache_root = cache_root.resolve()  # workers elsewhere run in folders of their own
    items = [source if isinstance(source, InputFile) else InputFile.named(source) for source in sources]
    paths = [item.path for item in items]
    destination = Path(output_dir) if output_dir is not None else None
    claimed: dict[Path, Path] = {}
    if destination is not None:
        claimed, problems = claim_outputs(items, destination, ".ll")
        prepare_output_folder(destination)
    forced_language = normalise_language(language) if language else None
    if dialect is not None:
        from ncc.frontend.dialects import apply_dialect

    result = BatchResult()
    outcomes: dict[int, BatchEntry | BatchFailure] = {}
    jobs: list[_Job] = []
    for index, path in enumerate(paths):
        if destination is not None and path not in claimed:
            reason = next(problem.reason for problem in problems if problem.path == str(path))
            outcomes[index] = BatchFailure(str(path), reason)
            continue
        try:
            source_language = forced_language or language_of(path)
            if source_language is None:
                raise InputError(_no_language(path), str(path))
            text = decode_source(read_text_file(path))
            if source_transform is not None:
                text = source_transform(path, text)
            source = SourceText(text=text, path=path, language=source_language, name=path.stem)
            job_flags = (*flags, *_flags_for(path, per_source_flags))
            if dialect is not None:
                source, job_flags = apply_dialect(dialect, source, job_flags)
        except NccError as error:
            outcomes[index] = BatchFailure(str(path), error.message)
            continue
        key = cache_key(source, opt_level, job_flags, toolchain)
        ir_path = cache_root / key[:2] / f"{key}.ll"
        failure_path = cache_root / key[:2] / f"{key}.fail.json"
        entry_fields = dict(path=str(path), ir_path=ir_path, language=source.language, toolchain=toolchain.name,
                            toolchain_version=toolchain.version, source_sha256=source.sha256,
                            flags=_clang_arguments(toolchain, source.language, opt_level, job_flags, source))
        if _valid_cache_entry(ir_path):
            outcomes[index] = BatchEntry(from_cache=True, **entry_fields)
            result.cache_hits += 1
        elif failure_path.is_file() and not retry_failures:
            record = json.loads(failure_path.read_text())
            outcomes[index] = BatchFailure(str(path), record["reason"], record.get("diagnostics", ""))
            result.cache_hits += 1
        else:
            outcomes[index] = BatchEntry(from_cache=False, **entry_fields)
            jobs.append(_Job(index, source, opt_level, tuple(job_flags), toolchain, ir_path, failure_path,
                             timeout_s))

    _prepare_precompiled_headers(jobs)
    if jobs:
        logger.info("compiling %d of %d sources (%d cached) with %s", len(jobs), len(paths),
                    result.cache_hits, toolchain.version)
    for index, succeeded, reason, diagnostics, seconds in _execute(jobs, workers, progress, executor, cache_root):
        result.compiled += 1
        result.compile_seconds.append(seconds)
        if not succeeded:
            outcomes[index] = BatchFailure(str(paths[index]), reason, diagnostics)

    for index in range(len(paths)):
        outcome = outcomes[index]
        if isinstance(outcome, BatchFailure):
            result.failures.append(outcome)
            continue
        if destination is not None:
            output_path = claimed[paths[index]]
            write_output(output_path, outcome.ir_path.read_bytes(), destination)
            outcome = BatchEntry(**{**outcome.__dict__, "output_path": output_path})
        result.entries.append(outcome)
    result.elapsed_s = time.perf_counter() - started
    logger.info("batch: %s", result.summary())
    return result


def _no_language(path: Path) -> str:
    if path.suffix.lower() in IR_EXTENSIONS:
        return "already LLVM IR: ncc graph and ncc embed read it as it is"
    return (f"cannot tell the language from the extension {path.suffix!r} "
            f"({' '.join(SOURCE_EXTENSIONS)}; or give --language)")


def _prepare_precompiled_headers(jobs: list[_Job]) -> None:
    """Build the PCH and find the ``-cc1`` template of each distinct setting once, before the workers fork."""
    from ncc.frontend.compile import _use_precompiled_headers, _without_quote_include_dirs

    seen: set[tuple] = set()
    for job in jobs:
        setting = (job.source.language, str(job.opt_level), _without_quote_include_dirs(job.flags), job.toolchain)
        if setting not in seen and len(seen) < 8:
            seen.add(setting)
            flags = _use_precompiled_headers(job.toolchain, job.source.language, job.opt_level, job.flags,
                                             job.timeout_s)
            if job.toolchain.kind == "ziglang" and job.source.language in ("c", "c++"):
                cc1_template(job.toolchain, job.source.language, job.opt_level, flags)  # the workers inherit it


def _valid_cache_entry(ir_path: Path) -> bool:
    """A finished cache entry: present, non-empty and ending in a newline as clang writes it."""
    try:
        size = ir_path.stat().st_size
        if size == 0:
            return False
        with ir_path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"
    except OSError:
        return False


def _execute(jobs: list[_Job], workers: int | None, progress: bool, executor: str | ExecutorSpec | None,
             cache_root: Path) -> Iterator[tuple[int, bool, str, str, float]]:
    """Run the jobs on the executor, yielding each outcome as it finishes."""
    if not jobs:
        return
    from tqdm import tqdm

    from ncc.processes import JobFailed, run_jobs

    outcomes = run_jobs(_run_job, jobs, workers=workers, executor=executor, shared_paths=[cache_root])
    with tqdm(total=len(jobs), desc="compile", unit="file", disable=not progress) as bar:
        for position, outcome in outcomes:
            if isinstance(outcome, JobFailed):
                index, succeeded, reason, diagnostics, seconds = jobs[position].index, False, outcome.reason, "", 0.0
            else:
                index, succeeded, reason, diagnostics, seconds, _ = outcome
            bar.update(1)
            yield index, succeeded, reason, diagnostics, seconds
