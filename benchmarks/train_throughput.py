"""Training throughput of ncc's graph models on POJ-104's real graphs, where the time goes, and PyG's stock layers.

Run (from the repository root)::

    export NCC_DATA=../shared/data
    .venv/bin/python benchmarks/train_throughput.py                                # GGNN and rgine, CPU
    .venv/bin/python benchmarks/train_throughput.py --model ggnn --baseline 7ac0138  # and before / after
    .venv/bin/python benchmarks/train_throughput.py --graphs 128 --repeats 2 --rounds 1 --baseline 7ac0138
    .venv/bin/python benchmarks/train_throughput.py --devices cuda --batch-sizes 64,256 --amp

Options::

    --model NAME          ggnn, rgine or all (default all)
    --protocol P          whose classifyapp row settings the model takes: full (default; the GGNN as
                          ProGraML configured it, hidden 200 on inst2vec, layer groups 2,2,2) or quick
    --graphs-from SRC     poj104 (default): graphs of POJ-104's quick-protocol training split, with the
                          features the classifyapp table trains on; kernels: unions of the devmap kernels'
                          graphs of about --nodes nodes (no POJ-104 needed; used where POJ-104 is missing)
    --graphs N            graphs drawn (seeded) for the run (default 512)
    --batch-size(s) LIST  graphs per batch, one or several (default 64)
    --repeats N           timed repeats per measurement; each figure is their median (default 5)
    --steps N             training steps per repeat (default: one pass over the --graphs graphs)
    --warmup N            untimed steps before each measurement (default 2)
    --baseline REV        also time the models of git revision REV (e.g. 7ac0138), before / after
    --rounds N            baseline / current subprocess runs, alternating (default 3)
    --devices LIST        cpu and/or cuda (default: cpu, and cuda when available)
    --amp                 also time bfloat16 autocast on CUDA
    --threads N           torch's CPU threads (default: torch's choice, one per core)
    --skip-pyg            leave out PyG's stock layers
    --skip-profile        leave out the profile
    --nodes N             --graphs-from kernels: nodes per graph, about (default 600)
    --classes N           --graphs-from kernels: classes (default 104)
    --seed N              graph choice, model initialisation, batch order (default 0)
    --output FILE         JSON (default benchmarks/results/train_throughput.json), rewritten after every
                          model, so a run that is cut short keeps what it finished

The graphs. With ``--graphs-from poj104`` the configuration is built as ``ncc reproduce classifyapp``
builds a row's: ``load_config`` with the task, the model and the ``model.*`` / ``data.*`` keys of
``ncc.tasks.classifyapp.row_settings(MODEL, PROTOCOL)``; the data set is ``ClassifyappTask().prepare``
on the quick protocol's programs (cached after the first time; its training split holds ~6,160 graphs
of ~534 nodes), and the model is ``build_task_model(MODEL, model_kwargs(...))`` with the inst2vec matrix
as its pretrained embeddings, as the trainer builds it. ``--graphs`` of the training split are drawn
at random (seeded). With ``--graphs-from kernels`` the graphs are disjoint unions of devmap kernel
graphs of about ``--nodes`` nodes (a few compiled C programs without the devmap data) with node-text
features; the model takes the same row settings, with a learned 200-wide table where the row reads
inst2vec's 200-wide vectors.

What is timed (``time.perf_counter``; each figure the median of ``--repeats`` repeats after ``--warmup``
steps; ``torch.cuda.synchronize`` before the clock is read on CUDA):

- ``step``: training steps (``zero_grad``, forward, ``cross_entropy``, backward, Adam step) on batches
  collated beforehand (``Batch.from_data_list`` of ``--batch-size`` graphs) and already on the device.
- ``loader``: the trainer's data path alone: ``GraphBatchSampler`` + ``ncc.training.trainer._loader``
  (PyG's DataLoader, no workers) over the chosen graphs (for POJ-104, an index view of the processed
  ``InMemoryDataset``, read as the trainer reads it): indexing and collation, graphs/s.
- ``epoch``: that loader and the training step together, one pass over the chosen graphs per repeat:
  what a user sees per epoch (without validation).
- ``profile`` (CPU, the first batch size): ``torch.profiler`` over a few steps; the self CPU time of
  the aten ops, grouped: message passing (by name ``index_select``, ``scatter*``, ``gather``,
  ``index_add*``, ``index``/``index_put``, ``embedding*``, ``unique``: the gathers and scatters over
  edges and their backward; and any other op with an edge-sized input, ``[E, ...]`` or ``[2E, ...]``
  by the profiler's recorded shapes, such as the messages' gating), dense (``mm``, ``addmm``, ``bmm``,
  ``linear``, ``matmul``: the GRU's, the MLPs' and the message transforms' matmuls), optimiser (every
  op under the optimiser's ``Optimizer.step#...`` / ``Optimizer.zero_grad#...`` record_function),
  elementwise (the other aten ops: activations, normalisation, the GRU's gates, sums, copies); Python
  and framework overhead is the profiled wall time minus the summed self time of all aten ops (the
  profiler's own overhead lands there and in the ops' times: a profiled step is slower than an
  unprofiled one, and both are printed). The loader's collation per batch is shown beside it.
- PyG's stock layers (``--skip-pyg`` leaves them out) on the same batches, with the ncc model's hidden
  size, node embedding (the same pretrained matrix where it has one), optimiser and loss. For the GGNN:
  ``GatedGraphConv(H, num_layers=sum of the steps, aggr="mean")`` on untyped edges, both directions,
  and a typed GGNN a user would assemble from ``RGCNConv(H, H, num_relations=6, aggr="mean")`` and a
  ``GRUCell(H, H)`` per step (weights shared within a layer group, as in ncc's GGNN); both with sum
  pooling and a linear head. For rgine: as many ``GINEConv(Sequential(Linear(H, 2H), BatchNorm1d(2H),
  ReLU, Linear(2H, H)), train_eps=True, edge_dim=H)`` layers as the model has, edge features a
  learned vector per edge type plus a learned map of the edge position's sinusoidal encoding (as
  ncc's), with residual, batch norm and ReLU; and the same stack of ``RGCNConv(H, H, 6)``; both with
  mean and max pooling and an MLP head. The six edge types are the three flows forward and reversed
  (``ncc.models.common.bidirectional_edges``). Reported as graphs/s and ncc's step rate over theirs.
- ``--baseline REV``: a temporary ``git worktree add --detach`` of REV (removed at the end); the
  collated batches and the model's arguments go to a temporary file, and the ``step`` timing runs in a
  subprocess with ``PYTHONPATH`` at that worktree (the worker checks that ``ncc`` comes from there) and
  in one at this checkout (the working tree as it is, uncommitted changes included), alternating
  ``--rounds`` times so that the machine's load falls on both alike. Each side's figure is the median
  over all its repeats; the ratio is current over baseline.

Output: Markdown on stdout (progress on stderr), JSON in ``--output`` with the settings, every
repeat, the profile's top ops, and the environment (torch and PyG versions, CPU model, threads, load
average before and after, git commit and whether ``ncc/`` had uncommitted changes). Timings on a
shared machine move with its load: compare figures of one run, or runs at the same load.

ProGraML's published figure is 26 ms per graph for GGNN training on a GTX 1080 (about 38 graphs/s);
the GPU target of the models issue is >= 2,000 graphs/s on one H100 or H200.

This is a script, not part of the package, and no test imports it. (``--worker IN OUT`` is its own
subprocess entry point for the baseline runs.)
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
WORKER = "--worker"
if WORKER not in sys.argv[1:2]:  # a worker imports ncc from the tree its PYTHONPATH names
    sys.path.insert(0, str(ROOT))

MODEL_NAMES = ("ggnn", "rgine")
INST2VEC_DIM = 200
PUBLISHED_MS_PER_GRAPH = 26.0
TARGET_GRAPHS_PER_S = 2000
PROFILE_STEPS = 3
DENSE_OPS = {"mm", "addmm", "bmm", "baddbmm", "linear", "matmul", "_addmm_activation", "addmv", "mv"}
MESSAGE_OPS = ("index_select", "scatter", "gather", "index_add", "embedding", "segment", "unique")
MESSAGE_EXACT = {"index", "index_put", "index_put_", "_index_put_impl_"}
CATEGORIES = ("message passing", "dense (GRU, MLP, transforms)", "elementwise, norm, activation", "optimiser (Adam)",
              "Python / framework overhead")
FALLBACK_PROGRAMS = [
    "int f(int *a, int n) { int s = 0; for (int i = 0; i < n; i++) s += a[i] * 3; return s; }",
    "double h(double *a, int n) { double m = 0; for (int i = 1; i < n; i++) if (a[i] > a[i-1]) m += a[i] / a[i-1]; return m; }",
    "int w(int x) { int c = 0; while (x > 0) { c += x & 1; x >>= 1; } return c; }",
    "int k(int x) { switch (x) { case 0: return 4; case 1: return 9; case 5: return 2; default: return x; } }",
    ("void mm(float *c, const float *a, const float *b, int n) { for (int i = 0; i < n; i++) for (int j = 0; j < n; j++)"
     " { float s = 0; for (int k = 0; k < n; k++) s += a[i*n+k] * b[k*n+j]; c[i*n+j] = s; } }"),
]

logger = logging.getLogger("train_throughput")


# ------------------------------------------------------------------------------------- timing core
# Used by the main process and by the workers, which import ncc from another tree: no ncc imports here.

def train_step(model: torch.nn.Module, optimiser: torch.optim.Optimizer, device: torch.device,
               amp: bool) -> Callable:
    """One training step on a batch: zero_grad, forward (bf16 autocast on CUDA with ``amp``), loss, backward, Adam."""
    cuda = device.type == "cuda"

    def step(batch):
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp and cuda):
            logits = model(batch)
        loss = torch.nn.functional.cross_entropy(logits.float(), batch.y.reshape(-1))
        loss.backward()
        optimiser.step()
        return loss

    return step


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable, batches: list, steps: int, warmup: int, repeats: int,
               device: torch.device) -> tuple[list[float], float]:
    """Seconds of each of ``repeats`` runs of ``steps`` steps over ``batches`` (cycled), after ``warmup`` steps."""
    loss = None
    for i in range(warmup):
        loss = step(batches[i % len(batches)])
    synchronize(device)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            loss = step(batches[i % len(batches)])
        value = float(loss.detach())  # waits for the device
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds, value


def worker_main(payload_path: str, result_path: str) -> int:
    """The ``step`` timing of the ncc on PYTHONPATH, for --baseline (both sides run here)."""
    payload = torch.load(payload_path, weights_only=False)
    import ncc
    from ncc.models import build_model

    source = Path(ncc.__file__).resolve()
    expected = Path(payload["expect_root"]).resolve()
    if not source.is_relative_to(expected):
        raise SystemExit(f"worker: ncc comes from {source}, not from {expected}")
    if payload["threads"]:
        torch.set_num_threads(payload["threads"])
    device = torch.device(payload["device"])
    torch.manual_seed(payload["seed"])
    model = build_model(payload["model"], **payload["kwargs"]).to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [b.to(device) for b in payload["batches"]]
    seconds, loss = time_steps(train_step(model, optimiser, device, False), batches, payload["steps"],
                               payload["warmup"], payload["repeats"], device)
    graphs = sum(int(batches[i % len(batches)].num_graphs) for i in range(payload["steps"]))
    Path(result_path).write_text(json.dumps({
        "ncc": str(source), "seconds": seconds, "graphs_per_repeat": graphs,
        "graphs_per_s": [graphs / s for s in seconds], "final_loss": loss, "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters())}))
    return 0


# ------------------------------------------------------------------------------------------ inputs

@dataclass
class Inputs:
    """A model's graphs and constructor arguments."""

    model: str
    source: str
    graphs: list  # Data, in the drawn order
    dataset: Any  # what the data loader reads: an index view of the processed dataset, or the list
    sizes: np.ndarray
    kwargs: dict  # the model's arguments, pretrained embeddings included
    settings: dict  # the row settings' model.* / data.* keys


def row_overrides(model: str, protocol: str) -> dict:
    from ncc.tasks.classifyapp import row_settings

    return {k: v for k, v in row_settings(model, protocol).items() if k.startswith(("model.", "data."))}


def row_config(model: str, protocol: str):
    from ncc.training.config import load_config

    settings = row_overrides(model, protocol)
    overrides = {"task": "classifyapp", "model.name": model, "task.protocol": "quick", "progress": False,
                 **settings}
    return load_config(None, overrides), settings


def poj104_missing() -> str | None:
    """Why POJ-104 cannot be read here, or None when its files are under the data folder."""
    from ncc.paths import data_home
    from ncc.tasks import classifyapp

    folder = data_home() / "poj104"
    names = getattr(classifyapp, "_DATA_FILES", ("poj104_codexglue.tar.gz", "manifest.csv.gz"))
    missing = [name for name in names if not (folder / name).is_file()]
    return f"{folder} lacks {', '.join(missing)}" if missing else None


def poj104_inputs(model: str, args: argparse.Namespace, prepared: dict) -> Inputs:
    from ncc.tasks.classifyapp import ClassifyappTask
    from ncc.training.trainer import model_kwargs

    config, settings = row_config(model, args.protocol)
    task = ClassifyappTask()
    key = json.dumps([config.data.to_dict() if hasattr(config.data, "to_dict") else repr(config.data),
                      config.data.feature_kind(model)], sort_keys=True, default=str)
    if key not in prepared:
        start = time.perf_counter()
        prepared[key] = task.prepare(config, progress=False)
        logger.info("POJ-104 (quick protocol, %s features) prepared in %.1f s", config.data.feature_kind(model),
                    time.perf_counter() - start)
    data = prepared[key]
    kwargs = model_kwargs(config, task, data)
    if data.pretrained is not None:  # as the trainer's model factory adds them
        kwargs["pretrained_embeddings"] = data.pretrained
    train = data.splits["train"]
    count = min(args.graphs, len(train))
    index = np.random.default_rng(args.seed).choice(len(train), size=count, replace=False)
    subset = train[torch.as_tensor(index)]
    graphs = [subset[i] for i in range(len(subset))]
    source = (f"POJ-104 quick-protocol training split ({len(train)} graphs, "
              f"{config.data.feature_kind(model)} features), {count} drawn with seed {args.seed}")
    return Inputs(model, source, graphs, subset, np.asarray(train.num_nodes_per_graph)[index], kwargs, settings)


def kernel_graphs() -> tuple[list, str]:
    """Program graphs of the devmap kernels' IR, or of a few compiled C programs without the data."""
    from ncc.graph import build
    from ncc.paths import data_home

    tar_path = data_home() / "devmap" / "ncc" / "kernels_ir.tar.gz"
    graphs = []
    if tar_path.is_file():
        with tarfile.open(tar_path) as tar:
            for member in sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".ll")),
                                 key=lambda m: m.name):
                try:
                    graphs.append(build(tar.extractfile(member).read().decode("utf-8", "replace"),
                                        name=Path(member.name).stem))
                except Exception as error:  # noqa: BLE001 (a kernel the builder rejects is left out of the pool)
                    logger.debug("skipped %s: %s", member.name, error)
        if graphs:
            return graphs, f"devmap IR ({tar_path}), {len(graphs)} kernels"
    from ncc.frontend import compile

    for i, text in enumerate(FALLBACK_PROGRAMS):
        graphs.append(build(compile(text + "\n", language="c", name=f"p{i}")))
    return graphs, f"{len(graphs)} compiled C programs (no devmap IR under {data_home()})"


def program_pool(parts: list, vocabulary: Any, count: int, nodes: int, classes: int, seed: int) -> list:
    """``count`` Data of about ``nodes`` nodes each: disjoint unions of randomly drawn real graphs."""
    from torch_geometric.data import Batch, Data

    from ncc.graph import to_pyg

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


def kernel_inputs(model: str, args: argparse.Namespace, prepared: dict, why: str = "") -> Inputs:
    from ncc.embeddings.node_vocabulary import NodeVocabulary

    if "kernels" not in prepared:
        start = time.perf_counter()
        parts, source = kernel_graphs()
        vocabulary = NodeVocabulary().fit(parts)
        pool = program_pool(parts, vocabulary, args.graphs, args.nodes, args.classes, args.seed)
        prepared["kernels"] = (pool, vocabulary, source)
        logger.info("kernel pool: %d graphs from %s in %.1f s", len(pool), source, time.perf_counter() - start)
    pool, vocabulary, source = prepared["kernels"]
    config, settings = row_config(model, args.protocol)
    kwargs = dict(config.model.kwargs)
    kwargs.update(vocab_size=len(vocabulary), num_classes=args.classes)
    if config.data.feature_kind(model) == "inst2vec":  # a learned table as wide as inst2vec's vectors
        kwargs["embedding_dim"] = INST2VEC_DIM
    text = f"unions of kernel graphs of ~{args.nodes} nodes from {source}, node-text features" + (
        f" ({why})" if why else "")
    return Inputs(model, text, pool, pool, np.array([int(d.num_nodes) for d in pool]), kwargs, settings)


def collate(graphs: list, batch_size: int) -> list:
    from torch_geometric.data import Batch

    if len(graphs) < batch_size:
        raise SystemExit(f"--graphs {len(graphs)} is less than a batch of {batch_size}")
    return [Batch.from_data_list(graphs[i:i + batch_size])
            for i in range(0, len(graphs) - batch_size + 1, batch_size)]


# ------------------------------------------------------------------------------ PyG's stock layers

def reference_embedding(model: str, kwargs: dict) -> torch.nn.Embedding:
    """The ncc model's node embedding as a plain table: the same pretrained matrix, or a learned one as wide."""
    from ncc.models import MODELS

    pretrained = kwargs.get("pretrained_embeddings")
    if pretrained is not None:
        matrix = torch.as_tensor(np.asarray(pretrained), dtype=torch.float32).clone()
        return torch.nn.Embedding.from_pretrained(matrix, freeze=bool(kwargs.get("freeze_embeddings", True)))
    width = kwargs.get("embedding_dim", inspect.signature(MODELS[model].__init__).parameters["embedding_dim"].default)
    return torch.nn.Embedding(int(kwargs["vocab_size"]), int(width))


def typed_edges(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Both directions of every edge: ``edge_index [2, 2E]``, ``edge_type [2E]`` (6 types), position ``[2E]``."""
    from ncc.models.common import bidirectional_edges

    source, target, edge_type, position = bidirectional_edges(batch.edge_index, batch.edge_flow,
                                                              batch.edge_position)
    return torch.stack([source, target]), edge_type, position


class _Reference(torch.nn.Module):
    def __init__(self, embedding: torch.nn.Embedding, hidden: int):
        super().__init__()
        self.embedding = embedding
        width = embedding.embedding_dim
        self.input_map = torch.nn.Identity() if width == hidden else torch.nn.Linear(width, hidden)

    def embed(self, batch) -> torch.Tensor:
        return self.input_map(self.embedding(batch.x))


class PygGatedGraphConv(_Reference):
    """PyG's GatedGraphConv (mean aggregation) on untyped edges, both directions; sum pooling, linear head."""

    def __init__(self, embedding, hidden: int, num_layers: int, num_classes: int):
        from torch_geometric.nn import GatedGraphConv

        super().__init__(embedding, hidden)
        self.conv = GatedGraphConv(hidden, num_layers=num_layers, aggr="mean")
        self.head = torch.nn.Linear(hidden, num_classes)

    def forward(self, batch):
        from torch_geometric.nn import global_add_pool

        edge_index = torch.cat([batch.edge_index, batch.edge_index.flip(0)], dim=1)
        h = self.conv(self.embed(batch), edge_index)
        return self.head(global_add_pool(h, batch.batch, batch.num_graphs))


class PygRelationalGGNN(_Reference):
    """A typed GGNN from stock parts: RGCNConv (6 types, mean) + GRUCell per step, groups as ncc's; sum pooling."""

    def __init__(self, embedding, hidden: int, steps: tuple, num_classes: int):
        from torch_geometric.nn import RGCNConv

        super().__init__(embedding, hidden)
        self.steps = tuple(steps)
        self.convs = torch.nn.ModuleList(RGCNConv(hidden, hidden, num_relations=6, aggr="mean") for _ in steps)
        self.updates = torch.nn.ModuleList(torch.nn.GRUCell(hidden, hidden) for _ in steps)
        self.head = torch.nn.Linear(hidden, num_classes)

    def forward(self, batch):
        from torch_geometric.nn import global_add_pool

        edge_index, edge_type, _ = typed_edges(batch)
        h = self.embed(batch)
        for group, repeats in enumerate(self.steps):
            for _ in range(repeats):
                h = self.updates[group](self.convs[group](h, edge_index, edge_type), h)
        return self.head(global_add_pool(h, batch.batch, batch.num_graphs))


class PygGINEStack(_Reference):
    """Stock GINEConv (edge features: type vector + position map) or RGCNConv layers, residual + BN + ReLU;
    mean and max pooling, an MLP head."""

    def __init__(self, embedding, hidden: int, num_layers: int, num_classes: int, dropout: float,
                 max_position: int, conv: str = "gine"):
        from torch import nn
        from torch_geometric.nn import GINEConv, RGCNConv

        from ncc.models.common import sinusoidal_encoding

        super().__init__(embedding, hidden)
        self.kind = conv
        self.max_position = max_position
        if conv == "gine":
            def mlp():
                return nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.BatchNorm1d(2 * hidden), nn.ReLU(),
                                     nn.Linear(2 * hidden, hidden))
            self.convs = nn.ModuleList(GINEConv(mlp(), train_eps=True, edge_dim=hidden) for _ in range(num_layers))
            self.type_embeddings = nn.ModuleList(nn.Embedding(6, hidden) for _ in range(num_layers))
            self.position_maps = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(num_layers))
            self.register_buffer("position_table", sinusoidal_encoding(max_position, hidden), persistent=False)
        else:
            self.convs = nn.ModuleList(RGCNConv(hidden, hidden, num_relations=6) for _ in range(num_layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.BatchNorm1d(2 * hidden), nn.Linear(2 * hidden, hidden), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, batch):
        from torch_geometric.nn import global_max_pool, global_mean_pool

        edge_index, edge_type, position = typed_edges(batch)
        h = self.embed(batch)
        if self.kind == "gine":
            used, position = torch.unique(position.clamp(0, self.max_position - 1), return_inverse=True)
            encodings = self.position_table[used]
        for layer, conv in enumerate(self.convs):
            if self.kind == "gine":
                edge = self.type_embeddings[layer](edge_type) + \
                    self.position_maps[layer](encodings).index_select(0, position)
                out = conv(h, edge_index, edge)
            else:
                out = conv(h, edge_index, edge_type)
            h = h + self.dropout(torch.relu(self.norms[layer](out)))
        pooled = torch.cat([global_mean_pool(h, batch.batch, batch.num_graphs),
                            global_max_pool(h, batch.batch, batch.num_graphs)], dim=-1)
        return self.head(pooled)


def references(model_name: str, model: torch.nn.Module, kwargs: dict) -> list[tuple[str, Callable]]:
    """(label, factory) of PyG's stock counterparts of a built ncc model, with its hidden size and depth."""
    from ncc.models.common import parse_steps

    hidden = int(model.hidden_size)
    classes = int(kwargs["num_classes"])

    def embedding():
        return reference_embedding(model_name, kwargs)

    if model_name == "ggnn":
        steps = tuple(getattr(model, "steps", None) or parse_steps(kwargs.get("steps", (2, 2, 2, 2))))
        return [(f"PyG GatedGraphConv (H={hidden}, {sum(steps)} layers, mean, untyped edges)",
                 lambda: PygGatedGraphConv(embedding(), hidden, sum(steps), classes)),
                (f"PyG RGCNConv + GRUCell (H={hidden}, steps {','.join(map(str, steps))}, 6 edge types)",
                 lambda: PygRelationalGGNN(embedding(), hidden, steps, classes))]
    layers = int(getattr(model, "num_layers", kwargs.get("num_layers", 6)))
    dropout = float(kwargs.get("dropout", 0.1))
    max_position = int(getattr(model, "max_position", kwargs.get("max_position", 512)))
    return [(f"PyG GINEConv (H={hidden}, {layers} layers, edge_dim={hidden}, 6 edge types + positions)",
             lambda: PygGINEStack(embedding(), hidden, layers, classes, dropout, max_position, "gine")),
            (f"PyG RGCNConv (H={hidden}, {layers} layers, 6 edge types)",
             lambda: PygGINEStack(embedding(), hidden, layers, classes, dropout, max_position, "rgcn"))]


# --------------------------------------------------------------------------------------- measures

def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def step_row(label: str, factory: Callable, batches: list, device: torch.device, amp: bool,
             args: argparse.Namespace, steps: int) -> dict:
    """The ``step`` timing of the model ``factory`` builds."""
    torch.manual_seed(args.seed)
    model = factory().to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    on_device = [b.to(device) for b in batches]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    seconds, loss = time_steps(train_step(model, optimiser, device, amp), on_device, steps, args.warmup,
                               args.repeats, device)
    graphs = sum(int(on_device[i % len(on_device)].num_graphs) for i in range(steps))
    nodes = sum(int(on_device[i % len(on_device)].num_nodes) for i in range(steps))
    rates = [graphs / s for s in seconds]
    return {"measure": "step", "label": label, "device": str(device), "amp": amp, "batch_size": batches[0].num_graphs,
            "steps": steps, "graphs_per_s": median(rates), "graphs_per_s_repeats": rates,
            "ms_per_batch": 1e3 * median(seconds) / steps, "nodes_per_s": nodes / median(seconds),
            "final_loss": loss, "parameters": sum(p.numel() for p in model.parameters()),
            "peak_gpu_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None}


def trainer_loader(inputs: Inputs, batch_size: int, seed: int):
    from ncc.training.datasets import GraphBatchSampler
    from ncc.training.trainer import _loader

    sampler = GraphBatchSampler(inputs.sizes, batch_size=batch_size, shuffle=True, seed=seed)
    return sampler, _loader(inputs.dataset, sampler, 0, torch.device("cpu"))


def loader_row(inputs: Inputs, batch_size: int, args: argparse.Namespace) -> dict:
    """The trainer's sampler and DataLoader alone over the chosen graphs (one untimed pass first)."""
    sampler, loader = trainer_loader(inputs, batch_size, args.seed)
    seconds, graphs, batches = [], 0, 0
    for epoch in range(args.repeats + 1):
        sampler.set_epoch(epoch)
        start = time.perf_counter()
        graphs = batches = 0
        for batch in loader:
            graphs += int(batch.num_graphs)
            batches += 1
        if epoch:
            seconds.append(time.perf_counter() - start)
    rates = [graphs / s for s in seconds]
    return {"measure": "loader", "label": "trainer's data loader (sampler, indexing, collation)", "device": "cpu",
            "amp": False, "batch_size": batch_size, "steps": batches, "graphs_per_s": median(rates),
            "graphs_per_s_repeats": rates, "ms_per_batch": 1e3 * median(seconds) / batches}


def epoch_row(factory: Callable, inputs: Inputs, warm: list, batch_size: int, device: torch.device, amp: bool,
              args: argparse.Namespace) -> dict:
    """Loader and step together: ``--repeats`` passes over the chosen graphs, as the trainer's epoch runs them."""
    torch.manual_seed(args.seed)
    model = factory().to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    step = train_step(model, optimiser, device, amp)
    for i in range(args.warmup):
        step(warm[i % len(warm)].to(device))
    sampler, loader = trainer_loader(inputs, batch_size, args.seed)
    seconds, graphs, batches, loss = [], 0, 0, float("nan")
    for epoch in range(1, args.repeats + 1):
        sampler.set_epoch(epoch)
        synchronize(device)
        start = time.perf_counter()
        graphs = batches = 0
        for batch in loader:
            batch = batch.to(device, non_blocking=True)
            loss = float(step(batch).detach())  # the trainer reads each step's loss too
            graphs += int(batch.num_graphs)
            batches += 1
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    rates = [graphs / s for s in seconds]
    return {"measure": "epoch", "label": "epoch (loader + step)", "device": str(device), "amp": amp,
            "batch_size": batch_size, "steps": batches, "graphs_per_s": median(rates), "graphs_per_s_repeats": rates,
            "ms_per_batch": 1e3 * median(seconds) / batches, "final_loss": loss}


def categorise(event, edge_counts: set[int]) -> str:
    """The profile category of an aten op: by the record_function it runs under, its name, its inputs' shapes."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(("Optimizer.step#", "Optimizer.zero_grad#")):
            return CATEGORIES[3]
        parent = parent.cpu_parent
    op = event.name[len("aten::"):]
    if op in DENSE_OPS:
        return CATEGORIES[1]
    if op in MESSAGE_EXACT or any(word in op for word in MESSAGE_OPS):
        return CATEGORIES[0]
    if any(shape and isinstance(shape[0], int) and shape[0] in edge_counts for shape in event.input_shapes or ()):
        return CATEGORIES[0]  # elementwise work on edge tensors ([E, ...] or [2E, ...]): messages, gates
    return CATEGORIES[2]


def profile_row(factory: Callable, batches: list, args: argparse.Namespace) -> dict:
    """Self CPU time of the aten ops over PROFILE_STEPS steps, by category; the rest of the wall time is overhead."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(args.seed)
    model = factory().train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    step = train_step(model, optimiser, torch.device("cpu"), False)
    for i in range(max(1, args.warmup)):
        step(batches[i % len(batches)])
    edge_counts = {k * int(batches[i % len(batches)].edge_index.shape[1]) for i in range(PROFILE_STEPS) for k in (1, 2)}
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        start = time.perf_counter()
        for i in range(PROFILE_STEPS):
            float(step(batches[i % len(batches)]).detach())
        wall = time.perf_counter() - start
    totals = dict.fromkeys(CATEGORIES, 0.0)
    ops: dict[str, list] = {}
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        seconds = event.self_cpu_time_total / 1e6
        category = categorise(event, edge_counts)
        totals[category] += seconds
        entry = ops.setdefault(event.name, [0.0, 0, category])
        entry[0] += seconds
        entry[1] += 1
    totals[CATEGORIES[4]] = max(0.0, wall - sum(totals.values()))
    top = sorted(ops.items(), key=lambda item: -item[1][0])[:20]
    return {"steps": PROFILE_STEPS, "batch_size": batches[0].num_graphs, "wall_ms_per_step": 1e3 * wall / PROFILE_STEPS,
            "ms_per_step": {k: 1e3 * v / PROFILE_STEPS for k, v in totals.items()},
            "percent": {k: 100 * v / wall for k, v in totals.items()},
            "top_ops": [{"op": name, "ms_per_step": 1e3 * v[0] / PROFILE_STEPS, "calls_per_step": v[1] / PROFILE_STEPS,
                         "category": v[2]} for name, v in top]}


# --------------------------------------------------------------------------------------- baseline

def git(*arguments: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *arguments], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def add_worktree(revision: str) -> tuple[Path, str]:
    try:
        commit = git("rev-parse", "--verify", f"{revision}^{{commit}}")
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(f"--baseline {revision}: not a revision of {ROOT} ({error})") from None
    folder = Path(tempfile.mkdtemp(prefix="ncc-baseline-"))
    git("worktree", "add", "--detach", "--quiet", str(folder), commit)
    logger.info("baseline %s: worktree at %s", commit[:10], folder)
    return folder, commit


def remove_worktree(folder: Path) -> None:
    try:
        git("worktree", "remove", "--force", str(folder))
    except (OSError, subprocess.CalledProcessError):
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True, check=False)


def run_worker(tree: Path, payload: Path, scratch: Path) -> dict:
    result = scratch / "result.json"
    result.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), WORKER, str(payload), str(result)],
                          cwd=scratch, env=env, capture_output=True, text=True, check=False)
    if done.returncode or not result.is_file():
        raise RuntimeError(f"worker on {tree} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(result.read_text())


def baseline_rows(model: str, inputs: Inputs, batches: list, device: torch.device, steps: int,
                  args: argparse.Namespace, tree: Path, commit: str) -> list[dict]:
    """Alternating subprocess ``step`` timings of the baseline tree and of this checkout."""
    with tempfile.TemporaryDirectory(prefix="ncc-throughput-") as scratch_name:
        scratch = Path(scratch_name)
        payloads = {}
        for side, root in (("baseline", tree), ("current", ROOT)):
            payloads[side] = scratch / f"{side}.pt"
            torch.save({"model": model, "kwargs": inputs.kwargs, "batches": batches, "device": str(device),
                        "steps": steps, "warmup": args.warmup, "repeats": args.repeats, "seed": args.seed,
                        "threads": torch.get_num_threads(), "expect_root": str(root)}, payloads[side])
        runs: dict[str, list[dict]] = {"baseline": [], "current": []}
        for round_ in range(args.rounds):
            for side, root in (("baseline", tree), ("current", ROOT)):
                if side == "current":
                    run_digest = ncc_digest()
                run = run_worker(root, payloads[side], scratch)
                if side == "current":
                    run["ncc_digest"] = run_digest
                runs[side].append(run)
                logger.info("  round %d %s: %.1f graphs/s (%s)", round_ + 1, side, median(run["graphs_per_s"]),
                            run["ncc"])
    rows = []
    for side in ("baseline", "current"):
        rates = [rate for run in runs[side] for rate in run["graphs_per_s"]]
        label = f"baseline {commit[:10]}" if side == "baseline" else f"current ({describe_checkout()})"
        rows.append({"measure": f"{side}-subprocess", "label": label, "device": str(device), "amp": False,
                     "batch_size": batches[0].num_graphs, "steps": steps, "graphs_per_s": median(rates),
                     "graphs_per_s_repeats": rates,
                     "graphs_per_s_rounds": [median(run["graphs_per_s"]) for run in runs[side]],
                     "ms_per_batch": 1e3 * batches[0].num_graphs / median(rates), "ncc": runs[side][0]["ncc"],
                     "parameters": runs[side][0]["parameters"], "final_loss": runs[side][-1]["final_loss"],
                     "ncc_digests": sorted({run["ncc_digest"] for run in runs[side] if "ncc_digest" in run})})
    return rows


# ------------------------------------------------------------------------------------------ output

def ncc_digest(root: Path = ROOT) -> str:
    """sha256 of the working tree's ncc/*.py: tells whether the code changed while the run went on."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((root / "ncc").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def describe_checkout() -> str:
    try:
        commit = git("rev-parse", "--short=10", "HEAD")
        dirty = bool(git("status", "--porcelain", "--", "ncc"))
    except (OSError, subprocess.CalledProcessError):
        return "no git"
    return f"{commit}{' + uncommitted ncc/ changes' if dirty else ''}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    import torch_geometric

    try:
        commit, dirty = git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--", "ncc"))
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    return {"python": platform.python_version(), "torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
            "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "git_commit": commit, "ncc_uncommitted_changes": dirty, "ncc_digest": ncc_digest(),
            "load_average_before": os.getloadavg()}


def device_name(device: str, amp: bool = False) -> str:
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu x{torch.get_num_threads()}"
    return name + (" bf16" if amp else "")


def markdown(name: str, section: dict) -> str:
    info = section["inputs"]
    lines = [f"### {name}: {section['model']['description']}", "",
             (f"Graphs: {info['source']}; nodes mean {info['nodes_mean']:.0f} (min {info['nodes_min']}, max "
              f"{info['nodes_max']}), edges mean {info['edges_mean']:.0f}. {section['model']['parameters']:,} "
              f"parameters."), "",
             "| measurement | device | batch | graphs/s | ms/batch | ncc step / this |",
             "|---|---|---:|---:|---:|---:|"]
    steps = {(r["device"], r["amp"], r["batch_size"]): r["graphs_per_s"] for r in section["rows"]
             if r["measure"] == "step" and r["label"].startswith("ncc")}
    for row in section["rows"]:
        reference = steps.get((row["device"], row["amp"], row["batch_size"]))
        ratio = f"{reference / row['graphs_per_s']:.2f}" if reference and row["measure"] in ("step", "pyg") \
            and not row["label"].startswith("ncc") else ""
        lines.append(f"| {row['label']} | {device_name(row['device'], row['amp'])} | {row['batch_size']} | "
                     f"{row['graphs_per_s']:.1f} | {row['ms_per_batch']:.1f} | {ratio} |")
    profile = section.get("profile")
    if profile:
        lines += ["", (f"Profile (CPU, batch {profile['batch_size']}, {profile['steps']} steps under torch.profiler: "
                       f"{profile['wall_ms_per_step']:.0f} ms a step, against {profile['unprofiled_ms_per_step']:.0f} "
                       f"ms unprofiled):"), "", "| part | ms/step | % |", "|---|---:|---:|"]
        for category in CATEGORIES:
            lines.append(f"| {category} | {profile['ms_per_step'][category]:.1f} | {profile['percent'][category]:.1f} |")
        if "collation_ms_per_batch" in profile:
            lines.append(f"| (beside the step) data loader: indexing and collation | "
                         f"{profile['collation_ms_per_batch']:.1f} | {profile['collation_percent_of_epoch']:.1f} "
                         f"% of an epoch |")
        top = ", ".join(f"{op['op'][6:]} {op['ms_per_step']:.0f}" for op in profile["top_ops"][:8])
        lines += ["", f"Top ops (ms/step): {top}."]
    base = section.get("baseline")
    if base:
        lines += ["", (f"Before / after ({base['rounds']} alternating rounds of {base['repeats']} repeats, "
                       f"subprocesses, step timing):"), "",
                  "| code | device | batch | graphs/s | rounds |", "|---|---|---:|---:|---|"]
        for row in base["rows"]:
            lines.append(f"| {row['label']} | {device_name(row['device'])} | {row['batch_size']} | "
                         f"{row['graphs_per_s']:.1f} | {', '.join(f'{r:.1f}' for r in row['graphs_per_s_rounds'])} |")
        for ratio in base["ratios"]:
            lines.append(f"| current / baseline | {device_name(ratio['device'])} | {ratio['batch_size']} | "
                         f"**{ratio['ratio']:.2f}x** | |")
    return "\n".join(lines)


def write(record: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, default=str))


# -------------------------------------------------------------------------------------------- main

def measure(name: str, inputs: Inputs, args: argparse.Namespace, devices: list[str], batch_sizes: list[int],
            worktree: tuple[Path, str] | None) -> dict:
    from ncc.training.trainer import build_task_model

    torch.manual_seed(args.seed)
    model = build_task_model(name, dict(inputs.kwargs))
    nodes = inputs.sizes
    edges = np.array([int(g.edge_index.shape[1]) for g in inputs.graphs])
    shown = {k: v for k, v in inputs.kwargs.items() if k != "pretrained_embeddings"}
    pretrained = inputs.kwargs.get("pretrained_embeddings")
    description = (f"hidden {model.hidden_size}, " + (f"steps {','.join(map(str, model.steps))}" if name == "ggnn"
                   else f"{getattr(model, 'num_layers', '?')} layers") +
                   (f", pretrained {np.asarray(pretrained).shape[0]} x {np.asarray(pretrained).shape[1]} embeddings "
                    f"(frozen: {bool(shown.get('freeze_embeddings', True))})" if pretrained is not None else "") +
                   f"; {args.protocol}-protocol row settings")
    section = {"inputs": {"source": inputs.source, "graphs": len(inputs.graphs), "nodes_mean": float(nodes.mean()),
                          "nodes_min": int(nodes.min()), "nodes_max": int(nodes.max()),
                          "edges_mean": float(edges.mean()), "row_settings": inputs.settings},
               "model": {"kwargs": shown, "pretrained_shape": list(np.asarray(pretrained).shape)
                         if pretrained is not None else None,
                         "parameters": sum(p.numel() for p in model.parameters()), "description": description},
               "rows": []}
    logger.info("%s: %s; %d graphs, nodes mean %.0f, edges mean %.0f", name, description, len(inputs.graphs),
                nodes.mean(), edges.mean())

    def ncc_factory():
        return build_task_model(name, dict(inputs.kwargs))

    reference_factories = [] if args.skip_pyg else references(name, model, inputs.kwargs)
    for batch_size in batch_sizes:
        batches = collate(inputs.graphs, batch_size)
        steps = args.steps or len(batches)
        loader = loader_row(inputs, batch_size, args)
        section["rows"].append(loader)
        logger.info("  batch %d: loader %.1f graphs/s", batch_size, loader["graphs_per_s"])
        for device_text in devices:
            device = torch.device(device_text)
            for amp in ([False, True] if args.amp and device.type == "cuda" else [False]):
                row = step_row(f"ncc {name} step", ncc_factory, batches, device, amp, args, steps)
                section["rows"].append(row)
                logger.info("  %s batch %d: step %.1f graphs/s", device_name(device_text, amp), batch_size,
                            row["graphs_per_s"])
                if not amp:
                    for label, factory in reference_factories:
                        ref = step_row(label, factory, batches, device, False, args, steps)
                        ref["measure"] = "pyg"
                        section["rows"].append(ref)
                        logger.info("  %s batch %d: %s %.1f graphs/s", device_name(device_text), batch_size, label,
                                    ref["graphs_per_s"])
                epoch = epoch_row(ncc_factory, inputs, batches, batch_size, device, amp, args)
                section["rows"].append(epoch)
                logger.info("  %s batch %d: epoch %.1f graphs/s", device_name(device_text, amp), batch_size,
                            epoch["graphs_per_s"])
            if worktree is not None:
                rows = baseline_rows(name, inputs, batches, device, steps, args, *worktree)
                section.setdefault("baseline", {"rounds": args.rounds, "repeats": args.repeats, "revision": args.baseline,
                                                "commit": worktree[1], "rows": [], "ratios": []})
                section["baseline"]["rows"] += rows
                ratio = rows[1]["graphs_per_s"] / rows[0]["graphs_per_s"]
                section["baseline"]["ratios"].append({"device": device_text, "batch_size": batch_size, "ratio": ratio})
                logger.info("  %s batch %d: current / baseline %.2f", device_name(device_text), batch_size, ratio)
        if not args.skip_profile and "cpu" in devices and batch_size == batch_sizes[0]:
            profile = profile_row(ncc_factory, batches, args)
            cpu_step = next(r for r in section["rows"] if r["measure"] == "step" and r["device"] == "cpu"
                            and r["batch_size"] == batch_size and r["label"].startswith("ncc"))
            cpu_epoch = next(r for r in section["rows"] if r["measure"] == "epoch" and r["device"] == "cpu"
                             and r["batch_size"] == batch_size)
            profile["unprofiled_ms_per_step"] = cpu_step["ms_per_batch"]
            profile["collation_ms_per_batch"] = 1e3 * batch_size / loader["graphs_per_s"]
            profile["collation_percent_of_epoch"] = 100 * cpu_epoch["graphs_per_s"] / loader["graphs_per_s"]
            section["profile"] = profile
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="all", choices=[*MODEL_NAMES, "all"])
    parser.add_argument("--protocol", default="full", choices=["full", "quick"])
    parser.add_argument("--graphs-from", default="poj104", choices=["poj104", "kernels"])
    parser.add_argument("--graphs", type=int, default=512)
    parser.add_argument("--batch-size", "--batch-sizes", dest="batch_sizes", default="64")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--baseline", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--devices", default=None)
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-pyg", action="store_true")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--nodes", type=int, default=600)
    parser.add_argument("--classes", type=int, default=104)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "train_throughput.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for option in ("graphs", "repeats", "rounds"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if any(d.startswith("cuda") for d in devices) and not torch.cuda.is_available():
        parser.error("--devices names cuda but torch sees no CUDA device")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    models = list(MODEL_NAMES) if args.model == "all" else [args.model]

    graphs_from, why = args.graphs_from, ""
    if graphs_from == "poj104":
        why = poj104_missing() or ""
        if why:
            logger.warning("POJ-104 is not here (%s): timing on unions of kernel graphs instead", why)
            graphs_from = "kernels"
    record = {"benchmark": "train_throughput",
              "settings": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                           "graphs_from_used": graphs_from, "devices": devices, "batch_sizes": batch_sizes},
              "environment": environment(), "models": {}}
    worktree = add_worktree(args.baseline) if args.baseline else None
    prepared: dict = {}
    try:
        for name in models:
            inputs = (poj104_inputs(name, args, prepared) if graphs_from == "poj104"
                      else kernel_inputs(name, args, prepared, why))
            section = measure(name, inputs, args, devices, batch_sizes, worktree)
            record["models"][name] = section
            record["environment"]["load_average_after"] = os.getloadavg()
            write(record, args.output)
            print(markdown(name, section) + "\n", flush=True)
    finally:
        if worktree is not None:
            remove_worktree(worktree[0])
    env = record["environment"]
    env["ncc_digest_after"] = ncc_digest()
    if env["ncc_digest_after"] != env["ncc_digest"]:
        env["ncc_changed_during_run"] = True
        write(record, args.output)
        logger.warning("ncc/ changed while this run went on: the rows of the later models and the current-code "
                       "subprocesses may time other code than the first rows")
    print(f"{cpu_model()}, {env['torch_threads']} torch threads; torch {env['torch']}, PyG {env['torch_geometric']}; "
          f"load average {env['load_average_before'][0]:.2f} before, {env['load_average_after'][0]:.2f} after; "
          f"{describe_checkout()}. ProGraML: {PUBLISHED_MS_PER_GRAPH} ms/graph (GTX 1080); GPU target "
          f">= {TARGET_GRAPHS_PER_S} graphs/s.")
    logger.info("wrote %s", args.output)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == [WORKER]:
        sys.exit(worker_main(*sys.argv[2:4]))
    sys.exit(main())
