"""The ``dataflow`` task: ProGraML's data-flow analyses as root-node node classification.

Each example is a program graph with one root marked by the selector and a binary label on every node:
the answer of one of the five analyses of :mod:`ncc.graph.dataflow` (``reachability``, ``dominance``,
``datadep``, ``liveness``, ``subexpressions``) for that root. Only the node kind an analysis labels is
scored (its mask). Programs come from ncc's generator (:mod:`ncc.frontend.generator`, half of them with
loops), compiled at ``-O0``; every example of a program lies in its program's split.

Roots per program, as ProGraML draws them: ``min(ceil(|V| / 10), max_roots)`` distinct eligible nodes,
drawn by the task's seed. ``max_steps=k`` keeps the examples whose analysis needs at most ``k`` steps
(ProGraML's DDF-k): a GGNN with fewer message-passing steps than the longest path it must follow cannot
label its far end (on the default programs the median reachability example needs 21 steps, the GGNN's
default is 8). Metrics: precision, recall and F1 of the positive class, and accuracy, over scored nodes.
Models read the selector (ProGraML's two-dimensional selector embedding appended to the node features).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ncc.graph import ProgramGraph
from ncc.graph.dataflow import ANALYSES, analysis
from ncc.training.config import ConfigError
from ncc.training.generated import GeneratedOptions, GeneratedProgramsTask
from ncc.training.metrics import binary_metrics

__all__ = ["DataflowOptions", "DataflowTask", "roots"]


@dataclass(frozen=True)
class DataflowOptions(GeneratedOptions):
    """Options of the dataflow task; see :class:`~ncc.training.generated.GeneratedOptions`.

    Attributes:
        analysis: ``reachability``, ``dominance``, ``datadep``, ``liveness`` or ``subexpressions``.
        max_roots: roots per program at most (ProGraML: 10).
        max_steps: keep only the examples whose analysis reaches its fixed point within this many steps
            (ProGraML's DDF-30 data set: 30); 0 keeps all.
    """

    analysis: str = "reachability"
    programs: int = 200
    max_roots: int = 10
    max_steps: int = 0

    def check(self, prefix: str = "task.", source: str | None = None) -> None:
        super().check(prefix, source)
        if self.analysis not in ANALYSES:
            raise ConfigError(f"{prefix}analysis: must be one of {', '.join(ANALYSES)}, got {self.analysis!r}",
                              source)
        if self.max_roots < 1:
            raise ConfigError(f"{prefix}max_roots: must be >= 1, got {self.max_roots}", source)
        if self.max_steps < 0:
            raise ConfigError(f"{prefix}max_steps: must be >= 0, got {self.max_steps}", source)


def roots(candidates: np.ndarray, num_nodes: int, max_roots: int, rng: np.random.Generator) -> np.ndarray:
    """``min(ceil(|V| / 10), max_roots)`` distinct nodes of the candidates, ascending."""
    count = min(math.ceil(num_nodes / 10), max_roots, len(candidates))
    return np.sort(rng.choice(candidates, size=count, replace=False))


class DataflowTask(GeneratedProgramsTask):
    """Node classification with a root: the answer of a data-flow analysis for the selected node."""

    name = "dataflow"
    description = "data-flow analyses (reachability, dominance, datadep, liveness, subexpressions) per root node"
    options_class = DataflowOptions
    level = "node"
    metric_names = ("accuracy", "precision", "recall", "f1", "loss")
    monitor = "f1"
    uses_selector = True

    def make_examples(self, options: DataflowOptions, name: str, graph: ProgramGraph, has_loop: int) -> list:
        """One example per root: the selector marks it, the labels are the analysis' answer, its kind is scored."""
        from ncc.training.datasets import Example

        solver = analysis(options.analysis, graph)
        rng = np.random.default_rng([options.seed, int(name.rsplit("_", 1)[1])])
        scored = solver.mask()
        examples = []
        for root in roots(solver.roots(), graph.num_nodes, options.max_roots, rng).tolist():
            labels, steps = solver.query(root)
            if options.max_steps and steps > options.max_steps:
                continue
            selector = np.zeros(graph.num_nodes, dtype=np.int64)
            selector[root] = 1
            examples.append(Example(graph, labels.astype(np.int64), name=f"{name}@{root}", selector=selector,
                                    mask=scored))
        return examples

    def examples_kind(self, options: DataflowOptions) -> str:
        return f"ncc.dataflow:{options.analysis}:roots={options.max_roots}:steps={options.max_steps}"

    def metrics(self, logits: np.ndarray, targets: np.ndarray, num_classes: int) -> dict[str, float]:
        return binary_metrics(logits, targets)

    def split_info(self, dataset) -> dict:
        labels = dataset.labels.numpy()
        mask = dataset._data.mask.numpy()
        return {**super().split_info(dataset), "examples": len(dataset),
                "positive_share": float(labels[mask].mean()) if mask.any() else 0.0}
