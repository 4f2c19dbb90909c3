"""Peak memory and throughput of POJ-104 training for a bounded number of steps, before / after a change.

Run (from the repository root)::

    export NCC_DATA=../shared/data
    .venv/bin/python benchmarks/train_memory.py --baseline effbaf8 --current HEAD --steps 100 --rounds 2

Options::

    --baseline REV      git revision of the "before" side (omit: measure the current side only)
    --current REV       git revision of the "after" side (default: this working tree as it is); a revision
                        keeps other people's uncommitted edits out of the comparison
    --protocol P        classifyapp protocol (default full)
    --model NAME        the classifyapp row whose settings are trained (default rgine)
    --steps N           training steps (default 100)
    --eval-batches N    batches of each evaluation (validation after the epoch, then val and test; default 10)
    --rounds N          before / after subprocess pairs, alternating (default 2)
    --prepare           prepare the data with the task (compile check, processing where missing) instead of
                        reading the processed datasets from the cache directly
    --process           (with --prepare) process the datasets afresh in each run (a scratch cache folder that links the cached
                        inst2vec embeddings and vocabularies; the compiled IR comes from the IR cache): the
                        peak after preparing is then that of building every graph and writing the datasets
    --output FILE       JSON (default benchmarks/results/train_memory.json), rewritten after every run

Each side runs in a fresh subprocess with ``PYTHONPATH`` at a ``git worktree`` of its revision (the
worker checks that ``ncc`` comes from there): it builds the row's configuration as ``ncc reproduce
classifyapp`` does (:func:`ncc.tasks.classifyapp.row_settings`), opens the row's processed datasets in
ncc's cache as that revision's ``ProgramGraphDataset`` (named by their source keys and the inst2vec
embeddings' digest, as the task names them; ``--prepare`` runs the task's own ``prepare`` instead, which
also checks the IR cache of every program and builds what is missing), and runs
``ncc.training.train`` for one epoch with the trainer's ``GraphBatchSampler`` cut to ``--steps`` training
batches and ``--eval-batches`` batches per evaluation. It reports its peak resident set size
(``VmHWM`` of ``/proc/self/status``: anonymous and file-backed pages) after preparing and at the end,
the trainer's training graphs/s, the mean training loss and a sha256 of the trained weights: with the
same seed, before and after must train identically. Timings on a shared machine move with its load; the
rounds alternate so that both sides see it alike.

This is a script, not part of the package, and no test imports it. (``--worker JSON`` is its own
subprocess entry point.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(settings: dict) -> dict:
    """One bounded training run in this process (``ncc`` from ``PYTHONPATH``); returns its figures."""
    import hashlib
    import resource

    import torch

    import ncc
    from ncc.tasks.classifyapp import ClassifyappTask, row_settings
    from ncc.training import trainer
    from ncc.training.config import load_config

    tree = Path(settings["tree"]).resolve()
    if Path(ncc.__file__).resolve().parents[1] != tree:
        raise SystemExit(f"ncc imported from {ncc.__file__}, not from {tree}")

    def peak_mib() -> float:  # VmHWM: ru_maxrss would count the parent's pages at the fork
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    base = trainer.GraphBatchSampler

    class Bounded(base):
        """The trainer's sampler, cut to a few training steps and evaluation batches."""

        def steps(self):
            limit = settings["steps"] if self.shuffle else settings["eval_batches"]
            return super().steps()[:limit]

    trainer.GraphBatchSampler = Bounded
    model = settings["model"]
    overrides = {"task": "classifyapp", "model.name": model, "seed": 0, "output": settings["output"],
                 "progress": False, "task.protocol": settings["protocol"], "task.classes": 104,
                 "task.opt_levels": "0", **row_settings(model, settings["protocol"]), "epochs": 1,
                 "checkpoint_minutes": 0}
    if settings.get("process"):
        from ncc.paths import cache_home

        scratch = Path(settings["output"] + "-cache") / "classifyapp"
        scratch.mkdir(parents=True)
        for path in (cache_home() / "classifyapp").iterdir():
            if path.name.startswith(("inst2vec-", "vocabulary-")):
                (scratch / path.name).symlink_to(path)
        overrides["data.cache_dir"] = str(scratch.parent)
    config = load_config(None, overrides)
    started = time.perf_counter()
    data = ClassifyappTask().prepare(config, progress=False) if settings.get("prepare") else cached_data(config)
    prepare_s = time.perf_counter() - started
    after_prepare = peak_mib()
    result = trainer.train(config, task_data=data)
    weights = torch.load(result.best_checkpoint, weights_only=False)["model"]
    digest = hashlib.sha256(b"".join(value.cpu().contiguous().numpy().tobytes()
                                     for value in weights.values())).hexdigest()
    history = result.history[0]
    return {"peak_rss_mib": peak_mib(), "peak_rss_after_prepare_mib": after_prepare, "prepare_s": prepare_s,
            "train_graphs_per_s": history["train_graphs_per_s"], "train_graphs": history["train_graphs"],
            "steps": history["steps"], "train_loss": history["train_loss"], "weights_sha256": digest,
            "processed": any(getattr(split, "reprocessed", False) for split in data.splits.values()),
            "splits": {name: len(split) for name, split in data.splits.items()}}


class CachedEncoder:
    """Stands for the row's feature encoder: only its digest names the processed datasets."""

    def __init__(self, digest: str, size: int):
        self._digest, self.size = digest, size

    def digest(self) -> str:
        return self._digest

    def __len__(self) -> int:
        return self.size


class CachedSource:
    """A processed split's source, known by its key alone (never built)."""

    def __init__(self, key: str):
        self.key = key

    def examples(self):
        raise RuntimeError("the benchmark reads processed datasets; run the row once to make them")


def cached_data(config):
    """The row's TaskData from the processed datasets and inst2vec embeddings in the cache, without the task's
    compile check (its cache keys move with the toolchain's precompiled prelude)."""
    from ncc.embeddings.encoders import embeddings_digest
    from ncc.embeddings.skipgram import Embeddings
    from ncc.paths import cache_home
    from ncc.training.datasets import ProgramGraphDataset
    from ncc.training.task import TaskData

    root = cache_home() / "classifyapp"
    protocol = config.task_options.get("protocol", "full")
    manifests = {}
    for path in sorted((root / "processed").glob(f"{protocol}-*-*.json")):
        record = json.loads(path.read_text())
        manifests.setdefault((path.name.split("-")[1], record["features"]), record)
    splits = {}
    for folder in sorted(root.glob("inst2vec-*"), key=lambda p: p.stat().st_mtime, reverse=True):
        embeddings = Embeddings.load(folder)
        digest = embeddings_digest(embeddings)
        if all((split, digest) in manifests for split in ("train", "val", "test")) and \
                manifests[("train", digest)]["source"].startswith(folder.name.split("-")[1]):
            encoder = CachedEncoder(digest, len(embeddings.feature_matrix()))
            for split in ("train", "val", "test"):
                splits[split] = ProgramGraphDataset(root, CachedSource(manifests[(split, digest)]["source"]), encoder,
                                                    name=f"{protocol}-{split}")
            return TaskData(splits=splits, encoder=encoder, num_classes=104, pretrained=embeddings.feature_matrix())
    raise SystemExit(f"no processed {protocol} datasets with inst2vec features in {root}")


def run_side(tree: Path, args: argparse.Namespace, output: Path) -> dict:
    settings = {"tree": str(tree), "model": args.model, "protocol": args.protocol, "steps": args.steps,
                "eval_batches": args.eval_batches, "output": str(output), "process": args.process,
                "prepare": args.prepare or args.process}
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(settings)], env=env, cwd=tree,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"worker at {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worktree(revision: str, scratch: Path) -> Path:
    path = scratch / revision.replace("/", "_")
    subprocess.run(["git", "worktree", "add", "--detach", str(path), revision], cwd=ROOT, check=True,
                   capture_output=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline")
    parser.add_argument("--current")
    parser.add_argument("--protocol", default="full")
    parser.add_argument("--model", default="rgine")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eval-batches", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--process", action="store_true")
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "train_memory.json"))
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ncc-train-memory-"))
    trees = {}
    try:
        if args.baseline:
            trees["before"] = worktree(args.baseline, scratch)
        trees["after"] = worktree(args.current, scratch) if args.current else ROOT
        runs: dict[str, list[dict]] = {side: [] for side in trees}
        for round_ in range(args.rounds):
            for side, tree in trees.items():
                figures = run_side(tree, args, scratch / f"run-{side}-{round_}")
                runs[side].append(figures)
                Path(args.output).parent.mkdir(parents=True, exist_ok=True)
                Path(args.output).write_text(json.dumps({"settings": vars(args), "runs": runs}, indent=1))
                print(f"round {round_ + 1} {side}: peak RSS {figures['peak_rss_mib']:.0f} MiB "
                      f"(after preparing {figures['peak_rss_after_prepare_mib']:.0f}), "
                      f"{figures['train_graphs_per_s']:.1f} training graphs/s, loss {figures['train_loss']:.6f}, "
                      f"weights {figures['weights_sha256'][:16]}",
                      file=sys.stderr)
        summary = {side: {"peak_rss_mib_max": max(r["peak_rss_mib"] for r in rs),
                          "train_graphs_per_s_median": statistics.median(r["train_graphs_per_s"] for r in rs)}
                   for side, rs in runs.items()}
        same = len({r["weights_sha256"] for rs in runs.values() for r in rs}) == 1
        report = {"settings": vars(args), "runs": runs, "summary": summary, "identical_training": same,
                  "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                              "load_average": os.getloadavg()}}
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=1))
        print(f"| side | revision | peak RSS (MiB) | after preparing (MiB) | training graphs/s (median of {args.rounds}) |")
        print("|---|---|---|---|---|")
        for side, rs in runs.items():
            revision = args.baseline if side == "before" else (args.current or "working tree")
            print(f"| {side} | {revision} | {summary[side]['peak_rss_mib_max']:.0f} | "
                  f"{max(r['peak_rss_after_prepare_mib'] for r in rs):.0f} | "
                  f"{summary[side]['train_graphs_per_s_median']:.1f} |")
        print(f"\nidentical weights after training on every run: {same}")
    finally:
        for side, tree in trees.items():
            if tree != ROOT:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(worker(json.loads(sys.argv[2]))))
    else:
        main()
