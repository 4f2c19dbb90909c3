"""How much of each data set ncc's own frontend compiles, and how fast.

Reads the data sets from ``$NCC_DATA`` (see ``datasets/`` and each folder's SOURCE.md):

* thread coarsening: the 17 kernels in ``threadcoarsening/kernels_cl``;
* devmap: every row of ``devmap/cgo17-{amd,nvidia}.csv``, mapped to its original kernel in
  ``devmap/ncc/kernels_cl`` (``<benchmark>_<dataset>.cl`` if present, else ``<benchmark>.cl``) and
  compiled with the suite's defines from :mod:`ncc.frontend.kernel_defines`;
* POJ-104: a seeded random sample of the programs in ``poj104/poj104_codexglue.tar.gz``, with the
  ``poj104`` dialect.

Every failure is listed with its reason. The IR cache is a fresh temporary folder unless
``--cache-dir`` is given, so the timings are real compiles.

Usage: ``NCC_DATA=../shared/data python benchmarks/compile_rates.py [--poj-sample 2000] [--workers 2]``
"""

from __future__ import annotations

import argparse
import csv
import gzip
import logging
import random
import tarfile
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from ncc.frontend.batch import BatchResult, compile_batch
from ncc.frontend.kernel_defines import devmap_kernel_flags, devmap_source_fix, threadcoarsening_kernel_flags
from ncc.paths import data_home

logger = logging.getLogger("compile_rates")


def _report(title: str, result: BatchResult, lines: list[str]) -> None:
    lines.append(f"== {title}: {result.summary()}")
    for reason, count in result.failure_reasons():
        lines.append(f"   {count:5d} x {reason}")
    for failure in result.failures:
        lines.append(f"   FAIL {failure.path}: {failure.reason}")


def coarsening(workers: int, cache_dir: Path, lines: list[str]) -> None:
    """All 17 thread-coarsening kernels."""
    folder = data_home() / "threadcoarsening" / "kernels_cl"
    kernels = sorted(folder.glob("*.cl"))
    result = compile_batch(kernels, workers=workers, cache_dir=cache_dir,
                           per_source_flags=lambda path: threadcoarsening_kernel_flags(path.stem))
    _report(f"thread coarsening ({len(result.entries)}/{len(kernels)} kernels)", result, lines)


def devmap(workers: int, cache_dir: Path, lines: list[str]) -> None:
    """Every devmap row of both platforms, through the original kernel sources."""
    folder = data_home() / "devmap" / "ncc" / "kernels_cl"
    existing = {path.name for path in folder.iterdir()}
    for platform in ("amd", "nvidia"):
        rows = list(csv.DictReader((data_home() / "devmap" / f"cgo17-{platform}.csv").open()))
        by_dataset: dict[str, list[tuple[int, str, Path]]] = defaultdict(list)
        unresolved: list[str] = []
        for number, row in enumerate(rows):
            benchmark, dataset = row["benchmark"], row["dataset"]
            name = next((candidate for candidate in (f"{benchmark}_{dataset}.cl", f"{benchmark}.cl")
                         if candidate in existing), None)
            if name is None:
                unresolved.append(f"row {number} {benchmark} {dataset}: no kernel file")
                continue
            by_dataset[dataset].append((number, benchmark, folder / name))
        row_ok: dict[int, bool] = {}
        failures: list[str] = list(unresolved)
        kernels_ok: set[str] = set()
        kernels_all: set[str] = set()
        compile_seconds: list[float] = []
        started = time.perf_counter()
        for dataset, members in sorted(by_dataset.items()):
            benchmark_of = {path: benchmark for _, benchmark, path in members}
            paths = sorted(set(benchmark_of))
            result = compile_batch(
                paths, language="opencl", workers=workers, cache_dir=cache_dir, progress=False,
                per_source_flags=lambda path, dataset=dataset, benchmark_of=benchmark_of:
                    devmap_kernel_flags(benchmark_of[path], dataset),
                source_transform=lambda path, text, benchmark_of=benchmark_of:
                    devmap_source_fix(benchmark_of[path], text))
            compile_seconds.extend(result.compile_seconds)
            done = {entry.path for entry in result.entries}
            reasons = {failure.path: failure.reason for failure in result.failures}
            for number, benchmark, path in members:
                kernels_all.add(benchmark)
                row_ok[number] = str(path) in done
                if row_ok[number]:
                    kernels_ok.add(benchmark)
                else:
                    failures.append(f"row {number} {benchmark} {dataset}: {reasons.get(str(path))}")
        rows_ok = sum(row_ok.values())
        mean_ms = 1000 * sum(compile_seconds) / max(1, len(compile_seconds))
        lines.append(f"== devmap {platform}: {rows_ok}/{len(rows)} rows with IR, {len(kernels_ok)}/"
                     f"{len(kernels_all)} distinct kernels; {len(compile_seconds)} compiler runs "
                     f"({mean_ms:.0f} ms mean); {time.perf_counter() - started:.1f} s")
        lines.extend(f"   FAIL {failure}" for failure in failures)


def poj104(sample: int, seed: int, workers: int, cache_dir: Path, lines: list[str]) -> None:
    """A seeded random sample of POJ-104 programs with the poj104 dialect."""
    folder = data_home() / "poj104"
    with gzip.open(folder / "manifest.csv.gz", "rt") as handle:
        manifest = list(csv.DictReader(handle))
    chosen = random.Random(seed).sample(manifest, min(sample, len(manifest)))
    wanted = {f"poj104/{row['path']}" for row in chosen}
    with tempfile.TemporaryDirectory(prefix="ncc-poj104-") as extract_dir:
        with tarfile.open(folder / "poj104_codexglue.tar.gz") as archive:
            members = [member for member in archive.getmembers() if member.name in wanted]
            archive.extractall(extract_dir, members=members, filter="data")
        paths = sorted(Path(extract_dir, name) for name in wanted)
        result = compile_batch(paths, dialect="poj104", workers=workers, cache_dir=cache_dir)
        _report(f"POJ-104 sample of {len(paths)} (seed {seed})", result, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poj-sample", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=104)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--only", choices=["coarsening", "devmap", "poj104"], action="append")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sections = arguments.only or ["coarsening", "devmap", "poj104"]
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ncc-ir-cache-") as fresh_cache:
        cache_dir = arguments.cache_dir or Path(fresh_cache)
        if "coarsening" in sections:
            coarsening(arguments.workers, cache_dir, lines)
        if "devmap" in sections:
            devmap(arguments.workers, cache_dir, lines)
        if "poj104" in sections:
            poj104(arguments.poj_sample, arguments.seed, arguments.workers, cache_dir, lines)
    logger.info("\n".join(lines))


if __name__ == "__main__":
    main()
