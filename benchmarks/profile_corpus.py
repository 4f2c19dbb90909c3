"""Profile llvm-test-suite's SingleSource programs with `ncc.execution`: how many run, how fast, at what cost.

For each optimisation level, the whole pipeline from a cold cache (compile, instrument, link plain and
instrumented, run both under the limits, check the reference output, build and write the annotated graph) over
the sources, with ``--workers`` processes. Reported per suite (Benchmarks, UnitTests, Regression =
gcc-c-torture and friends): programs profiled, failures by stage, static and dynamic conditional branches;
overall: programs profiled per minute (wall clock of the whole batch) and the profiling overhead, instrumented
CPU time over plain CPU time, median over the programs whose plain run takes at least ``--min-cpu-ms``.

    NCC_DATA=../shared/data nice -n 10 .venv/bin/python benchmarks/profile_corpus.py --levels 0 2 --workers 2 \
        --json benchmarks/results/profile_corpus.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path


_APPENDED_FLAGS = re.compile(r"list\(\s*APPEND\s+(?:CFLAGS|CPPFLAGS|CXXFLAGS)\s+([^)]*)\)")


def suite_flags(path: Path) -> tuple[str, ...]:
    """ncc's flags for the suite, plus the ``-D`` definitions its folders add with ``list(APPEND CFLAGS ...)``
    (Polybench's ``-DPOLYBENCH_DUMP_ARRAYS``, without which the output is not the reference one)."""
    from ncc.frontend.corpora import llvm_test_suite_flags

    extra: list[str] = []
    folder = path.parent
    while folder.name and folder.name != "SingleSource":
        cmake = folder / "CMakeLists.txt"
        if cmake.is_file():
            depth = 0
            for line in cmake.read_text(errors="replace").splitlines():
                stripped = line.strip().lower()
                depth += stripped.startswith("if(") - stripped.startswith("endif(")
                if depth == 0:  # flags under if(...) depend on options the suite's default run leaves off
                    for group in _APPENDED_FLAGS.findall(line):
                        extra += [word for word in group.split() if word.startswith("-D")]
        folder = folder.parent
    return (*llvm_test_suite_flags(path), *dict.fromkeys(extra))


def branch_predictions(graph, counts) -> list[tuple[int, int, bool, bool]]:
    """``(true count, false count, always-true guess, BTFN guess)`` of every executed conditional branch, a guess
    being True for the true successor. BTFN on the IR's block order: a successor at or before the branch's own
    block is a backward edge and predicted taken; with no backward edge the next block (the fall-through) is
    predicted, else the false successor."""
    import numpy as np

    taken, not_taken = counts["branch_taken"], counts["branch_not_taken"]
    control = graph.edge_flow == 0
    sources, targets, positions = graph.edge_index[0][control], graph.edge_index[1][control], graph.edge_position[control]
    found = []
    for node in np.flatnonzero((taken >= 0) & (taken + not_taken > 0)):
        out = sources == node
        successor = {int(position): int(target) for position, target in zip(positions[out], targets[out])}
        here = graph.node_block[node]
        true_block, false_block = graph.node_block[successor[0]], graph.node_block[successor[1]]
        if (true_block <= here) != (false_block <= here):
            btfn = bool(true_block <= here)
        else:
            btfn = bool(true_block == here + 1) if false_block != here + 1 else False
        found.append((int(taken[node]), int(not_taken[node]), True, btfn))
    return found


def baseline_rows(branches: list[tuple[int, int, bool, bool]]) -> dict[str, dict[str, float]]:
    """Execution-weighted miss rate and per-branch accuracy (the guess is the majority direction) of the static
    baselines, and the oracle (each branch's majority direction), over ``branches``."""
    total = sum(t + f for t, f, _, _ in branches)
    rows = {}
    for name, index in (("always true", 2), ("BTFN", 3), ("oracle", None)):
        misses = correct = 0
        for branch in branches:
            true_count, false_count = branch[0], branch[1]
            guess = (true_count >= false_count) if index is None else branch[index]
            misses += false_count if guess else true_count
            correct += guess == (true_count >= false_count)
        rows[name] = {"miss_rate": misses / total if total else 0.0,
                      "accuracy": correct / len(branches) if branches else 0.0}
    return rows


def _reason(text: str) -> str:
    """A failure reason without the file: ``plain program: timed out after 10 s``, ``link failed: ...``."""
    text = re.sub(r"^\S*SingleSource/\S*?: ", "", text)
    text = re.sub(r"^clang exited with status 1: \S+?:\d+:\d+: ", "clang: ", text)
    text = re.sub(r"'[^']*'", "'…'", text)
    return re.sub(r"symbol: \S+", "symbol: …", text)[:120]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", nargs="+", default=["0", "2"], help="optimisation levels")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="every k-th source so that about this many are run")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--min-cpu-ms", type=float, default=10.0, help="plain runs shorter than this are left "
                                                                         "out of the overhead median (timer noise)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/profile_corpus.json"))
    parser.add_argument("--keep", type=Path, default=None, help="write the graphs here (default: a temporary folder)")
    arguments = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="ncc-profile-corpus-"))
    os.environ["NCC_CACHE"] = str(scratch / "cache")  # cold IR and profile caches: the whole pipeline is timed
    from ncc.execution.batch import profile_batch
    from ncc.execution.profile import profile_arrays
    from ncc.execution.sandbox import Limits
    from ncc.frontend.corpora import llvm_test_suite, suite_of
    from ncc.frontend.inputs import InputFile
    from ncc.graph import load

    sources = llvm_test_suite()
    root = next(parent for parent in sources[0].parents if parent.name == "SingleSource")
    if arguments.limit:
        step = max(1, len(sources) // arguments.limit)
        sources = sources[::step][:arguments.limit]
    report: dict = {"sources": len(sources), "workers": arguments.workers, "time_limit_s": arguments.time_limit,
                    "levels": {}}
    for level in arguments.levels:
        output = (arguments.keep or scratch / "graphs") / f"O{level}"
        started = time.perf_counter()
        # each graph under its path below SingleSource (file names repeat across the suite's folders)
        inputs = [InputFile(path, path.relative_to(root).with_suffix("")) for path in sources]
        result = profile_batch(inputs, output, workers=arguments.workers, opt_level=level,
                               per_source_flags=suite_flags, limits=Limits(time_s=arguments.time_limit))
        elapsed = time.perf_counter() - started
        suites: dict[str, dict] = defaultdict(lambda: {"programs": 0, "profiled": 0, "failed": Counter(),
                                                      "static_branches": 0, "dynamic_branches": 0,
                                                      "flow_violations": 0})
        for path in sources:
            suites[suite_of(path)]["programs"] += 1
        overheads, plain_times = [], []
        branches_by_suite: dict[str, list] = defaultdict(list)
        for program in result.written:
            suite = suites[suite_of(Path(program.path))]
            suite["profiled"] += 1
            suite["flow_violations"] += program.violations > 0
            graph = load(program.output, validate=False)
            counts = profile_arrays(graph)
            branches_by_suite[suite_of(Path(program.path))] += branch_predictions(graph, counts)
            branches = counts["branch_taken"] >= 0
            suite["static_branches"] += int(branches.sum())
            suite["dynamic_branches"] += int((counts["branch_taken"][branches] + counts["branch_not_taken"][branches]).sum())
            if program.plain_cpu_s * 1000 >= arguments.min_cpu_ms:
                overheads.append(program.instrumented_cpu_s / program.plain_cpu_s)
                plain_times.append(program.plain_cpu_s)
        for name, branches in branches_by_suite.items():
            suites[name]["baselines"] = baseline_rows(branches)
        for failure in result.failures:
            suites[suite_of(Path(failure.path))]["failed"][result.stages.get(failure.path, "?")] += 1
        row = {"elapsed_s": elapsed, "profiled": len(result.written), "failed": len(result.failures),
               "programs_per_minute": 60 * len(result.written) / elapsed,
               "overhead_median": statistics.median(overheads) if overheads else None,
               "overhead_quartiles": statistics.quantiles(overheads, n=4) if len(overheads) >= 4 else None,
               "overhead_programs": len(overheads),
               "suites": {name: {**values, "failed": dict(values["failed"])} for name, values in sorted(suites.items())},
               "failure_reasons": Counter(_reason(failure.reason) for failure in result.failures).most_common(40)}
        report["levels"][f"O{level}"] = row
        arguments.json.parent.mkdir(parents=True, exist_ok=True)
        arguments.json.write_text(json.dumps(report, indent=1))
        print(f"-O{level}: {row['profiled']}/{len(sources)} profiled in {elapsed:.0f} s "
              f"({row['programs_per_minute']:.1f} per minute, {arguments.workers} workers); overhead median "
              f"{row['overhead_median']} over {len(overheads)} programs", flush=True)
        for name, values in row["suites"].items():
            print(f"  {name or '(top)'}: {values['profiled']}/{values['programs']} profiled, failed {values['failed']}, "
                  f"{values['static_branches']} branches, {values['dynamic_branches']} dynamic, "
                  f"{values['flow_violations']} with flow violations", flush=True)
            for baseline, figures in values.get("baselines", {}).items():
                print(f"    {baseline}: miss rate {figures['miss_rate']:.4f}, per-branch accuracy "
                      f"{figures['accuracy']:.4f}", flush=True)
    arguments.json.parent.mkdir(parents=True, exist_ok=True)
    arguments.json.write_text(json.dumps(report, indent=1))
    print(f"saved {arguments.json}")
    from ncc.execution.sandbox import remove_tree

    remove_tree(scratch)


if __name__ == "__main__":
    sys.exit(main())
