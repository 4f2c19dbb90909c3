"""The Dask executor against the local process pool: a POJ-104 compile batch on each, and Dask's per-task cost.

* Batch: the same seeded sample of POJ-104 programs (unpacked from ``$NCC_DATA/poj104``) compiled by
  ``compile_batch(dialect="poj104", workers=W)`` on the local pool and on a local Dask cluster of W worker
  processes (one thread each), in alternating rounds, each into a fresh IR cache (the PCH and the cluster
  are made once, before the rounds). Reports each round's wall time, the medians, the overhead of Dask
  over the pool, and whether both gave byte-identical IR and the same failures.
* Per-task cost: ``--noop N`` empty tasks through the same cluster (``client.map`` + ``as_completed``, as
  ``run_jobs`` does), the wall time per task; the scheduler's own time per task is the floor of any cluster.
* Estimate: the time for ``--files`` files on ``--nodes`` nodes of ``--cores`` cores, from the measured CPU
  per file (of the local rounds: the batch process, its pool workers and their clang processes), the client's
  own time per file (a second run of the batch, every file a cache hit: reading, dialect, cache key), the
  tasks run_jobs would send (:func:`ncc.processes.dask_chunks`) and the per-task cost:
  ``files x client time + max(files x cpu / cores, tasks x per-task cost)``.

Usage::

    NCC_DATA=../shared/data nice -n 10 .venv/bin/python benchmarks/executor_overhead.py \\
        --sample 400 --workers 2 --rounds 3 --noop 2000 --json benchmarks/results/executor_overhead.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compile_speed import unpack_sample  # noqa: E402  (same sample rule as the compile benchmark)

logger = logging.getLogger("executor_overhead")


def _noop(value: int) -> int:
    return value


def batch_round(files: list[Path], workers: int, executor: str, cache: Path) -> tuple[float, dict, list, float]:
    """(wall s, IR digests, failures, CPU s of this process and its reaped children: the local pool's workers
    and their clang processes; a Dask cluster's workers are not children, so there it is the client's alone)."""
    import resource

    from ncc.frontend.batch import compile_batch

    before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    started = time.perf_counter()
    result = compile_batch(files, dialect="poj104", workers=workers, cache_dir=cache, progress=False,
                           executor=executor)
    elapsed = time.perf_counter() - started
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime for a, b in zip(before, after))
    digests = {entry.path: hashlib.sha256(entry.ir_path.read_bytes()).hexdigest() for entry in result.entries}
    return elapsed, digests, sorted((failure.path, failure.reason) for failure in result.failures), cpu


def noop_cost(address: str, count: int) -> dict:
    """Wall time per empty task through the cluster at ``address``, median of 3 runs of ``count`` tasks."""
    import distributed

    times = []
    with distributed.Client(address) as client:
        for _ in range(3):
            started = time.perf_counter()
            futures = client.map(_noop, range(count), pure=False)
            for _ in distributed.as_completed(futures):
                pass
            times.append((time.perf_counter() - started) / count)
    return {"tasks": count, "seconds_per_task": times, "median_ms": 1000 * statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=400)
    parser.add_argument("--seed", type=int, default=104)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--noop", type=int, default=2000, help="empty tasks for the per-task cost")
    parser.add_argument("--files", type=float, default=1e6, help="files in the estimate")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--cores", type=int, default=32, help="cores per node")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import distributed

    from ncc.processes import close_dask_clients, dask_chunks

    report: dict = {"workers": args.workers, "programs": args.sample}
    with tempfile.TemporaryDirectory(prefix="ncc-executor-") as scratch_name:
        scratch = Path(scratch_name)
        os.environ["NCC_CACHE"] = str(scratch / "ncc-cache")  # the PCH of this run; ~/.cache/ncc untouched
        files = unpack_sample(args.sample, args.seed, scratch / "sources")
        with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                      dashboard_address=":0", silence_logs=logging.ERROR) as cluster:
            address = cluster.scheduler_address
            batch_round(files[:2], args.workers, "local", scratch / "warm-local")  # PCH, toolchain
            batch_round(files[:4], args.workers, address, scratch / "warm-dask")  # workers import ncc
            walls: dict[str, list[float]] = {"local": [], "dask": []}  # and "local_cpu", "cached"
            outcomes = {}
            for round_number in range(args.rounds):
                order = ("local", "dask") if round_number % 2 == 0 else ("dask", "local")
                for side in order:
                    elapsed, digests, failures, cpu = batch_round(
                        files, args.workers, "local" if side == "local" else address,
                        scratch / f"{side}-{round_number}")
                    walls[side].append(elapsed)
                    outcomes.setdefault(side, (digests, failures))
                    if side == "local":  # the same batch again, every file a cache hit: the client's own cost
                        walls.setdefault("local_cpu", []).append(cpu)
                        hits, _, _, _ = batch_round(files, args.workers, "local", scratch / f"{side}-{round_number}")
                        walls.setdefault("cached", []).append(hits)
                    logger.info("round %d %s: %.1f s", round_number + 1, side, elapsed)
            report["noop"] = noop_cost(address, args.noop)
            close_dask_clients()  # before the cluster goes
    local, dask = statistics.median(walls["local"]), statistics.median(walls["dask"])
    report.update(walls=walls, median_local_s=local, median_dask_s=dask, overhead=dask / local - 1,
                  same_ir=outcomes["local"][0] == outcomes["dask"][0],
                  same_failures=outcomes["local"][1] == outcomes["dask"][1],
                  programs_with_ir=len(outcomes["local"][0]))
    cpu_per_file = statistics.median(walls["local_cpu"]) / args.sample  # CPU, not wall: what idle cores would take
    cores = args.nodes * args.cores
    sizes = dask_chunks(int(args.files), cores)
    chunk, tasks = sizes[0], len(sizes)
    per_task = report["noop"]["median_ms"] / 1000
    compute = args.files * cpu_per_file / cores
    planning = args.files * statistics.median(walls["cached"]) / args.sample  # cache keys, in the client
    report["estimate"] = {"files": args.files, "nodes": args.nodes, "cores_per_node": args.cores,
                          "cpu_s_per_file": cpu_per_file, "client_s_per_file": planning / args.files,
                          "chunk": chunk, "tasks": tasks, "planning_s": planning, "compute_s": compute,
                          "scheduler_s": tasks * per_task, "wall_s": planning + max(compute, tasks * per_task)}
    print(f"local pool: median {local:.1f} s, Dask: median {dask:.1f} s for {args.sample} programs on "
          f"{args.workers} workers: overhead {100 * report['overhead']:+.1f} %; rounds local "
          + ", ".join(f"{w:.1f}" for w in walls["local"]) + "; Dask " + ", ".join(f"{w:.1f}" for w in walls["dask"]))
    print(f"same IR: {report['same_ir']} ({report['programs_with_ir']} programs), same failures: "
          f"{report['same_failures']}")
    print(f"Dask per empty task: {report['noop']['median_ms']:.2f} ms (median of 3 x {args.noop})")
    estimate = report["estimate"]
    print(f"estimate: {args.files:,.0f} files on {args.nodes} x {args.cores} cores: the client plans them "
          f"(cache keys) in {estimate['planning_s'] / 60:.1f} min ({1000 * estimate['client_s_per_file']:.2f} ms "
          f"a file), then {1000 * cpu_per_file:.1f} ms CPU per file is {estimate['compute_s'] / 60:.1f} min of "
          f"compiling while {estimate['tasks']:,} tasks (of {chunk} files down to 1) cost the scheduler "
          f"{estimate['scheduler_s'] / 60:.1f} min -> about {estimate['wall_s'] / 60:.1f} min")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
