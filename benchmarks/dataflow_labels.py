"""Proves the data-flow labels and times them (issue: data-flow analyses as learning tasks).

1. Dominance against LLVM's own dominator trees: every C program of the llvm-test-suite's SingleSource
   folder is compiled by Debian's clang-14 at -O0 and -O2, its values and blocks named by
   ``opt-14 -passes=instnamer``, and read twice: by ncc (graph, then :class:`ncc.graph.dataflow.Dominance`
   for every instruction as the root, 300 drawn in larger functions) and by
   ``opt-14 -passes='print<domtree>'``. An instruction ``r`` dominates ``m`` in LLVM's terms when both
   are in one block and ``m`` does not come before ``r``, or ``r``'s block strictly dominates ``m``'s;
   blocks unreachable from the entry are in no LLVM tree and are dominated by nothing in ncc's. Every
   disagreement is counted.
2. All five analyses against their second formulations (:meth:`RootAnalysis.reference`) on the same
   graphs, on the roots a data set draws (ProGraML's ``min(ceil(|V| / 10), 10)`` per graph).
3. Labels per second of each analysis (the solver alone, its steps included), on 2 processes.

Needs ``apt-get install clang-14`` (it brings opt-14). Run:
``NCC_DATA=../shared/data .venv/bin/python benchmarks/dataflow_labels.py [--limit N] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ncc.frontend import load  # noqa: E402
from ncc.graph import build  # noqa: E402
from ncc.graph.dataflow import ANALYSES, Dominance  # noqa: E402
from ncc.graph.program_graph import INSTRUCTION  # noqa: E402
from ncc.paths import data_home  # noqa: E402

CLANG, OPT = "clang-14", "opt-14"
_LABEL = re.compile(r"^([-\w.$]+):")
_TREE_NODE = re.compile(r"^(\s*)\[(\d+)\] %([-\w.$]+) ")


def block_names(text: str) -> dict[str, list[str]]:
    """Function name -> its block labels in textual order (named IR: every block has a label)."""
    names: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("define "):
            current = re.search(r"@([-\w.$\"]+)\(", line).group(1).strip('"')
            names[current] = []
        elif current is not None and line.startswith("}"):
            current = None
        elif current is not None:
            match = _LABEL.match(line)
            if match:
                names[current].append(match.group(1))
    return names


def llvm_dominators(path: Path) -> dict[str, dict[str, str | None]]:
    """Function name -> {block: its immediate dominator (None for the entry)} from ``print<domtree>``."""
    done = subprocess.run([OPT, "-passes=print<domtree>", "-disable-output", str(path)], capture_output=True,
                          text=True, timeout=300)
    trees: dict[str, dict[str, str | None]] = {}
    function = None
    stack: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        if line.startswith("DominatorTree for function: "):
            function = line.split(": ", 1)[1].strip()
            trees[function] = {}
            stack = []
            continue
        match = _TREE_NODE.match(line)
        if function is None or not match:
            continue
        level, block = int(match.group(2)), match.group(3)
        while stack and stack[-1][0] >= level:
            stack.pop()
        trees[function][block] = stack[-1][1] if stack else None
        stack.append((level, block))
    return trees


def check_file(job: tuple[str, str]) -> dict:
    """Compile, name, build and check one source at one level; returns the counts."""
    source, level = job
    result = Counter(files=1)
    with tempfile.TemporaryDirectory() as scratch:
        raw, named = Path(scratch, "raw.ll"), Path(scratch, "named.ll")
        compiled = subprocess.run([CLANG, "-S", "-emit-llvm", f"-O{level}", "-w", "-o", str(raw), source],
                                  capture_output=True, text=True, timeout=300)
        if compiled.returncode != 0:
            return dict(result, compile_failures=1)
        subprocess.run([OPT, "-passes=instnamer", "-S", str(raw), "-o", str(named)], check=True, timeout=300)
        text = named.read_text()
        graph = build(load(named))
        trees = llvm_dominators(named)
        blocks = block_names(text)
    result.update(dominance_against_llvm(graph, trees, blocks))
    result.update(against_references(graph))
    return dict(result)


def dominance_against_llvm(graph, trees, blocks, roots_per_function: int = 300) -> Counter:
    counts: Counter = Counter()
    dominance = Dominance(graph)
    for function, name in enumerate(name.lstrip("@").strip('"') for name in graph.function_names):
        members = np.flatnonzero((graph.node_function == function) & (graph.node_type == INSTRUCTION))
        if not len(members) or name not in trees:
            continue
        order, idom = blocks[name], trees[name]
        position = {block: i for i, block in enumerate(order)}
        reachable = np.array([block in idom for block in order])
        strictly = np.zeros((len(order), len(order)), dtype=bool)  # [a, b]: a strictly dominates b
        for block in order:
            parent = idom.get(block)
            while parent is not None:
                strictly[position[parent], position[block]] = True
                parent = idom.get(parent)
        block_of = graph.node_block[members]
        roots = members if len(members) <= roots_per_function else \
            np.random.default_rng(0).choice(members, roots_per_function, replace=False)
        for root in roots.tolist():
            labels, _ = dominance.query(root)
            own = graph.node_block[root]
            expected = reachable[own] & reachable[block_of] & (((block_of == own) & (members >= root))
                                                                | strictly[own, block_of])
            counts["llvm_roots"] += 1
            counts["llvm_disagreements"] += int(not np.array_equal(labels[members], expected))
        counts["functions"] += 1
    return counts


def against_references(graph) -> Counter:
    counts: Counter = Counter()
    for name, cls in ANALYSES.items():
        instance = cls(graph)
        candidates = instance.roots()
        count = min(math.ceil(graph.num_nodes / 10), 10, len(candidates))
        for root in np.random.default_rng(0).choice(candidates, count, replace=False).tolist():
            labels, _ = instance.query(root)
            counts[f"{name}_roots"] += 1
            counts[f"{name}_disagreements"] += int(not np.array_equal(labels, instance.reference(root)))
    return counts


def time_labels(job: tuple[str, str]) -> dict:
    """Seconds each analysis takes for ProGraML's roots of one graph (its solver built from scratch)."""
    source, level = job
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch, "raw.ll")
        if subprocess.run([CLANG, "-S", "-emit-llvm", f"-O{level}", "-w", "-o", str(raw), source],
                          capture_output=True).returncode:
            return {}
        graph = build(load(raw))
    times = {}
    for name, cls in ANALYSES.items():
        started = time.perf_counter()
        instance = cls(graph)
        candidates = instance.roots()
        count = min(math.ceil(graph.num_nodes / 10), 10, len(candidates))
        for root in np.random.default_rng(0).choice(candidates, count, replace=False).tolist():
            instance.query(root)
        times[name] = (time.perf_counter() - started, count)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="Sources to use (0: all C programs).")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        with tarfile.open(data_home() / "llvm-test-suite" / "singlesource.tar.gz") as archive:
            archive.extractall(folder, filter="data")
        sources = sorted(str(p) for p in Path(folder).rglob("*.c"))
        if args.limit:
            sources = sources[:: max(1, len(sources) // args.limit)][: args.limit]
        jobs = [(source, level) for source in sources for level in ("0", "2")]
        started = time.perf_counter()
        totals: Counter = Counter()
        with ProcessPoolExecutor(args.jobs) as pool:
            for counts in pool.map(check_file, jobs, chunksize=4):
                totals.update(counts)
        checked = time.perf_counter() - started
        started = time.perf_counter()
        seconds: Counter = Counter()
        roots: Counter = Counter()
        with ProcessPoolExecutor(args.jobs) as pool:
            for times in pool.map(time_labels, jobs, chunksize=4):
                for name, (spent, count) in times.items():
                    seconds[name] += spent
                    roots[name] += count
        timed = time.perf_counter() - started
    print(f"llvm-test-suite SingleSource C programs: {len(sources)} sources x -O0/-O2 = {len(jobs)} files, "
          f"{totals['compile_failures']} did not compile with {CLANG}; checked in {checked:.0f} s on {args.jobs} "
          f"processes")
    print(f"dominance vs LLVM's dominator trees: {totals['functions']} functions, {totals['llvm_roots']} "
          f"instruction roots, {totals['llvm_disagreements']} disagreements")
    print("| analysis | roots checked | disagreements with the reference | labels/s (one process) |")
    print("|---|--:|--:|--:|")
    for name in ANALYSES:
        rate = roots[name] / seconds[name] if seconds[name] else float("nan")
        print(f"| {name} | {totals[f'{name}_roots']} | {totals[f'{name}_disagreements']} | {rate:,.0f} |")
    print(f"(timing pass: {timed:.0f} s for the compile, build and labels of {len(jobs)} files)")


if __name__ == "__main__":
    main()
