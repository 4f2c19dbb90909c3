"""Time the POJ-104 pipeline: compile every program of a protocol, build its graphs, process the datasets.

Stages, each timed on its own (wall clock), in a fresh cache (``--cache``, default a new temporary folder)
unless ``--warm`` reuses ``$NCC_CACHE``:

1. unpack the archive;
2. compile (``ClassifyappTask.compiled``: the batch compiler, ``--workers`` processes, ``-O0``);
3. build the graphs, fit the node vocabulary on ``train`` and write the processed datasets
   (``ClassifyappTask.prepare``, whose compile pass now only finds the cache).

Reported: programs and the share that compiled, the failures grouped by clang's first error, each stage's
time, peak memory (RSS of this process and of its largest child), the graphs' node counts, and the sizes on
disk of the IR cache and of the processed datasets.

Usage: ``NCC_DATA=../shared/data python benchmarks/classifyapp_pipeline.py [--protocol full] [--workers 2]
[--cache DIR | --warm] [--json FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path


def folder_size(folder: Path, pattern: str = "*") -> int:
    return sum(path.stat().st_size for path in folder.rglob(pattern) if path.is_file())


def failure_kind(reason: str) -> str:
    """clang's first error without the file, line and identifiers (for grouping)."""
    match = re.search(r"error: (.*)", reason)
    text = match.group(1) if match else reason
    return re.sub(r"'[^']*'", "'...'", text)[:90]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=["full", "quick"], default="full")
    parser.add_argument("--classes", type=int, default=104)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default: a new temporary one)")
    parser.add_argument("--warm", action="store_true", help="use $NCC_CACHE as it is (times a second run)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    arguments = parser.parse_args()
    if not arguments.warm:
        cache = arguments.cache or Path(tempfile.mkdtemp(prefix="ncc-classifyapp-"))
        os.environ["NCC_CACHE"] = str(cache)
    from ncc.paths import cache_home
    from ncc.training import get_task, load_config
    from ncc.tasks.classifyapp import source_folder

    task = get_task("classifyapp")
    config = load_config(None, {"task": "classifyapp", "model.name": "ggnn", "task.protocol": arguments.protocol,
                                "task.classes": arguments.classes})
    options = task.check_options(config.task_options)
    figures: dict = {"protocol": arguments.protocol, "classes": arguments.classes, "workers": arguments.workers,
                     "cache": str(cache_home()), "cpus": os.cpu_count()}
    started = time.perf_counter()
    source_folder()
    figures["unpack_s"] = time.perf_counter() - started

    started = time.perf_counter()
    compiled = task.compiled(options, workers=arguments.workers)
    figures["compile_s"] = time.perf_counter() - started
    figures.update(programs=compiled.programs, compiled_programs=compiled.compiled_programs,
                   compile_rate=compiled.compiled_programs / compiled.programs)
    figures["failure_kinds"] = Counter(failure_kind(reason) for _, _, reason in compiled.failures).most_common(12)

    started = time.perf_counter()
    data = task.prepare(config)
    figures["graphs_and_processing_s"] = time.perf_counter() - started
    figures["graphs"] = {split: data.info[split] for split in ("train", "val", "test")}
    figures["vocabulary"] = data.info["vocabulary"]
    figures["total_s"] = figures["unpack_s"] + figures["compile_s"] + figures["graphs_and_processing_s"]
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["peak_child_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures["ir_cache_mb"] = folder_size(cache_home() / "ir", "*.ll") / 2**20
    processed = cache_home() / "classifyapp" / "processed"
    figures["processed_mb"] = sum(Path(data.splits[s].path).stat().st_size
                                  for s in ("train", "val", "test")) / 2**20
    figures["processed_folder_mb"] = folder_size(processed) / 2**20

    print(f"POJ-104 {arguments.protocol} protocol, {arguments.classes} classes, {arguments.workers} workers, "
          f"cache {figures['cache']}")
    print(f"  programs: {compiled.summary()}")
    for kind, count in figures["failure_kinds"]:
        print(f"    {count:5d}  {kind}")
    print(f"  unpack {figures['unpack_s']:.1f} s, compile {figures['compile_s'] / 60:.1f} min, graphs + processing "
          f"{figures['graphs_and_processing_s'] / 60:.1f} min, total {figures['total_s'] / 60:.1f} min")
    for split, info in figures["graphs"].items():
        print(f"  {split}: {info['graphs']} graphs, {info['nodes_mean']:.0f} nodes on average")
    print(f"  peak memory: {figures['peak_rss_mb']:.0f} MiB (this process), {figures['peak_child_rss_mb']:.0f} MiB "
          f"(largest child)")
    print(f"  on disk: IR cache {figures['ir_cache_mb']:.0f} MiB, processed datasets {figures['processed_mb']:.0f} MiB")
    if arguments.json:
        arguments.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
