"""Build and write the graphs of many sources or IR files in parallel."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ncc import plural
from ncc.errors import NccError, OutputError
from ncc.fileio import output_folder_error, prepare_output_folder, write_output
from ncc.frontend.compile import SOURCE_EXTENSIONS
from ncc.frontend.inputs import BatchFailure, InputFile, claim_outputs, gather_inputs
from ncc.frontend.load import IR_EXTENSIONS, load
from ncc.graph.builder import build
from ncc.graph.program_graph import ProgramGraph

logger = logging.getLogger(__name__)

#: Output formats of :func:`build_batch` and the file suffix each one writes.
FORMATS = {"json": ".json", "npz": ".npz", "networkx": ".nx.json", "pyg": ".pt", "dot": ".dot"}

@dataclass
class GraphBatchResult:
    """What :func:`build_batch` wrote: one ``(input, output, summary)`` per graph, and the failures."""

    written: list[tuple[str, str, str]] = field(default_factory=list)
    failures: list[BatchFailure] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.written) + len(self.failures)

    def summary(self) -> str:
        return f"{len(self.written)}/{plural(self.total, 'graph')} written, {len(self.failures)} failed"


def write_graph(graph: ProgramGraph, path: str | os.PathLike, fmt: str) -> Path:
    """Write ``graph`` to ``path`` in one of :data:`FORMATS`, atomically (nothing partial is left)."""
    from ncc.fileio import atomic_write
    from ncc.graph import convert

    path = Path(path)
    if fmt == "json":
        return convert.save_json(graph, path)
    if fmt == "npz":
        return convert.save_npz(graph, path)
    if fmt == "dot":
        return atomic_write(path, convert.to_dot(graph))
    if fmt == "networkx":
        import networkx as nx

        data = nx.node_link_data(convert.to_networkx(graph), edges="edges")
        return atomic_write(path, lambda f: json.dump(data, f))
    if fmt == "pyg":
        import torch

        data = convert.to_pyg(graph)
        return atomic_write(path, lambda f: torch.save(data, f), "wb")
    raise NccError(f"unknown graph format '{fmt}' (choose from {', '.join(FORMATS)})")


def _build_one(job: tuple[str, str, str, str, str]) -> tuple[str, str, str, str, bool]:
    """Worker: (input, IR file, output, format, output folder) -> (input, output, summary, error, stops the batch)."""
    source, ir_path, output, fmt, folder = job
    try:
        module = load(ir_path, name=Path(source).name.split(".")[0])
        graph = build(module, path=source)
    except NccError as exc:
        return source, output, "", str(exc), False
    except Exception as exc:  # a bug must not stop the batch; it is reported with the file
        return source, output, "", f"{source}: internal error: {exc.__class__.__name__}: {exc}", False
    try:
        write_graph(graph, output, fmt)
    except OSError as exc:
        fatal = output_folder_error(exc, folder)
        if fatal is not None:
            return source, output, "", str(fatal), True
        return source, output, "", f"{output}: cannot write: {exc.strerror or exc}", False
    return source, output, graph.summary(), "", False


def _import_torch(progress: bool) -> None:
    """Import torch once, before the workers fork, saying so where that takes long."""
    import sys
    import time

    if "torch" in sys.modules:
        return
    started = time.perf_counter()
    if progress:
        print("importing torch for --format pyg ...", end="", file=sys.stderr, flush=True)
    import torch  # noqa: F401

    if progress:
        print(f" {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


def build_batch(inputs: Iterable[str | os.PathLike | InputFile], output_dir: str | os.PathLike, fmt: str = "json",
                workers: int = 1, opt_level: int | str = 0, flags: Sequence[str] = (),
                clang: str | None = None, progress: bool = True, executor: str | None = None) -> GraphBatchResult:
    """Build the program graph of every source or IR file and write it to ``output_dir``.

    Sources are compiled through the frontend's batch compiler (cached); ``.ll``/``.bc`` files are
    read as they are. One bad input never stops the batch; it is listed in the failures. Each output
    mirrors its input's path (``ir/a.O2.ll`` -> ``output_dir/ir/a.O2.json``; see :mod:`ncc.frontend.inputs`).

    Args:
        inputs: files, directories or glob patterns.
        output_dir: the folder to write to (see :data:`FORMATS` for the suffixes).
        fmt: the output format.
        workers: processes to use.
        opt_level, flags, clang: how to compile sources (see :func:`ncc.frontend.compile`).
        progress: show progress bars.
        executor: where compiles and graphs run: ``local`` (default), ``dask`` or a Dask scheduler address
            (see :func:`ncc.processes.parse_executor`); on a cluster at an address, the cache and
            ``output_dir`` must be on a filesystem every worker shares.

    Raises:
        OutputError: the output folder takes no more files (read-only, full, gone); the batch stops there.
    """
    if fmt not in FORMATS:
        raise NccError(f"unknown graph format '{fmt}' (choose from {', '.join(FORMATS)})")
    arguments = [item for item in inputs if not isinstance(item, InputFile)]
    found = gather_inputs(arguments, (*SOURCE_EXTENSIONS, *IR_EXTENSIONS))
    files = [item for item in inputs if isinstance(item, InputFile)] + found.files
    result = GraphBatchResult(failures=list(found.problems))
    outputs, clashes = claim_outputs(files, output_dir, FORMATS[fmt])
    result.failures.extend(clashes)
    if not outputs:
        return result
    prepare_output_folder(output_dir)
    files = [item for item in files if item.path in outputs]
    sources = [item.path for item in files if item.path.suffix.lower() in SOURCE_EXTENSIONS]
    ir_for: dict[Path, str] = {item.path: str(item.path) for item in files if item.path.suffix.lower()
                               not in SOURCE_EXTENSIONS}
    if sources:
        from ncc.frontend.batch import compile_batch

        compiled = compile_batch(sources, opt_level=opt_level, flags=flags, workers=workers, clang=clang,
                                 progress=progress, executor=executor)
        for entry in compiled.entries:
            ir_for[Path(entry.path)] = str(entry.ir_path)
        result.failures.extend(compiled.failures)
    jobs = [(str(item.path), ir_for[item.path], str(outputs[item.path]), fmt, str(output_dir))
            for item in files if item.path in ir_for]
    if fmt == "pyg" and jobs:
        _import_torch(progress)
    if progress and len(jobs) > 1:  # tqdm costs a one-file run a tenth of its start-up, for a bar that says nothing
        from tqdm import tqdm
    bar = tqdm(total=len(jobs), desc="graphs", unit="file") if progress and len(jobs) > 1 else None
    try:
        for source, output, summary, error, fatal in _run(jobs, workers, executor, output_dir):
            if bar is not None:
                bar.update(1)
            if fatal:
                raise OutputError(f"{error} (stopped after {len(result.written)} of {plural(len(jobs), 'graph')})")
            if error:
                result.failures.append(BatchFailure(path=source, reason=error))
            else:
                result.written.append((source, output, summary))
    finally:
        if bar is not None:
            bar.close()
    return result


def _run(jobs: list[tuple[str, str, str, str, str]], workers: int, executor: str | None = None,
         output_dir: str | os.PathLike | None = None):
    """The outcome of every job, in order, from this process, a process pool or a Dask cluster; what has not
    run is cancelled when the caller stops."""
    from ncc.processes import JobFailed, parse_executor, run_jobs

    spec = parse_executor(executor)
    if not jobs:
        return
    if spec.kind == "local" and (workers <= 1 or len(jobs) <= 1):
        yield from map(_build_one, jobs)
        return
    shared = [output_dir] if output_dir is not None else []
    sent = jobs
    if spec.kind == "dask":  # workers elsewhere run in folders of their own: every path absolute
        sent = [(source, str(Path(ir).resolve()), str(Path(output).resolve()), fmt, str(Path(folder).resolve()))
                for source, ir, output, fmt, folder in jobs]
    outcomes = run_jobs(_build_one, sent, workers=workers, executor=spec, shared_paths=shared)
    waiting: dict[int, tuple] = {}
    following = 0
    try:
        for position, outcome in outcomes:
            if isinstance(outcome, JobFailed):
                outcome = (jobs[position][0], jobs[position][2], "", outcome.reason, False)
            elif sent is not jobs:  # the output as the caller named it
                outcome = (outcome[0], jobs[position][2], *outcome[2:])
            waiting[position] = outcome
            while following in waiting:  # in input order, as the local pool's map gave them
                yield waiting.pop(following)
                following += 1
    finally:
        outcomes.close()
