"""Profile many programs in parallel and write their graphs annotated with the counts (``ncc profile``).

Sources go through the frontend's IR cache; each program's counts (or its failure) are cached under
``$NCC_CACHE/profiles`` keyed by the IR, the limits, the toolchain and ncc's instrumentation, so a batch that
was stopped goes on where it was, and a second run writes its graphs without running anything. A timeout is not
remembered (a loaded machine says nothing about the program). A program is checked against
``<source stem>.reference_output`` beside it when there is one (llvm-test-suite's convention: stdout, then
``exit N``), else it must exit with status 0; its arguments are the ``set(RUN_OPTIONS ...)`` of a
``CMakeLists.txt`` beside it, as the suite runs it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ncc import plural
from ncc.errors import NccError, OutputError
from ncc.execution.profile import RUNTIME_SOURCE, ExecutionError, Profile, opt_level_of, profile_module
from ncc.execution.sandbox import Limits, RunResult
from ncc.fileio import atomic_write, output_folder_error, prepare_output_folder
from ncc.frontend.compile import SOURCE_EXTENSIONS
from ncc.frontend.inputs import BatchFailure, InputFile, claim_outputs, gather_inputs
from ncc.frontend.ir import IRModule
from ncc.frontend.load import IR_EXTENSIONS, load
from ncc.frontend.toolchain import find_toolchain
from ncc.graph.builder import build
from ncc.graph.program_graph import ProgramGraph
from ncc.paths import cache_home

logger = logging.getLogger(__name__)

#: Output formats and their suffixes (those of ``ncc graph``).
FORMATS = {"json": ".json", "npz": ".npz", "networkx": ".nx.json", "pyg": ".pt", "dot": ".dot"}
#: Bumped when the instrumentation or the cached record changes.
PROFILE_CACHE_VERSION = 1
_INSTRUMENT_SOURCE = Path(__file__).resolve().parent / "instrument.py"


@dataclass(frozen=True)
class ProfiledProgram:
    """One program that was profiled: its input, output file and run figures."""

    path: str
    output: str
    summary: str
    plain_cpu_s: float
    instrumented_cpu_s: float
    violations: int
    from_cache: bool


@dataclass
class ProfileBatchResult:
    """What :func:`profile_batch` wrote and what failed (with the stage: compile, instrument, link, run,
    output, counters, graph)."""

    written: list[ProfiledProgram] = field(default_factory=list)
    failures: list[BatchFailure] = field(default_factory=list)
    stages: dict[str, str] = field(default_factory=dict)  # failed path -> stage

    @property
    def total(self) -> int:
        return len(self.written) + len(self.failures)

    def summary(self) -> str:
        cached = sum(program.from_cache for program in self.written)
        return (f"{len(self.written)}/{plural(self.total, 'program')} profiled ({cached} from the cache), "
                f"{len(self.failures)} failed")


def write_profiled_graph(graph: ProgramGraph, path: str | os.PathLike, fmt: str) -> Path:
    """Write a graph annotated by :meth:`Profile.annotate`, atomically, its counts in every format:
    json / npz / networkx in ``metadata["profile"]``; pyg as ``node_count``, ``branch_taken``,
    ``branch_not_taken`` (``[N]``) and ``edge_count`` (``[E]``) tensors; dot in the node labels."""
    from ncc.execution.profile import profile_arrays
    from ncc.graph import convert
    from ncc.graph.batch import write_graph

    path = Path(path)
    arrays = profile_arrays(graph)
    if fmt == "pyg":
        import torch

        data = convert.to_pyg(graph)
        for name, values in arrays.items():
            data[name] = torch.from_numpy(values.copy())
        return atomic_write(path, lambda stream: torch.save(data, stream), "wb")
    if fmt == "dot":
        labels = graph.node_text.copy()
        for node in np.flatnonzero(arrays["node_count"] >= 0):
            labels[node] = f"{labels[node]} ×{arrays['node_count'][node]}"
            if arrays["branch_taken"][node] >= 0:
                labels[node] += f" (T {arrays['branch_taken'][node]}, F {arrays['branch_not_taken'][node]})"
        from dataclasses import replace

        return atomic_write(path, convert.to_dot(replace(graph, node_text=labels)))
    return write_graph(graph, path, fmt)


def _cache_key(module: IRModule, level: str, limits: Limits, toolchain, reference: bytes | None,
               arguments: Sequence[str]) -> str:
    material = {"version": PROFILE_CACHE_VERSION, "ir": hashlib.sha256(module.text.encode(errors="surrogateescape")).hexdigest(),
                "level": level, "limits": [limits.time_s, limits.memory_bytes, limits.output_bytes],
                "toolchain": [toolchain.kind, toolchain.version], "arguments": list(arguments),
                "reference": hashlib.sha256(reference).hexdigest() if reference is not None else None,
                "runtime": hashlib.sha256(RUNTIME_SOURCE.read_bytes()).hexdigest(),
                "instrument": hashlib.sha256(_INSTRUMENT_SOURCE.read_bytes()).hexdigest()}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _store(profile: Profile, path: Path) -> None:
    keys = sorted(profile.successor_counts)
    arrays = {"block_offsets": np.cumsum([0] + [len(blocks) for blocks in profile.block_counts]),
              "blocks": np.concatenate(profile.block_counts) if profile.block_counts else np.zeros(0, np.int64),
              "branch_keys": np.array(keys, dtype=np.int64).reshape(-1, 2),
              "branch_offsets": np.cumsum([0] + [len(profile.successor_counts[key]) for key in keys]),
              "branches": (np.concatenate([profile.successor_counts[key] for key in keys]) if keys
                           else np.zeros(0, np.int64)),
              "runs": np.array([[run.cpu_s, run.wall_s, run.max_rss_bytes] if run is not None else [-1, -1, -1]
                                for run in (profile.plain, profile.instrumented)], dtype=np.float64)}

    def write(stream):
        np.savez(stream, **arrays)

    atomic_write(path, write, "wb")


def _restore(module: IRModule, path: Path) -> Profile:
    with np.load(path) as stored:
        offsets, blocks = stored["block_offsets"], stored["blocks"]
        block_counts = [blocks[offsets[k]:offsets[k + 1]].copy() for k in range(len(offsets) - 1)]
        keys, branch_offsets, branches = stored["branch_keys"], stored["branch_offsets"], stored["branches"]
        successors = {(int(f), int(b)): branches[branch_offsets[k]:branch_offsets[k + 1]].copy()
                      for k, (f, b) in enumerate(keys)}
        runs = [None if row[0] < 0 else RunResult("ok", 0, None, b"", b"", float(row[1]), float(row[0]), int(row[2]))
                for row in stored["runs"]]
    return Profile(module=module, block_counts=block_counts, successor_counts=successors, plain=runs[0],
                   instrumented=runs[1])


@dataclass(frozen=True)
class _Job:
    path: str
    ir_path: str
    module_fields: dict
    output: str
    fmt: str
    folder: str
    limits: Limits
    clang: str | None
    reference_path: str | None
    cache_dir: str
    arguments: tuple[str, ...] = ()


def _profile_one(job: _Job) -> tuple[str, str, str, str, str, bool, tuple[float, float, int, bool]]:
    """Worker: -> (input, output, summary, error, stage, stops the batch, (plain cpu, instrumented cpu, violations, cached))."""
    try:
        text = Path(job.ir_path).read_text(errors="surrogateescape")
        module = IRModule(text=text, **job.module_fields) if job.module_fields else \
            load(job.ir_path, name=Path(job.path).name.split(".")[0])
        if not job.module_fields:
            module = IRModule(text=module.text, name=module.name, source_path=job.path, language=module.language,
                              source_sha256=module.source_sha256)
        reference = Path(job.reference_path).read_bytes() if job.reference_path else None
        toolchain = find_toolchain(job.clang)
        level = opt_level_of(module)
        key = _cache_key(module, level, job.limits, toolchain, reference, job.arguments)
        stored = Path(job.cache_dir) / key[:2] / f"{key}.npz"
        failed = Path(job.cache_dir) / key[:2] / f"{key}.fail.json"
        from_cache = True
        if failed.is_file():
            record = json.loads(failed.read_text())
            return job.path, job.output, "", f"{job.path}: {record['reason']}", record["stage"], False, (0, 0, 0, True)
        if stored.is_file():
            result = _restore(module, stored)
        else:
            from_cache = False
            try:
                result = profile_module(module, limits=job.limits, reference=reference, arguments=job.arguments,
                                        clang=toolchain)
            except ExecutionError as error:
                if "timed out" not in error.message and "CPU time" not in error.message:
                    atomic_write(failed, json.dumps({"reason": error.message, "stage": error.stage}))
                return job.path, job.output, "", str(error), error.stage, False, (0, 0, 0, False)
            _store(result, stored)
        graph = build(module, path=job.path)
        violations = result.flow_violations()
        annotated = result.annotate(graph)
        annotated.metadata["profile"]["flow_violations"] = violations
    except ExecutionError as error:
        return job.path, job.output, "", str(error), error.stage, False, (0, 0, 0, False)
    except NccError as error:
        return job.path, job.output, "", str(error), "graph", False, (0, 0, 0, False)
    except Exception as error:  # a bug must not stop the batch; it is reported with the file
        return (job.path, job.output, "", f"{job.path}: internal error: {error.__class__.__name__}: {error}",
                "internal", False, (0, 0, 0, False))
    try:
        write_profiled_graph(annotated, job.output, job.fmt)
    except OSError as error:
        fatal = output_folder_error(error, job.folder)
        if fatal is not None:
            return job.path, job.output, "", str(fatal), "output-folder", True, (0, 0, 0, from_cache)
        return job.path, job.output, "", f"{job.output}: cannot write: {error.strerror or error}", "graph", False, \
            (0, 0, 0, from_cache)
    plain = result.plain.cpu_s if result.plain is not None else 0.0
    instrumented = result.instrumented.cpu_s if result.instrumented is not None else 0.0
    dynamic = int(sum(int(counts.sum()) for counts in result.block_counts))
    summary = f"{graph.num_nodes} nodes, {plural(dynamic, 'block execution')}, " \
              f"{plural(len(violations), 'flow violation')}"
    return job.path, job.output, summary, "", "", False, (plain, instrumented, len(violations), from_cache)


def profile_batch(inputs: Iterable[str | os.PathLike | InputFile], output_dir: str | os.PathLike, fmt: str = "json",
                  workers: int = 1, opt_level: int | str = 0, flags: Sequence[str] = (),
                  per_source_flags: Callable[[Path], Sequence[str]] | None = None, clang: str | None = None,
                  limits: Limits = Limits(), progress: bool = True,
                  cache_dir: str | os.PathLike | None = None) -> ProfileBatchResult:
    """Profile every C/C++ source or IR file and write its annotated graph to ``output_dir``.

    Args:
        inputs: files, folders or glob patterns (``.c .cpp .cc .cxx .ll .bc``).
        output_dir: where the graphs go; each mirrors its input's path (see :mod:`ncc.frontend.inputs`).
        fmt: one of :data:`FORMATS`.
        workers: processes (compiling, linking and running in parallel).
        opt_level, flags, per_source_flags, clang: how sources compile (see :func:`ncc.frontend.compile_batch`).
        limits: time, memory and output limits of every run.
        progress: show progress bars.
        cache_dir: where counts are cached (default ``$NCC_CACHE/profiles``).

    Raises:
        OutputError: the output folder takes no more files; the batch stops there.
    """
    if fmt not in FORMATS:
        raise NccError(f"unknown graph format '{fmt}' (choose from {', '.join(FORMATS)})")
    arguments = [item for item in inputs if not isinstance(item, InputFile)]
    extensions = tuple(extension for extension in (*SOURCE_EXTENSIONS, *IR_EXTENSIONS) if extension != ".cl")
    found = gather_inputs(arguments, extensions, what="C/C++ source or IR file")
    files = [item for item in inputs if isinstance(item, InputFile)] + found.files
    result = ProfileBatchResult(failures=list(found.problems))
    outputs, clashes = claim_outputs(files, output_dir, FORMATS[fmt])
    result.failures.extend(clashes)
    for failure in (*found.problems, *clashes):
        result.stages[failure.path] = "input"
    if not outputs:
        return result
    prepare_output_folder(output_dir)
    files = [item for item in files if item.path in outputs]
    sources = [item.path for item in files if item.path.suffix.lower() in SOURCE_EXTENSIONS]
    ir_for: dict[Path, tuple[str, dict]] = {item.path: (str(item.path), {}) for item in files
                                            if item.path.suffix.lower() not in SOURCE_EXTENSIONS}
    if sources:
        from ncc.frontend.batch import compile_batch

        compiled = compile_batch(sources, opt_level=opt_level, flags=flags, workers=workers, clang=clang,
                                 progress=progress, per_source_flags=per_source_flags)
        for entry in compiled.entries:
            ir_for[Path(entry.path)] = (str(entry.ir_path), dict(
                name=Path(entry.path).stem, source_path=entry.path, language=entry.language,
                toolchain=entry.toolchain, toolchain_version=entry.toolchain_version, flags=entry.flags,
                source_sha256=entry.source_sha256))
        for failure in compiled.failures:
            result.failures.append(failure)
            result.stages[failure.path] = "compile"
    cache = str(Path(cache_dir) if cache_dir is not None else cache_home() / "profiles")
    jobs = [_Job(str(item.path), ir_for[item.path][0], ir_for[item.path][1], str(outputs[item.path]), fmt,
                 str(output_dir), limits, clang, _reference_path(item.path), cache, run_options(item.path))
            for item in files if item.path in ir_for]
    if jobs:
        find_toolchain(clang)  # a missing clang is one error, not one per program
        from ncc.execution.profile import _runtime_object

        _runtime_object(find_toolchain(clang))  # built once, before the workers race to build it
    if fmt == "pyg" and jobs:
        import torch  # noqa: F401  (before the workers fork)
    from tqdm import tqdm

    with tqdm(total=len(jobs), desc="profile", unit="program", disable=not progress or len(jobs) < 2) as bar:
        for path, output, summary, error, stage, fatal, figures in _run(jobs, workers):
            bar.update(1)
            if fatal:
                raise OutputError(f"{error} (stopped after {plural(len(result.written), 'program')})")
            if error:
                result.failures.append(BatchFailure(path=path, reason=error))
                result.stages[path] = stage
            else:
                result.written.append(ProfiledProgram(path, output, summary, figures[0], figures[1], figures[2],
                                                      figures[3]))
    return result


def _reference_path(path: Path) -> str | None:
    candidate = path.with_name(path.name.rsplit(".", 1)[0] + ".reference_output")
    return str(candidate) if candidate.is_file() else None


_RUN_OPTIONS = re.compile(r"^\s*set\(\s*RUN_OPTIONS\s+([^)]*)\)", re.MULTILINE)


def run_options(path: Path) -> tuple[str, ...]:
    """The command-line arguments llvm-test-suite runs a program with: ``set(RUN_OPTIONS ...)`` in the
    ``CMakeLists.txt`` of its folder (none when there is no such line)."""
    try:
        text = (Path(path).parent / "CMakeLists.txt").read_text(errors="replace")
    except OSError:
        return ()
    match = _RUN_OPTIONS.search(text)
    return tuple(shlex.split(match.group(1))) if match else ()


def _run(jobs: list[_Job], workers: int):
    """The outcome of every job as it finishes, from this process or a pool that ends with the caller."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_profile_one, jobs)
        return
    import concurrent.futures

    from ncc.processes import process_pool

    pool = process_pool(min(workers, len(jobs)))
    try:
        futures = {pool.submit(_profile_one, job): job for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            job = futures[future]
            try:
                yield future.result()
            except Exception as error:  # a worker that died takes only its own job with it
                yield job.path, job.output, "", f"{job.path}: worker failed: {error}", "internal", False, (0, 0, 0, False)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
