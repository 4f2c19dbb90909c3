"""Build and write the graphs of many sources or IR files in parallel."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from tqdm import tqdm

from ncc.errors import NccError
from ncc.fileio import atomic_write
from ncc.frontend.batch import BatchFailure, compile_batch, expand_inputs
from ncc.frontend.compile import SOURCE_EXTENSIONS
from ncc.frontend.load import load
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
        return f"{len(self.written)}/{self.total} graphs written, {len(self.failures)} failed"


def write_graph(graph: ProgramGraph, path: str | os.PathLike, fmt: str) -> Path:
    """Write ``graph`` to ``path`` in one of :data:`FORMATS`, atomically (nothing partial is left)."""
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


def _build_one(job: tuple[str, str, str, str]) -> tuple[str, str, str, str]:
    """Worker: (input, IR file, output, format) -> (input, output, summary, error)."""
    source, ir_path, output, fmt = job
    try:
        module = load(ir_path, name=Path(source).name.split(".")[0])
        graph = build(module, path=source)
        write_graph(graph, output, fmt)
        return source, output, graph.summary(), ""
    except NccError as exc:
        return source, output, "", str(exc)
    except Exception as exc:  # a bug must not stop the batch; it is reported with the file
        return source, output, "", f"{source}: internal error: {exc.__class__.__name__}: {exc}"


def build_batch(inputs: Iterable[str | os.PathLike], output_dir: str | os.PathLike, fmt: str = "json",
                workers: int = 1, opt_level: int | str = 0, flags: Sequence[str] = (),
                clang: str | None = None, progress: bool = True) -> GraphBatchResult:
    """Build the program graph of every source or IR file and write it to ``output_dir``.

    Sources are compiled through the frontend's batch compiler (cached); ``.ll``/``.bc`` files are
    read as they are. One bad input never stops the batch; it is listed in the failures.

    Args:
        inputs: files, directories or glob patterns.
        output_dir: where ``<name><suffix>`` files go (see :data:`FORMATS`).
        fmt: the output format.
        workers: processes to use.
        opt_level, flags, clang: how to compile sources (see :func:`ncc.frontend.compile`).
        progress: show progress bars.
    """
    if fmt not in FORMATS:
        raise NccError(f"unknown graph format '{fmt}' (choose from {', '.join(FORMATS)})")
    files = expand_inputs(inputs)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    result = GraphBatchResult()
    sources = [f for f in files if f.suffix.lower() in SOURCE_EXTENSIONS]
    ir_for: dict[str, str] = {str(f): str(f) for f in files if f not in set(sources)}
    if sources:
        compiled = compile_batch(sources, opt_level=opt_level, flags=flags, workers=workers, clang=clang,
                                 progress=progress)
        for entry in compiled.entries:
            ir_for[str(entry.path)] = str(entry.ir_path)
        result.failures.extend(compiled.failures)
    names: dict[str, int] = {}
    jobs = []
    for f in files:
        if str(f) not in ir_for:
            continue
        stem = f.name.split(".")[0]
        names[stem] = names.get(stem, 0) + 1
        unique = stem if names[stem] == 1 else f"{stem}-{names[stem]}"
        jobs.append((str(f), ir_for[str(f)], str(output_dir / (unique + FORMATS[fmt])), fmt))
    if workers > 1 and len(jobs) > 1:
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
            outcomes = list(tqdm(pool.map(_build_one, jobs, chunksize=max(1, len(jobs) // (workers * 8))),
                                 total=len(jobs), desc="graphs", unit="file", disable=not progress))
    else:
        outcomes = [_build_one(job) for job in tqdm(jobs, desc="graphs", unit="file", disable=not progress)]
    for source, output, summary, error in outcomes:
        if error:
            result.failures.append(BatchFailure(path=source, reason=error))
        else:
            result.written.append((source, output, summary))
    return result
