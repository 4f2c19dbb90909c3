"""Proves the data-flow labels and times them (issue: data-flow analyses as learning tasks).

Corpus: every C program of the llvm-test-suite's SingleSource folder, compiled by Debian's clang-14 at -O0
and -O2 and its values and blocks named by ``opt-14 -passes=instnamer``; the named IR and
``opt-14 -passes='print<domtree>'``'s output are kept under ``$NCC_CACHE/dataflow-labels`` (``--cache``),
so a second run compiles nothing. Four passes, each parallel over ``--jobs`` processes with a progress bar:

1. ``compile``: the named IR and LLVM's dominator trees of every (program, level).
2. ``check`` (resumable: every file's counts are appended to a JSON-lines file in the cache, keyed by the
   file and the sources of ``ncc/graph/dataflow.py`` and this script; a rerun skips what is there; sources
   with the same bytes give the same IR and are checked once):
   a. dominance against LLVM's dominator trees: :class:`ncc.graph.dataflow.Dominance` for every instruction
      of every function as the root (300 drawn in larger functions) against ``print<domtree>``. An
      instruction ``r`` dominates ``m`` in LLVM's terms when both are in one block and ``m`` does not come
      before ``r``, or ``r``'s block strictly dominates ``m``'s; blocks unreachable from the entry are in no
      LLVM tree and are dominated by nothing in ncc's. Every disagreement is counted.
   b. all five analyses against their second formulations (:meth:`RootAnalysis.reference`) on the roots a
      data set draws (ProGraML's ``min(ceil(|V| / 10), 10)`` per graph, as ``ncc.tasks.dataflow.roots``).
3. ``labels``: the whole corpus's labels as a data set makes them (each graph built from the cached IR,
   then each analysis built and queried on its roots), wall clock on ``--jobs`` processes; the seconds
   of the analyses alone are summed per analysis (labels/s).
4. ``compare`` (``--compare N`` sources, every k-th as ``--limit`` picks them; 0 skips it): the
   implementation of commit ``7ac0138`` (``git show``, loaded as a module) against the current one on the
   same graphs, the two alternating per file and analysis, both built from scratch: labels/s of each and
   whether labels and steps agree.

Needs ``apt-get install clang-14`` (it brings opt-14). Run:
``NCC_DATA=../shared/data .venv/bin/python benchmarks/dataflow_labels.py [--limit N] [--jobs 2] [--compare 300]``;
the numbers go to stdout and ``--json`` (default ``benchmarks/results/dataflow_labels.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import types
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ncc.frontend import load  # noqa: E402
from ncc.graph import build  # noqa: E402
from ncc.graph import dataflow  # noqa: E402
from ncc.graph.dataflow import ANALYSES, Dominance  # noqa: E402
from ncc.graph.program_graph import INSTRUCTION  # noqa: E402
from ncc.paths import cache_home, data_home  # noqa: E402

CLANG, OPT = "clang-14", "opt-14"
BEFORE = "7ac0138"  # the commit whose implementation the compare pass times
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


def llvm_dominators(text: str) -> dict[str, dict[str, str | None]]:
    """Function name -> {block: its immediate dominator (None for the entry)} from ``print<domtree>``'s output."""
    trees: dict[str, dict[str, str | None]] = {}
    function = None
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
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


# ------------------------------------------------------------------------------------------------ compile


def file_key(source: str, level: str) -> str:
    """The cache key of one (source, level): the source's bytes, the level and the compiler."""
    return hashlib.sha256(Path(source).read_bytes() + f"|O{level}|{CLANG}".encode()).hexdigest()[:24]


def compile_file(job: tuple[str, str, str]) -> tuple[str, bool]:
    """Compile, name and ask LLVM for the dominator trees of one (source, level) into the cache, once.

    Returns the key and whether it compiled (a failure is remembered in ``<key>.failed``)."""
    source, level, cache = job
    key = file_key(source, level)
    ll, tree, failed = Path(cache, f"{key}.ll"), Path(cache, f"{key}.domtree"), Path(cache, f"{key}.failed")
    if ll.is_file() and tree.is_file():
        return key, True
    if failed.is_file():
        return key, False
    with tempfile.TemporaryDirectory() as scratch:
        raw, named = Path(scratch, "raw.ll"), Path(scratch, "named.ll")
        done = subprocess.run([CLANG, "-S", "-emit-llvm", f"-O{level}", "-w", "-o", str(raw), source],
                              capture_output=True, text=True, timeout=300)
        if done.returncode:
            failed.write_text(done.stderr[-4000:])
            return key, False
        subprocess.run([OPT, "-passes=instnamer", "-S", str(raw), "-o", str(named)], check=True, timeout=300)
        trees = subprocess.run([OPT, "-passes=print<domtree>", "-disable-output", str(named)], capture_output=True,
                               text=True, timeout=300)
        Path(scratch, "tree").write_text(trees.stderr)
        os.replace(Path(scratch, "tree"), tree)  # the tree first: the .ll marks the pair complete
        os.replace(named, ll)
    return key, True


# ------------------------------------------------------------------------------------------------ check


def task_roots(instance, graph) -> list[int]:
    """ProGraML's roots of one graph for one analysis (``min(ceil(|V| / 10), 10)``, seed 0)."""
    candidates = instance.roots()
    count = min(math.ceil(graph.num_nodes / 10), 10, len(candidates))
    return np.random.default_rng(0).choice(candidates, count, replace=False).tolist() if count else []


def check_file(job: tuple[str, str]) -> dict:
    """Dominance against LLVM and every analysis against its reference on one cached file; the counts."""
    key, cache = job
    ll = Path(cache, f"{key}.ll")
    text = ll.read_text()
    graph = build(load(ll))
    result = Counter(files=1)
    result.update(dominance_against_llvm(graph, llvm_dominators(Path(cache, f"{key}.domtree").read_text()),
                                         block_names(text)))
    result.update(against_references(graph))
    return {"key": key, **result}


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
        for root in task_roots(instance, graph):
            labels, _ = instance.query(root)
            counts[f"{name}_roots"] += 1
            counts[f"{name}_disagreements"] += int(not np.array_equal(labels, instance.reference(root)))
    return counts


# ------------------------------------------------------------------------------------------------ labels


def time_analyses(graph, module) -> dict[str, tuple[float, int, list]]:
    """Per analysis of a module: seconds to build it and answer ProGraML's roots, the roots, the answers."""
    times = {}
    for name, cls in module.ANALYSES.items():
        started = time.perf_counter()
        instance = cls(graph)
        answers = [(root, *instance.query(root)) for root in task_roots(instance, graph)]
        times[name] = (time.perf_counter() - started, len(answers), answers)
    return times


def label_file(job: tuple[str, str]) -> dict:
    """A data set's work on one cached file: build the graph, then every analysis's labels; the seconds."""
    key, cache = job
    started = time.perf_counter()
    graph = build(load(Path(cache, f"{key}.ll")))
    built = time.perf_counter() - started
    times = time_analyses(graph, dataflow)
    return {"key": key, "build_s": built, "nodes": graph.num_nodes,
            **{name: [spent, count] for name, (spent, count, _) in times.items()}}


_BEFORE_MODULE: list = []


def before_module():
    """The implementation of commit :data:`BEFORE`, loaded once per process from ``git show``."""
    if not _BEFORE_MODULE:
        source = subprocess.run(["git", "show", f"{BEFORE}:ncc/graph/dataflow.py"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout
        module = types.ModuleType("dataflow_before")
        exec(compile(source, f"{BEFORE}:ncc/graph/dataflow.py", "exec"), module.__dict__)
        _BEFORE_MODULE.append(module)
    return _BEFORE_MODULE[0]


def compare_file(job: tuple[str, str, int]) -> dict:
    """Before and after on one file, alternating which goes first; seconds, roots and disagreements."""
    key, cache, turn = job
    graph = build(load(Path(cache, f"{key}.ll")))
    result: dict = {"key": key}
    modules = {"before": before_module(), "after": dataflow}
    for name in ANALYSES:
        answers = {}
        for side in (("before", "after") if turn % 2 else ("after", "before")):
            module = types.SimpleNamespace(ANALYSES={name: modules[side].ANALYSES[name]})
            spent, count, answers[side] = time_analyses(graph, module)[name]
            result[f"{name}_{side}_s"] = spent
        result[f"{name}_roots"] = count
        result[f"{name}_differ"] = sum(int(a[0] != b[0] or a[2] != b[2] or not np.array_equal(a[1], b[1]))
                                       for a, b in zip(answers["before"], answers["after"]))
    return result


# ------------------------------------------------------------------------------------------------ driver


def run_pool(function, jobs: list, workers: int, description: str):
    """``function`` over the jobs on ``workers`` processes, results as they come, with a progress bar."""
    from tqdm import tqdm

    with ProcessPoolExecutor(workers) as pool:
        yield from tqdm(pool.map(function, jobs, chunksize=1), total=len(jobs), desc=description, unit="file",
                        mininterval=5, file=sys.stderr)


def code_digest() -> str:
    """What the check's results depend on: the analyses' and this script's sources."""
    return hashlib.sha256(Path(dataflow.__file__).read_bytes() + Path(__file__).read_bytes()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="Sources to use (0: all C programs).")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--compare", type=int, default=300,
                        help="Sources for the before/after comparison (0: none).")
    parser.add_argument("--cache", type=Path, default=None, help="Named IR, dominator trees and check results "
                                                                 "(default $NCC_CACHE/dataflow-labels).")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "dataflow_labels.json")
    args = parser.parse_args()
    cache = args.cache or cache_home() / "dataflow-labels"
    cache.mkdir(parents=True, exist_ok=True)
    report: dict = {"load_average": os.getloadavg(), "jobs": args.jobs, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as folder:
        with tarfile.open(data_home() / "llvm-test-suite" / "singlesource.tar.gz") as archive:
            archive.extractall(folder, filter="data")
        everything = sorted(str(p) for p in Path(folder).rglob("*.c"))
        sources = everything[:: max(1, len(everything) // args.limit)][: args.limit] if args.limit else everything
        started = time.perf_counter()
        compiled = list(run_pool(compile_file, [(s, level, str(cache)) for s in sources for level in ("0", "2")],
                                 args.jobs, "compile"))
        report["compile_s"] = time.perf_counter() - started
        compare_sources = set(everything[:: max(1, len(everything) // args.compare)][: args.compare]) \
            if args.compare else set()
        compare_keys = [file_key(s, level) for s in sorted(compare_sources) for level in ("0", "2")
                        if Path(cache, f"{file_key(s, level)}.ll").is_file()]
    keys = [key for key, ok in compiled if ok]
    unique = list(dict.fromkeys(keys))  # sources with the same bytes compile to the same IR: checked once
    report.update(sources=len(sources), files=len(compiled), compile_failures=len(compiled) - len(keys),
                  unique_files=len(unique))

    # check, resumable
    done_file = cache / f"check-{code_digest()}.jsonl"
    done = {}
    if done_file.is_file():
        for line in done_file.read_text().splitlines():
            row = json.loads(line)
            done[row["key"]] = row
    todo = [key for key in unique if key not in done]
    started = time.perf_counter()
    with done_file.open("a") as out:
        for row in run_pool(check_file, [(key, str(cache)) for key in todo], args.jobs, "check"):
            out.write(json.dumps(row) + "\n")
            out.flush()
            done[row["key"]] = row
    report["check_s_this_run"] = time.perf_counter() - started
    report["check_resumed_files"] = len(unique) - len(todo)
    totals: Counter = Counter()
    for key in unique:
        totals.update({k: v for k, v in done[key].items() if k != "key"})
    report["check"] = dict(totals)

    # labels of the whole corpus, wall clock
    started = time.perf_counter()
    rows = list(run_pool(label_file, [(key, str(cache)) for key in keys], args.jobs, "labels"))
    report["labels_wall_s"] = time.perf_counter() - started
    report["labels_build_s"] = sum(row["build_s"] for row in rows)
    report["labels"] = {name: {"seconds": sum(row[name][0] for row in rows), "roots": sum(row[name][1] for row in rows)}
                        for name in ANALYSES}
    slowest = sorted(rows, key=lambda row: -sum(row[name][0] for name in ANALYSES))[:5]
    report["labels_slowest_files"] = [{"key": row["key"], "nodes": row["nodes"],
                                       **{name: round(row[name][0], 3) for name in ANALYSES}} for row in slowest]

    # before / after
    if compare_keys:
        started = time.perf_counter()
        compared = list(run_pool(compare_file, [(key, str(cache), i) for i, key in enumerate(compare_keys)],
                                 args.jobs, "compare"))
        report["compare_wall_s"] = time.perf_counter() - started
        report["compare"] = {"files": len(compared), "commit": BEFORE, **{
            name: {"roots": sum(r[f"{name}_roots"] for r in compared),
                   "differ": sum(r[f"{name}_differ"] for r in compared),
                   "before_s": sum(r[f"{name}_before_s"] for r in compared),
                   "after_s": sum(r[f"{name}_after_s"] for r in compared)} for name in ANALYSES}}
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))


def print_report(report: dict) -> None:
    check = Counter(report["check"])
    print(f"llvm-test-suite SingleSource C programs: {report['sources']} sources x -O0/-O2 = {report['files']} "
          f"files, {report['compile_failures']} did not compile with {CLANG}, {report['unique_files']} distinct IR "
          f"files checked; load average "
          f"{report['load_average'][0]:.1f}, {report['jobs']} processes")
    print(f"dominance vs LLVM's dominator trees: {check['functions']} functions, {check['llvm_roots']} "
          f"instruction roots, {check['llvm_disagreements']} disagreements")
    print(f"whole corpus, labels as a data set makes them: {report['labels_wall_s']:.0f} s wall on {report['jobs']} "
          f"processes (graph building {report['labels_build_s']:.0f} s of it, summed over processes)")
    compare = report.get("compare", {})
    print("| analysis | roots checked | disagreements with the reference | labels/s, whole corpus | "
          f"labels/s before ({BEFORE}) / after, {compare.get('files', 0)} files | before/after differ |")
    print("|---|--:|--:|--:|--:|--:|")
    for name in ANALYSES:
        labels = report["labels"][name]
        rate = labels["roots"] / labels["seconds"] if labels["seconds"] else float("nan")
        if name in compare:
            row = compare[name]
            versus = f"{row['roots'] / row['before_s']:,.0f} / {row['roots'] / row['after_s']:,.0f}"
            differ = str(row["differ"])
        else:
            versus = differ = "-"
        print(f"| {name} | {check[f'{name}_roots']} | {check[f'{name}_disagreements']} | {rate:,.0f} | {versus} | "
              f"{differ} |")
    print(f"(compile {report['compile_s']:.0f} s, check {report['check_s_this_run']:.0f} s this run with "
          f"{report['check_resumed_files']} files resumed)")


if __name__ == "__main__":
    main()
