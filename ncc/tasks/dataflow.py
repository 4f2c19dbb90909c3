"""The ``dataflow`` task: ProGraML's data-flow analyses as root-node node classification.

Each example is a program graph with one root marked by the selector and a binary label on every node:
the answer of one of the five analyses of :mod:`ncc.graph.dataflow` (``reachability``, ``dominance``,
``datadep``, ``liveness``, ``subexpressions``) for that root. Only the node kind an analysis labels is
scored (its mask), and every example records the steps its analysis needed (``data.steps``).

Corpora (``corpus``): ``generated`` (ncc's generator, :mod:`ncc.frontend.generator`, half of the programs
with loops, compiled at ``-O0``) or ``llvm-test-suite`` (its 2,227 SingleSource C and C++ programs,
:func:`ncc.frontend.corpora.llvm_test_suite`, ``programs`` of them drawn by the seed or all with 0,
compiled at every level of ``opt_levels``; programs clang rejects are left out and counted). The split is
by source program (70 / 15 / 15 by default; ``val_fraction=0.2, test_fraction=0.2`` is ProGraML's
3 : 1 : 1): every example of a program, at every level, lies in its program's split. The test programs'
examples that need more steps than any training example form a split of their own, ``long``: where models
that learned a fixed number of steps break.

Roots per program, as ProGraML draws them: ``min(ceil(|V| / 10), max_roots)`` distinct eligible nodes,
drawn by the task's seed. ``max_steps=k`` keeps the training and validation examples whose analysis needs
at most ``k`` steps (ProGraML's DDF-k; the test programs' examples are all kept, those beyond the training
examples' longest in ``long``): a GGNN with fewer message-passing steps than the longest path it must follow cannot
label its far end (on the default programs the median reachability example needs 21 steps, the GGNN's
default is 8). Metrics: precision, recall and F1 of the positive class, and accuracy, over scored nodes.
Models read the selector (ProGraML's two-dimensional selector embedding appended to the node features).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ncc.errors import NccError
from ncc.graph import ProgramGraph
from ncc.graph.dataflow import ANALYSES, analysis
from ncc.training.config import ConfigError
from ncc.training.generated import GeneratedOptions, GeneratedProgramsTask
from ncc.training.metrics import binary_metrics
from ncc.training.task import TableRequest, TableResult

__all__ = ["DataflowOptions", "DataflowTask", "roots", "CORPORA", "PROTOCOLS", "PUBLISHED", "ROWS", "train_row",
           "reproduce_dataflow", "ExamplePrediction", "example_predictions", "f1_by_steps"]

#: The corpora the task draws programs from.
CORPORA = ("generated", "llvm-test-suite")


@dataclass(frozen=True)
class DataflowOptions(GeneratedOptions):
    """Options of the dataflow task; see :class:`~ncc.training.generated.GeneratedOptions`.

    Attributes:
        analysis: ``reachability``, ``dominance``, ``datadep``, ``liveness`` or ``subexpressions``.
        corpus: ``generated`` or ``llvm-test-suite``.
        opt_levels: comma-separated clang levels each program of a corpus is compiled at (e.g. ``0,2``).
        programs: generated programs, or programs drawn from the corpus (0: all of it).
        max_roots: roots per program at most (ProGraML: 10).
        max_steps: train and validate on the examples whose analysis reaches its fixed point within this
            many steps (ProGraML's DDF-30 data set: 30); 0 keeps all.
    """

    analysis: str = "reachability"
    corpus: str = "generated"
    opt_levels: str = "0"
    programs: int = 200
    max_roots: int = 10
    max_steps: int = 0

    def levels(self) -> list[str]:
        return [level.strip() for level in self.opt_levels.split(",") if level.strip()]

    def check_programs(self, prefix: str, source: str | None) -> None:
        if not (self.corpus != "generated" and self.programs == 0):  # 0: all of a corpus
            super().check_programs(prefix, source)

    def check(self, prefix: str = "task.", source: str | None = None) -> None:
        super().check(prefix, source)
        if self.analysis not in ANALYSES:
            raise ConfigError(f"{prefix}analysis: must be one of {', '.join(ANALYSES)}, got {self.analysis!r}",
                              source)
        if self.corpus not in CORPORA:
            raise ConfigError(f"{prefix}corpus: must be one of {', '.join(CORPORA)}, got {self.corpus!r}", source)
        levels = self.levels()
        if not levels or set(levels) - {"0", "1", "2", "3", "s", "z"} or len(set(levels)) != len(levels):
            raise ConfigError(f"{prefix}opt_levels: expected distinct levels from 0,1,2,3,s,z, got "
                              f"{self.opt_levels!r}", source)
        if self.corpus == "generated" and levels != ["0"]:
            raise ConfigError(f"{prefix}opt_levels: generated programs compile at 0 only", source)
        if self.max_roots < 1:
            raise ConfigError(f"{prefix}max_roots: must be >= 1, got {self.max_roots}", source)
        if self.max_steps < 0:
            raise ConfigError(f"{prefix}max_steps: must be >= 0, got {self.max_steps}", source)


def roots(candidates: np.ndarray, num_nodes: int, max_roots: int, rng: np.random.Generator) -> np.ndarray:
    """``min(ceil(|V| / 10), max_roots)`` distinct nodes of the candidates, ascending."""
    count = min(math.ceil(num_nodes / 10), max_roots, len(candidates))
    return np.sort(rng.choice(candidates, size=count, replace=False))


class StepsFilter:
    """The examples of a source whose analysis needs more than ``low`` and at most ``high`` steps."""

    def __init__(self, source, low: float, high: float):
        self.source, self.low, self.high = source, low, high
        self.key = hashlib.sha256(f"{source.key}:steps in ({low}, {high}]".encode()).hexdigest()
        self._examples: list | None = None

    def __len__(self) -> int:
        return len(self.examples())

    def examples(self) -> list:
        if self._examples is None:
            self._examples = [e for e in self.source.examples() if self.low < e.info["steps"] <= self.high]
        return self._examples


class DataflowTask(GeneratedProgramsTask):
    """Node classification with a root: the answer of a data-flow analysis for the selected node."""

    name = "dataflow"
    description = "data-flow analyses (reachability, dominance, datadep, liveness, subexpressions) per root node"
    options_class = DataflowOptions
    level = "node"
    metric_names = ("accuracy", "precision", "recall", "f1", "loss")
    monitor = "f1"
    uses_selector = True
    rows = {"ggnn": "program graph and root (ProGraML's GGNN, summed messages)",
            "ggnn-stable": "program graph and root (the GGNN trained with extra steps, run until stable)",
            "rgine": "program graph and root (ncc's relational GINE)",
            "mlp": "node text and root alone (no edges)"}
    fast_rows = ("ggnn",)
    platforms = tuple(ANALYSES)
    protocols = ("quick", "corpus")

    def make_examples(self, options: DataflowOptions, name: str, graph: ProgramGraph, has_loop: int) -> list:
        """One example per root: the selector marks it, the labels are the analysis' answer, its kind is scored."""
        from ncc.training.datasets import Example

        solver = analysis(options.analysis, graph)
        rng = np.random.default_rng([options.seed, int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)])
        scored = solver.mask()
        examples = []
        for root in roots(solver.roots(), graph.num_nodes, options.max_roots, rng).tolist():
            labels, steps = solver.query(root)
            selector = np.zeros(graph.num_nodes, dtype=np.int64)
            selector[root] = 1
            examples.append(Example(graph, labels.astype(np.int64), name=f"{name}@{root}", selector=selector,
                                    mask=scored, info={"steps": steps}))
        return examples

    def program_files(self, options: DataflowOptions, root: Path) -> list[tuple[str, Path, None]]:
        if options.corpus == "generated":
            return super().program_files(options, root)
        from ncc.frontend.corpora import llvm_test_suite

        sources = llvm_test_suite()
        if options.programs and options.programs < len(sources):
            chosen = np.random.default_rng(options.seed).choice(len(sources), options.programs, replace=False)
            sources = [sources[i] for i in sorted(chosen)]
        base = sources[0].parents[len(sources[0].parts) - 1 - sources[0].parts.index("SingleSource")]
        return [(str(path.relative_to(base)), path, None) for path in sources]

    def compile_levels(self, options: DataflowOptions) -> tuple[str, ...]:
        return tuple(options.levels())

    def source_flags(self, options: DataflowOptions):
        if options.corpus == "generated":
            return None
        from ncc.frontend.corpora import llvm_test_suite_flags

        return llvm_test_suite_flags

    def compiles_strictly(self, options: DataflowOptions) -> bool:
        return options.corpus == "generated"

    def final_splits(self, options: DataflowOptions, sources: dict) -> dict:
        """train and val within ``max_steps`` (all with 0); the test programs' examples split by steps: ``test``
        within the training examples' longest, ``long`` beyond it (absent when there are none)."""
        limit = options.max_steps or math.inf
        train, val = (StepsFilter(sources[split], 0, limit) for split in ("train", "val"))
        longest = max((e.info["steps"] for e in train.examples()), default=0)
        within, beyond = StepsFilter(sources["test"], 0, longest), StepsFilter(sources["test"], longest, math.inf)
        return {"train": train, "val": val, "test": within, **({"long": beyond} if len(beyond) else {})}

    def examples_kind(self, options: DataflowOptions) -> str:
        return f"ncc.dataflow:{options.analysis}:roots={options.max_roots}"

    def metrics(self, logits: np.ndarray, targets: np.ndarray, num_classes: int) -> dict[str, float]:
        return binary_metrics(logits, targets)

    def reproduce(self, output: Path, request: TableRequest) -> TableResult:
        """The data-flow table (:func:`reproduce_dataflow`): the requested analyses ("platforms") and models."""
        self.check_request(request)
        if len(request.protocols) > 1:
            raise NccError(f"dataflow takes one protocol of {', '.join(self.protocols)}")
        if request.folds is not None or request.clang:
            raise NccError("dataflow has one split, no folds, and compiles with the default toolchain")
        rows = reproduce_dataflow(output, request.rows or self.fast_rows, request.platforms or self.platforms,
                                  request.protocols[0] if request.protocols else "quick", request.seeds,
                                  request.epochs, request.progress)
        return TableResult(rows, output / "dataflow.md", output / "dataflow.csv")

    def split_info(self, dataset) -> dict:
        labels = dataset.labels.numpy()
        mask = dataset._data.mask.numpy()
        steps = dataset._data.steps.numpy()
        return {**super().split_info(dataset), "examples": len(dataset),
                "positive_share": float(labels[mask].mean()) if mask.any() else 0.0,
                "steps_median": float(np.median(steps)), "steps_max": int(steps.max())}


# ------------------------------------------------------------------------------------------------ the table

#: The table's protocols: the task options and trainer settings every row of one protocol shares.
#: ``quick``: ncc's generated programs, examples within 10 steps, minutes per row on one CPU thread.
#: ``corpus``: the llvm-test-suite at -O0 and -O2, ProGraML's 3 : 1 : 1 split, DDF-30 (hours per row on a CPU).
PROTOCOLS = {
    "quick": ({"programs": 400, "max_steps": 10},
              {"epochs": 60, "optimizer.lr": 1e-3, "data.batch_size": 32, "model.steps": 10}),
    "corpus": ({"corpus": "llvm-test-suite", "programs": 0, "opt_levels": "0,2", "max_steps": 30,
                "val_fraction": 0.2, "test_fraction": 0.2},
               {"epochs": 20, "optimizer.lr": 1e-3, "data.node_budget": 10000, "model.steps": 30}),
}
#: Per row, on top of a protocol's settings: its model and settings. The GGNN sums its messages
#: (reachability is an "or" over predecessors, which a mean dilutes); ``ggnn-stable`` is the same GGNN trained
#: progressively (its own steps after 0 to 3 times as many without gradient, drawn per batch, so states must
#: reach the answer from wherever they are and keep it), the input recalled at every step, and evaluated
#: until no prediction of a graph changes for 10 steps (at most 200, ProGraML's evaluation): what lets it
#: follow paths longer than any it was trained on (5 steps stopped some graphs early: reachability, quick,
#: long F1 0.971, against 1.000 with 10 and with all 200); rgine runs as many layers as the GGNN runs steps;
#: mlp reads no edges.
ROWS = {"ggnn": ("ggnn", {"model.aggregation": "sum"}),
        "ggnn-stable": ("ggnn", {"model.aggregation": "sum", "model.step_slack": "3 steps", "model.recall": True,
                                 "model.max_eval_steps": 200, "model.stable_for": 10}),
        "rgine": ("rgine", {}),
        "mlp": ("mlp", {})}
#: Part of a row's folder name: 2 since ``max_steps`` leaves the test programs' examples whole, so runs made
#: on the filtered test split are not taken for finished rows.
SPLITS_VERSION = 2
#: ProGraML's F1 (ICML 2021, GGNN, DDF-30 test programs; and on all test programs with 200 steps).
PUBLISHED = {"reachability": (0.998, 0.943), "dominance": (1.000, 0.123), "datadep": (0.997, 0.965),
             "liveness": (0.937, 0.625), "subexpressions": (0.996, 0.959)}


def row_settings(row: str, protocol: str, overrides: dict | None = None) -> tuple[str, dict]:
    """The model and trainer settings of a row: the protocol's with ``overrides`` over them, then the row's
    (``"3 steps"`` stands for three times the protocol's steps; rgine: layers = steps; mlp: no steps)."""
    settings = {**PROTOCOLS[protocol][1], **(overrides or {})}
    model, extra = ROWS[row]
    merged = {**settings, **{key: 3 * settings["model.steps"] if value == "3 steps" else value
                             for key, value in extra.items()}}
    steps = merged.pop("model.steps")
    if model == "ggnn":
        merged["model.steps"] = steps
    elif model == "rgine":
        merged["model.num_layers"] = steps
    return model, merged


def train_row(analysis_name: str, row: str, protocol: str, seed: int, output: Path, progress: bool = True,
              epochs: int | None = None, options: dict | None = None, settings: dict | None = None) -> dict:
    """Train (or find finished, or resume) one row and return its report; ``options`` and ``settings`` go over
    the protocol's task options and trainer settings."""
    import json

    from ncc.training import trainer
    from ncc.training.config import load_config
    from ncc.training.crossval import run_name

    options = {**PROTOCOLS[protocol][0], **(options or {}), "analysis": analysis_name}
    model, settings = row_settings(row, protocol, {**(settings or {}), **({"epochs": epochs} if epochs else {})})
    folder = Path(output) / protocol / analysis_name / run_name(row, seed, {**options, **settings,
                                                                           "splits": SPLITS_VERSION})
    if (folder / trainer.REPORT_FILE).is_file() and (folder / trainer.BEST_FILE).is_file():
        return json.loads((folder / trainer.REPORT_FILE).read_text())
    overrides = {"task": "dataflow", "model.name": model, "seed": seed, "output": str(folder), "progress": progress,
                 "resume": (folder / trainer.CHECKPOINT_FILE).is_file(),
                 **{f"task.{key}": value for key, value in options.items()}, **settings}
    return trainer.train(load_config(None, overrides)).report


def reproduce_dataflow(output: str | Path, models: Sequence[str] = ("ggnn",), analyses: Sequence[str] = tuple(ANALYSES),
                       protocol: str = "quick", seeds: Sequence[int] = (0,), epochs: int | None = None,
                       progress: bool = True, options: dict | None = None, settings: dict | None = None
                       ) -> list[dict]:
    """Train every (analysis, model, seed) of a protocol and write ``dataflow.csv`` / ``dataflow.md``.

    Each row: precision, recall and F1 on the test split (mean and standard deviation over the seeds), F1
    on the ``long`` split where the protocol has one, the test examples, the median wall time, and
    ProGraML's published F1 beside it, and (not in the files) ``runs``, the run folders. ``options`` and
    ``settings`` go over the protocol's task options and trainer settings.
    """
    import time

    from ncc.training.crossval import write_table

    output = Path(output)
    rows = []
    for name in analyses:
        for model in models:
            started = time.perf_counter()
            reports = [train_row(name, model, protocol, seed, output, progress, epochs, options, settings)
                       for seed in seeds]
            row = {"analysis": name, "model": model, "protocol": protocol, "seeds": len(reports),
                   "runs": [report["config"]["output"] for report in reports],
                   "test_examples": reports[0]["data"]["test"]["examples"],
                   "long_examples": reports[0]["data"].get("long", {}).get("examples", 0)}
            for split, metrics in (("test", ("precision", "recall", "f1")), ("long", ("f1",))):
                for metric in metrics:
                    values = [r["metrics"][split][metric] for r in reports if split in r["metrics"]]
                    if values:
                        row[f"{split}_{metric}"] = float(np.mean(values))
                        row[f"{split}_{metric}_std"] = float(np.std(values)) if len(values) > 1 else float("nan")
            row["minutes"] = float(np.median([r["wall_time_s"] for r in reports]) / 60)
            row["wall_s_this_run"] = time.perf_counter() - started
            published, on_all = PUBLISHED[name]
            row["published"] = f"{published} DDF-30, {on_all} all programs (ProGraML ICML'21, GGNN)"
            rows.append(row)
    columns = ["analysis", "model", "protocol", "test_precision", "test_recall", "test_f1", "test_f1_std",
               "long_f1", "long_f1_std", "test_examples", "long_examples", "seeds", "minutes", "published"]
    write_table(rows, columns, output / "dataflow")
    return rows


# ------------------------------------------------------------------------------------------------ analysis of runs

@dataclass(frozen=True)
class ExamplePrediction:
    """One example of a split with a run's answer: ``predicted`` per node (0 or 1, -1 where not scored)."""

    example: Any  # an ncc.training.datasets.Example
    predicted: np.ndarray

    @property
    def root(self) -> int:
        return int(np.flatnonzero(self.example.selector)[0])

    @property
    def mistakes(self) -> int:
        scored = self.predicted >= 0
        return int((self.predicted[scored] != self.example.y[scored]).sum())


def example_predictions(run: str | Path, split: str = "test", progress: bool = False) -> list[ExamplePrediction]:
    """A finished run's prediction for every example of a split (``test``, ``long``, ...), in the split's order."""
    from ncc.training import trainer
    from ncc.training.config import TrainConfig

    payload = trainer.load_checkpoint(Path(run) / trainer.BEST_FILE)
    config = TrainConfig.from_dict(payload["config"])
    data = DataflowTask().prepare(config, progress=progress, encoder=payload["encoder"])
    if split not in data.splits:
        raise NccError(f"{run}: its data has no {split!r} split; it has {', '.join(data.splits)}")
    dataset = data.splits[split]
    predicted = trainer.predict(payload, dataset).argmax(axis=1)
    results, start = [], 0
    for example in dataset.source.examples():
        scored = np.flatnonzero(example.mask)
        answer = np.full(example.graph.num_nodes, -1, dtype=np.int64)
        answer[scored] = predicted[start:start + len(scored)]
        start += len(scored)
        results.append(ExamplePrediction(example, answer))
    if start != len(predicted):
        raise NccError(f"{run}: {len(predicted)} scored nodes predicted, the {split} split has {start}")
    return results


def f1_by_steps(predictions: Sequence[ExamplePrediction]) -> list[dict]:
    """Per number of steps the analysis needed: the examples, their scored nodes and the F1 over them."""
    from sklearn.metrics import f1_score

    by_steps: dict[int, list[ExamplePrediction]] = {}
    for prediction in predictions:
        by_steps.setdefault(int(prediction.example.info["steps"]), []).append(prediction)
    rows = []
    for steps, group in sorted(by_steps.items()):
        scored = [p.predicted >= 0 for p in group]
        truth = np.concatenate([p.example.y[s] for p, s in zip(group, scored)])
        guess = np.concatenate([p.predicted[s] for p, s in zip(group, scored)])
        rows.append({"steps": steps, "examples": len(group), "nodes": len(truth),
                     "f1": float(f1_score(truth, guess, zero_division=1.0))})
    return rows
