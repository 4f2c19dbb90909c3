"""POJ-104 cold compiles: where the time of one program goes, and before / after against a revision.

Three measurements, the first two on a seeded sample of the programs in ``$NCC_DATA/poj104/poj104_codexglue.tar.gz``
(unpacked into a scratch folder; ncc's own caches are never touched: every run gets its own
``NCC_CACHE`` and its own zig cache, ``ZIG_GLOBAL_CACHE_DIR``, so nothing is a cache hit):

* ``--breakdown N``: CPU time (user + system, from ``wait4``) of one clang process per program, medians
  over N programs, for each way of running it: the ``zig c++`` driver with the prelude as text, with a PCH
  built the way ncc built it before (``-include-pch`` alone), with a PCH built with
  ``-fpch-instantiate-templates``, and ``zig -cc1`` called directly with that PCH (what ncc does now);
  plus an empty program through ``zig -cc1`` with and without the PCH (start-up and PCH load).
* ``--baseline REV``: ``compile_batch(dialect="poj104", workers=W)`` over the sample, in alternating
  subprocesses of a ``git worktree`` of REV and of this checkout (``--rounds`` each, fresh caches every
  run), the wall and CPU time of each (CPU: the batch process, its pool workers and their clang processes,
  from ``getrusage``), their medians and ratios, the extrapolation to all 52,000 programs (from the wall
  time of this machine, and from the CPU time for idle cores), and whether every program's IR is
  byte-identical between the two trees.

* ``--full``: all 52,000 programs from a cold cache with this checkout (wall and CPU time), and with
  ``--compare-cache DIR`` each program's IR against the entry of the same cache key in another IR cache
  (read only; e.g. one an older version filled), counting identical, different and absent entries.

Usage::

    NCC_DATA=../shared/data nice -n 10 .venv/bin/python benchmarks/compile_speed.py \\
        --sample 600 --workers 2 --rounds 3 --baseline effbaf8 --breakdown 40 \\
        --json benchmarks/results/compile_speed.json
    NCC_DATA=../shared/data nice -n 10 .venv/bin/python benchmarks/compile_speed.py --sample 0 --full \
        --compare-cache ~/.cache/ncc/cache/ir --json benchmarks/results/compile_speed_full.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKER = "--worker"
POJ104_PROGRAMS = 52_000

logger = logging.getLogger("compile_speed")


def unpack_sample(count: int, seed: int, folder: Path) -> list[Path]:
    """A seeded sample of POJ-104 programs, written as ``folder/<label>/<n>.cpp``."""
    with tarfile.open(_archive()) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".cpp")),
                         key=lambda m: m.name)
        chosen = random.Random(seed).sample(members, min(count, len(members)))
        paths = []
        for member in chosen:
            label, name = Path(member.name).parts[-2:]
            target = folder / label / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(tar.extractfile(member).read())
            paths.append(target)
    return sorted(paths)


# ------------------------------------------------------------------------------------ worker side

def worker(payload_path: str, result_path: str) -> None:
    """Compile the payload's files through ``compile_batch`` (run with the tree under test first on the path)."""
    payload = json.loads(Path(payload_path).read_text())
    import ncc
    from ncc.frontend.batch import compile_batch

    if not Path(ncc.__file__).resolve().is_relative_to(Path(payload["tree"]).resolve()):
        raise SystemExit(f"ncc imported from {ncc.__file__}, not from {payload['tree']}")
    files = [Path(path) for path in payload["files"]]
    started = time.perf_counter()
    result = compile_batch(files[:1], dialect="poj104", workers=1, cache_dir=payload["warm_cache"], progress=False)
    warm_s = time.perf_counter() - started  # the toolchain lookup and the PCH, once per run
    import resource

    before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    result = compile_batch(files, dialect="poj104", workers=payload["workers"], cache_dir=payload["cache"],
                           progress=False)
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    # CPU of this process, its pool workers and their clang processes (all reaped by now)
    cpu_s = sum(b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime for a, b in zip(before, after))
    digests = {entry.path: hashlib.sha256(entry.ir_path.read_bytes()).hexdigest() for entry in result.entries}
    Path(result_path).write_text(json.dumps({"elapsed_s": result.elapsed_s, "warm_s": warm_s, "cpu_s": cpu_s,
                                             "compiled": len(result.entries), "failed": len(result.failures),
                                             "digests": digests}))


def run_worker(tree: Path, files: list[Path], workers: int, scratch: Path, tag: str) -> dict:
    run_dir = scratch / tag
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    payload = run_dir / "payload.json"
    payload.write_text(json.dumps({"tree": str(tree), "files": [str(path) for path in files], "workers": workers,
                                   "cache": str(run_dir / "ir"), "warm_cache": str(run_dir / "warm-ir")}))
    env = dict(os.environ, NCC_CACHE=str(run_dir / "ncc-cache"), ZIG_GLOBAL_CACHE_DIR=str(run_dir / "zig-cache"),
               ZIG_LOCAL_CACHE_DIR=str(run_dir / "zig-cache"))
    env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    result = run_dir / "result.json"
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), WORKER, str(payload), str(result)],
                          cwd=run_dir, env=env, capture_output=True, text=True, check=False)
    if done.returncode or not result.is_file():
        raise RuntimeError(f"worker on {tree} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    outcome = json.loads(result.read_text())
    shutil.rmtree(run_dir, ignore_errors=True)  # IR, PCH and zig cache of this run: fresh for the next
    return outcome


# --------------------------------------------------------------------------------------- baseline

def git(*arguments: str) -> str:
    return subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def before_after(files: list[Path], revision: str, workers: int, rounds: int, scratch: Path) -> dict:
    try:
        commit = git("rev-parse", "--verify", f"{revision}^{{commit}}")
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(f"--baseline {revision}: not a revision of {ROOT} ({error})") from None
    tree = Path(tempfile.mkdtemp(prefix="ncc-baseline-"))
    git("worktree", "add", "--detach", "--quiet", str(tree), commit)
    runs: dict[str, list[dict]] = {"baseline": [], "current": []}
    try:
        for round_number in range(rounds):
            order = ("baseline", "current") if round_number % 2 == 0 else ("current", "baseline")
            for side in order:
                outcome = run_worker(tree if side == "baseline" else ROOT, files, workers, scratch,
                                     f"{side}-{round_number}")
                logger.info("round %d %s: %.1f s (%d compiled, %d failed)", round_number + 1, side,
                            outcome["elapsed_s"], outcome["compiled"], outcome["failed"])
                runs[side].append(outcome)
    finally:
        try:
            git("worktree", "remove", "--force", str(tree))
        except (OSError, subprocess.CalledProcessError):
            shutil.rmtree(tree, ignore_errors=True)
            subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True, check=False)
    summary: dict = {"baseline_commit": commit, "workers": workers, "programs": len(files), "rounds": rounds}
    for side, outcomes in runs.items():
        walls = [outcome["elapsed_s"] for outcome in outcomes]
        median = statistics.median(walls)
        cpu = statistics.median(outcome["cpu_s"] for outcome in outcomes)
        summary[side] = {"wall_s": walls, "median_wall_s": median, "warm_s": [o["warm_s"] for o in outcomes],
                         "cpu_s": [o["cpu_s"] for o in outcomes], "cpu_ms_per_program": 1000 * cpu / len(files),
                         "poj104_minutes_idle_cores": cpu / len(files) * POJ104_PROGRAMS / workers / 60,
                         "ms_per_program": 1000 * median / len(files),
                         "ms_per_program_and_core": 1000 * median * workers / len(files),
                         "poj104_minutes": median / len(files) * POJ104_PROGRAMS / 60,
                         "compiled": outcomes[0]["compiled"], "failed": outcomes[0]["failed"]}
    summary["speedup"] = summary["baseline"]["median_wall_s"] / summary["current"]["median_wall_s"]
    summary["cpu_ratio"] = summary["baseline"]["cpu_ms_per_program"] / summary["current"]["cpu_ms_per_program"]
    old, new = runs["baseline"][0]["digests"], runs["current"][0]["digests"]
    summary["same_ir"] = sum(1 for path in old if new.get(path) == old[path])
    summary["different_ir"] = sorted(path for path in old if path in new and new[path] != old[path])
    summary["only_baseline"] = sorted(set(old) - set(new))
    summary["only_current"] = sorted(set(new) - set(old))
    summary["stable_across_rounds"] = all(o["digests"] == runs["current"][0]["digests"] for o in runs["current"])
    return summary


# ------------------------------------------------------------------------------------------- full

def full_corpus(workers: int, scratch: Path, compare_cache: Path | None) -> dict:
    """Every POJ-104 program from a cold cache (this checkout), and its IR against another IR cache, by key."""
    import resource

    from ncc.frontend.batch import compile_batch

    sources = scratch / "all-sources"
    with tarfile.open(_archive()) as tar:
        count = 0
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".cpp"):
                label, name = Path(member.name).parts[-2:]
                (sources / label).mkdir(parents=True, exist_ok=True)
                (sources / label / name).write_bytes(tar.extractfile(member).read())
                count += 1
    files = sorted(sources.glob("*/*.cpp"))
    os.environ["NCC_CACHE"] = str(scratch / "ncc-cache")
    os.environ["ZIG_GLOBAL_CACHE_DIR"] = os.environ["ZIG_LOCAL_CACHE_DIR"] = str(scratch / "zig-cache")
    before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    result = compile_batch(files, dialect="poj104", workers=workers, cache_dir=scratch / "ir", progress=True)
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu_s = sum(b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime for a, b in zip(before, after))
    summary = {"programs": len(files), "compiled": len(result.entries), "failed": len(result.failures),
               "wall_s": result.elapsed_s, "cpu_s": cpu_s, "workers": workers,
               "failure_reasons": result.failure_reasons(5)}
    if compare_cache is not None:
        same, different, missing = 0, [], 0
        for entry in result.entries:
            other = compare_cache / entry.ir_path.parent.name / entry.ir_path.name
            if not other.is_file():
                missing += 1
            elif other.read_bytes() == entry.ir_path.read_bytes():
                same += 1
            else:
                different.append(str(Path(entry.path).relative_to(sources)))
        summary["compared_with"] = str(compare_cache)
        summary.update(same_ir=same, different_ir=len(different), not_in_other_cache=missing,
                       different_programs=different)
        for name in different:  # kept for a look: this checkout's IR and the other cache's, side by side
            entry = next(e for e in result.entries if e.path.endswith(name))
            keep = Path(tempfile.gettempdir()) / "ncc-compile-speed-different" / name.replace("/", "_")
            keep.parent.mkdir(parents=True, exist_ok=True)
            keep.with_suffix(".new.ll").write_bytes(entry.ir_path.read_bytes())
            keep.with_suffix(".other.ll").write_bytes((compare_cache / entry.ir_path.parent.name /
                                                       entry.ir_path.name).read_bytes())
    return summary


def _archive() -> Path:
    from ncc.paths import data_home

    return data_home() / "poj104" / "poj104_codexglue.tar.gz"


# -------------------------------------------------------------------------------------- breakdown

def _cpu_ms(command: list[str], cwd: Path) -> float:
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(process.pid, 0)
    return 1000 * (usage.ru_utime + usage.ru_stime)


def breakdown(files: list[Path], scratch: Path) -> dict:
    """CPU per program for each way of running clang (see the module docstring)."""
    from ncc.frontend.compile import PCH_BUILD_FLAGS
    from ncc.frontend.dialects import POJ104_FLAGS, POJ104_PRELUDE, poj104
    from ncc.frontend.toolchain import cc1_template, find_toolchain

    toolchain = find_toolchain()
    if toolchain.kind != "ziglang":
        raise SystemExit("--breakdown measures ziglang's clang; unset NCC_CLANG")
    work = scratch / "breakdown"
    work.mkdir(parents=True, exist_ok=True)
    os.environ["ZIG_GLOBAL_CACHE_DIR"] = os.environ["ZIG_LOCAL_CACHE_DIR"] = str(work / "zig-cache")
    pch = {}
    for name, extra in (("plain", ()), ("instantiated", PCH_BUILD_FLAGS)):
        arguments = [a for a in toolchain.compile_arguments("c++", 0, (*POJ104_FLAGS, *extra))
                     if a not in ("-S", "-emit-llvm")]
        arguments[arguments.index("-x") + 1] = "c++-header"
        pch[name] = work / f"prelude-{name}.pch"
        subprocess.run([toolchain.path, *arguments, str(POJ104_PRELUDE), "-o", str(pch[name])], check=True,
                       capture_output=True)
    ways = {
        "driver, prelude as text": lambda: toolchain.command(
            "c++", "p.cpp", "out.ll", 0, (*POJ104_FLAGS, "-include", str(POJ104_PRELUDE))),
        "driver, PCH as ncc built it before": lambda: toolchain.command(
            "c++", "p.cpp", "out.ll", 0, (*POJ104_FLAGS, "-include-pch", str(pch["plain"]))),
        "driver, PCH with -fpch-instantiate-templates": lambda: toolchain.command(
            "c++", "p.cpp", "out.ll", 0, (*POJ104_FLAGS, "-include-pch", str(pch["instantiated"]))),
        "zig -cc1 directly, that PCH (ncc now)": lambda: cc1_template(
            toolchain, "c++", 0, (*POJ104_FLAGS, "-include-pch", str(pch["instantiated"]))).fill(
            "p.cpp", "out.ll", str(work), ()),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    empty = {"zig -cc1, empty program, no prelude": cc1_template(toolchain, "c++", 0, POJ104_FLAGS),
             "zig -cc1, empty program, PCH as built before": cc1_template(
                 toolchain, "c++", 0, (*POJ104_FLAGS, "-include-pch", str(pch["plain"]))),
             "zig -cc1, empty program, PCH instantiated": cc1_template(
                 toolchain, "c++", 0, (*POJ104_FLAGS, "-include-pch", str(pch["instantiated"])))}
    times.update({name: [] for name in empty})
    for number, path in enumerate(files):
        text, _ = poj104(path.read_text(errors="surrogateescape"))
        for name, command in ways.items():
            # a different comment each time, so zig's driver finds nothing in its cache
            (work / "p.cpp").write_text(f"{text}\n// {name} {number}\n", errors="surrogateescape")
            times[name].append(_cpu_ms(command(), work))
        (work / "p.cpp").write_text("int main() { return 0; }\n")
        for name, template in empty.items():
            times[name].append(_cpu_ms(template.fill("p.cpp", "out.ll", str(work), ()), work))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == WORKER:
        worker(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=600, help="programs in the sample (default 600)")
    parser.add_argument("--seed", type=int, default=104)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tree, alternating (default 3)")
    parser.add_argument("--baseline", help="a revision to compare with (before / after)")
    parser.add_argument("--breakdown", type=int, default=0, metavar="N",
                        help="CPU per program of each way of running clang, over the first N programs")
    parser.add_argument("--full", action="store_true",
                        help="compile all 52,000 programs from a cold cache with this checkout")
    parser.add_argument("--compare-cache", type=Path,
                        help="with --full: an IR cache (read only) whose entries of the same key must be identical")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report: dict = {}
    with tempfile.TemporaryDirectory(prefix="ncc-compile-speed-") as scratch_name:
        scratch = Path(scratch_name)
        files = unpack_sample(args.sample, args.seed, scratch / "sources")
        if args.breakdown:
            report["breakdown_cpu_ms"] = breakdown(files[:args.breakdown], scratch)
            for name, value in report["breakdown_cpu_ms"].items():
                print(f"  {value:6.1f} ms CPU  {name}")
        if args.baseline:
            summary = before_after(files, args.baseline, args.workers, args.rounds, scratch)
            report["before_after"] = summary
            for side in ("baseline", "current"):
                figures = summary[side]
                print(f"{side:9s}: median {figures['median_wall_s']:.1f} s for {len(files)} programs on "
                      f"{args.workers} workers ({figures['ms_per_program_and_core']:.1f} ms per program and core; "
                      f"all of POJ-104: {figures['poj104_minutes']:.1f} min); runs "
                      + ", ".join(f"{wall:.1f}" for wall in figures["wall_s"]))
                print(f"           CPU (this process, pool workers, clang) {figures['cpu_ms_per_program']:.1f} ms per "
                      f"program (median); all of POJ-104 on {args.workers} idle cores: {figures['poj104_minutes_idle_cores']:.1f} min")
            print(f"speed-up {summary['speedup']:.2f}x wall, {summary['cpu_ratio']:.2f}x CPU; IR byte-identical for {summary['same_ir']} programs, "
                  f"different for {len(summary['different_ir'])}, compiled by one tree only: "
                  f"{len(summary['only_baseline'])} / {len(summary['only_current'])}")
        if args.full:
            summary = full_corpus(args.workers, scratch, args.compare_cache)
            report["full"] = summary
            print(f"all of POJ-104: {summary['compiled']:,} of {summary['programs']:,} compiled in "
                  f"{summary['wall_s'] / 60:.1f} min on {args.workers} workers, {summary['cpu_s'] / 60:.1f} min of CPU "
                  f"({1000 * summary['cpu_s'] / summary['programs']:.1f} ms per program)")
            if "same_ir" in summary:
                print(f"IR against {summary['compared_with']}: {summary['same_ir']:,} identical, "
                      f"{summary['different_ir']:,} different, {summary['not_in_other_cache']:,} not there")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
