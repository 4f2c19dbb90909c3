"""Training throughput of ncc's models: graphs per second for a full step (forward, backward, optimiser).

Run (from the repository root)::

    NCC_DATA=../shared/data .venv/bin/python benchmarks/train_throughput.py
    .venv/bin/python benchmarks/train_throughput.py --devices cuda --batch-sizes 64,128,256 --amp

Options::

    --model NAME          a model of ncc.models.MODELS (default ggnn, ProGraML's configuration)
    --devices LIST        cpu and/or cuda (default: cpu, and cuda when available)
    --batch-sizes LIST    graphs per batch (default 16,64)
    --nodes N             nodes per graph, about (default 600: ProGraML's graphs average 581)
    --graphs N            distinct graphs in the pool the batches are drawn from (default 256)
    --steps N             timed steps per setting (default 20), after --warmup steps (default 3)
    --amp                 also time mixed precision (bfloat16 autocast) on CUDA
    --threads N           CPU threads for torch (default: torch's choice)
    --classes N           output classes (default 104, as POJ-104)
    --output FILE         JSON results (default benchmarks/results/train_throughput.json)

The graphs are real program graphs made to the size of ProGraML's: the IR of the device-mapping
kernels (NCC's ``kernels_ir.tar.gz`` under ``$NCC_DATA/devmap/ncc``) is built with ``ncc.graph.build``,
and each benchmark graph is the disjoint union of randomly drawn kernel graphs of at most 1.1 x
``--nodes`` nodes until it holds 0.9-1.1 x ``--nodes`` (a module of several kernels, as larger programs
are; a kernel that is large enough alone is one graph). Without ``$NCC_DATA`` a few small C
programs are compiled instead and combined the same way. Node features come from a NodeVocabulary
fitted on the pool.

What is timed: a training step (``zero_grad``, forward, cross-entropy, backward, Adam step) on batches
collated beforehand and already on the device, ``time.perf_counter`` around ``--steps`` steps, with
``torch.cuda.synchronize`` before reading the clock on CUDA. Collating (``Batch.from_data_list``) is
timed separately on the CPU and reported as its own rate: a data loader with workers overlaps it with
the steps. Peak GPU memory is ``torch.cuda.max_memory_allocated`` over the timed steps of a setting.

ProGraML's published figure is 26 ms per graph for GGNN training on a GTX 1080 (about 38 graphs/s);
the target of the models issue is 50 times that, >= 2,000 graphs/s, on one H100 or H200.

This is a script, not part of the package, and no test imports it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ncc.embeddings.node_vocabulary import NodeVocabulary  # noqa: E402
from ncc.graph import build  # noqa: E402
from ncc.graph import to_pyg  # noqa: E402
from ncc.models import MODELS, build_model  # noqa: E402

DATA = Path(os.environ.get("NCC_DATA", ROOT.parent / "shared" / "data"))
DEVMAP_IR_TAR = DATA / "devmap" / "ncc" / "kernels_ir.tar.gz"
PUBLISHED_MS_PER_GRAPH = 26.0
TARGET_GRAPHS_PER_S = 2000

FALLBACK_PROGRAMS = [
    "int f(int *a, int n) { int s = 0; for (int i = 0; i < n; i++) s += a[i] * 3; return s; }",
    "double h(double *a, int n) { double m = 0; for (int i = 1; i < n; i++) if (a[i] > a[i-1]) m += a[i] / a[i-1]; return m; }",
    "int w(int x) { int c = 0; while (x > 0) { c += x & 1; x >>= 1; } return c; }",
    "int k(int x) { switch (x) { case 0: return 4; case 1: return 9; case 5: return 2; default: return x; } }",
    "void mm(float *c, const float *a, const float *b, int n) { for (int i = 0; i < n; i++) for (int j = 0; j < n; j++)"
    " { float s = 0; for (int k = 0; k < n; k++) s += a[i*n+k] * b[k*n+j]; c[i*n+j] = s; } }",
]

logger = logging.getLogger("train_throughput")


def kernel_graphs() -> tuple[list, str]:
    """Program graphs of the devmap kernels' IR, or of a few compiled C programs without the data."""
    graphs = []
    if DEVMAP_IR_TAR.is_file():
        with tarfile.open(DEVMAP_IR_TAR) as tar:
            for member in sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".ll")),
                                 key=lambda m: m.name):
                try:
                    graphs.append(build(tar.extractfile(member).read().decode("utf-8", "replace"),
                                        name=Path(member.name).stem))
                except Exception as error:  # a kernel the builder rejects is left out of the pool
                    logger.debug("skipped %s: %s", member.name, error)
        if graphs:
            return graphs, f"devmap IR ({DEVMAP_IR_TAR}), {len(graphs)} kernels"
    from ncc.frontend import compile

    for i, source in enumerate(FALLBACK_PROGRAMS):
        graphs.append(build(compile(source + "\n", language="c", name=f"p{i}")))
    return graphs, f"{len(graphs)} compiled C programs (no devmap IR under {DATA})"


def program_pool(parts: list, vocabulary: NodeVocabulary, count: int, nodes: int, classes: int, seed: int):
    """``count`` Data of about ``nodes`` nodes each: disjoint unions of randomly drawn real graphs."""
    from torch_geometric.data import Batch, Data

    rng = random.Random(seed)
    high = int(nodes * 1.1)
    pieces = [to_pyg(g, vocabulary, compact=True) for g in parts if g.num_nodes <= high]
    if not pieces:
        raise SystemExit(f"no source graph has at most {high} nodes")
    pool = []
    for i in range(count):
        chosen, total = [], 0
        while total < 0.9 * nodes:
            fitting = [p for p in pieces if total + p.num_nodes <= high]
            if not fitting:
                break
            piece = rng.choice(fitting)
            chosen.append(piece)
            total += piece.num_nodes
        union = Batch.from_data_list(chosen)
        pool.append(Data(x=union.x, edge_index=union.edge_index, edge_flow=union.edge_flow,
                         edge_position=union.edge_position, node_type=union.node_type, num_nodes=union.num_nodes,
                         y=torch.tensor([i % classes])))
    return pool


def collate_rate(pool: list, batch_size: int, repeats: int = 5) -> float:
    """Graphs per second of ``Batch.from_data_list`` on the CPU."""
    from torch_geometric.data import Batch

    start = time.perf_counter()
    for r in range(repeats):
        Batch.from_data_list(pool[(r * batch_size) % len(pool):][:batch_size] or pool[:batch_size])
    return repeats * batch_size / (time.perf_counter() - start)


def time_training(model_name: str, model_kwargs: dict, pool: list, batch_size: int, device: str, amp: bool,
                  steps: int, warmup: int, seed: int) -> dict:
    """Time ``steps`` training steps on pre-collated batches; graphs/s, ms per graph, peak memory."""
    from torch_geometric.data import Batch

    torch.manual_seed(seed)
    model = build_model(model_name, **model_kwargs).to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = []
    for b in range(max(1, min(8, len(pool) // batch_size))):
        chunk = [pool[(b * batch_size + i) % len(pool)] for i in range(batch_size)]
        batches.append(Batch.from_data_list(chunk).to(device))
    cuda = device.startswith("cuda")

    def step(batch):
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp and cuda):
            logits = model(batch)
        loss = torch.nn.functional.cross_entropy(logits.float(), batch.y)
        loss.backward()
        optimiser.step()
        return loss

    for i in range(warmup):
        step(batches[i % len(batches)])
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(steps):
        loss = step(batches[i % len(batches)])
    loss = loss.item()  # waits for the device
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    graphs = steps * batch_size
    nodes = sum(int(batches[i % len(batches)].num_nodes) for i in range(steps))
    return {
        "device": device, "amp": bool(amp and cuda), "batch_size": batch_size, "steps": steps,
        "graphs_per_s": graphs / elapsed, "ms_per_graph": 1e3 * elapsed / graphs, "nodes_per_s": nodes / elapsed,
        "mean_nodes_per_batch": nodes / steps, "final_loss": loss,
        "peak_gpu_memory_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="ggnn", choices=sorted(MODELS))
    parser.add_argument("--devices", default=None)
    parser.add_argument("--batch-sizes", default="16,64")
    parser.add_argument("--nodes", type=int, default=600)
    parser.add_argument("--graphs", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--classes", type=int, default=104)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "train_throughput.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if any(d.startswith("cuda") for d in devices) and not torch.cuda.is_available():
        parser.error("--devices names cuda but torch sees no CUDA device")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    start = time.perf_counter()
    parts, source = kernel_graphs()
    vocabulary = NodeVocabulary().fit(parts)
    pool = program_pool(parts, vocabulary, args.graphs, args.nodes, args.classes, args.seed)
    sizes = np.array([d.num_nodes for d in pool])
    edges = np.array([d.edge_index.shape[1] for d in pool])
    logger.info("pool: %d graphs from %s; nodes mean %.0f (min %d, max %d), edges mean %.0f; made in %.1f s",
                len(pool), source, sizes.mean(), sizes.min(), sizes.max(), edges.mean(), time.perf_counter() - start)
    model_kwargs = {"vocab_size": len(vocabulary), "num_classes": args.classes}

    results = []
    for device in devices:
        for amp in ([False, True] if args.amp and device.startswith("cuda") else [False]):
            for batch_size in batch_sizes:
                row = time_training(args.model, model_kwargs, pool, batch_size, device, amp, args.steps,
                                    args.warmup, args.seed)
                row["collate_graphs_per_s"] = collate_rate(pool, batch_size)
                results.append(row)
                logger.info("%s%s batch %d: %.1f graphs/s", device, " amp" if row["amp"] else "", batch_size,
                            row["graphs_per_s"])

    header = f"{'device':<14}{'amp':<5}{'batch':>6}{'graphs/s':>11}{'ms/graph':>10}{'nodes/s':>11}" \
             f"{'peak MiB':>10}{'collate/s':>11}"
    lines = [f"{args.model} training throughput, graphs of ~{sizes.mean():.0f} nodes "
             f"(ProGraML: {PUBLISHED_MS_PER_GRAPH} ms/graph; target >= {TARGET_GRAPHS_PER_S} graphs/s on H100/H200)",
             header]
    for r in results:
        name = torch.cuda.get_device_name() if r["device"].startswith("cuda") else f"cpu x{torch.get_num_threads()}"
        peak = f"{r['peak_gpu_memory_mib']:.0f}" if r["peak_gpu_memory_mib"] is not None else "-"
        lines.append(f"{name[:13]:<14}{'yes' if r['amp'] else 'no':<5}{r['batch_size']:>6}{r['graphs_per_s']:>11.1f}"
                     f"{r['ms_per_graph']:>10.2f}{r['nodes_per_s']:>11.0f}{peak:>10}{r['collate_graphs_per_s']:>11.0f}")
    print("\n".join(lines))

    record = {
        "benchmark": "train_throughput", "model": args.model, "model_kwargs": model_kwargs,
        "pool": {"source": source, "graphs": len(pool), "mean_nodes": float(sizes.mean()),
                 "mean_edges": float(edges.mean()), "target_nodes": args.nodes},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": results,
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "torch_geometric": __import__("torch_geometric").__version__,
                        "cpu": platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads(),
                        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                        "git_commit": git_commit()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=1))
    logger.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
