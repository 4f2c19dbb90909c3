"""The ``reachability`` task: which instructions can control reach from the selected one?

ProGraML's first data-flow analysis as a root-node task, on the generated programs of
:mod:`ncc.frontend.generator` (half of them with loops, so that control flows back). Each example is a
program graph with one root instruction marked by the selector and a label on every node:
``Reachable(n) = {n} ∪ Reachable(succ(n))`` over control edges (:func:`ncc.graph.analysis.reachability`).
Only instruction nodes are scored (variables and constants are never reachable).

Roots per program, as ProGraML draws them: ``min(ceil(|V| / 10), max_roots)`` distinct instructions (the
external node excluded), drawn by the task's seed; every example of a program lies in its program's
split. ``max_steps=k`` keeps the examples whose analysis needs at most ``k`` steps (ProGraML's DDF-k): a
GGNN with fewer message-passing steps than the longest path it must follow cannot label its far end (on
the default programs the median example needs 21 steps, the GGNN's default is 8). Metrics: precision, recall and F1 of the reachable class, and accuracy, over the scored nodes.
Models read the selector (ProGraML's two-dimensional selector embedding appended to the node features).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ncc.graph import ProgramGraph
from ncc.graph.analysis import reachability
from ncc.graph.program_graph import INSTRUCTION
from ncc.training.config import ConfigError
from ncc.training.generated import GeneratedOptions, GeneratedProgramsTask
from ncc.training.metrics import binary_metrics

__all__ = ["ReachabilityOptions", "ReachabilityTask", "roots"]


@dataclass(frozen=True)
class ReachabilityOptions(GeneratedOptions):
    """Options of the reachability task; see :class:`~ncc.training.generated.GeneratedOptions`.

    Attributes:
        max_roots: roots per program at most (ProGraML: 10).
        max_steps: keep only the examples whose analysis reaches its fixed point within this many steps
            (ProGraML's DDF-30 data set: 30; a GGNN needs at least as many message-passing steps); 0 keeps all.
    """

    programs: int = 200
    max_roots: int = 10
    max_steps: int = 0

    def check(self, prefix: str = "task.", source: str | None = None) -> None:
        super().check(prefix, source)
        for key in ("max_roots", "max_steps"):
            if getattr(self, key) < (1 if key == "max_roots" else 0):
                raise ConfigError(f"{prefix}{key}: must be >= {1 if key == 'max_roots' else 0}, "
                                  f"got {getattr(self, key)}", source)


def roots(graph: ProgramGraph, max_roots: int, rng: np.random.Generator) -> np.ndarray:
    """``min(ceil(|V| / 10), max_roots)`` distinct instruction nodes, node 0 (external) excluded, ascending."""
    candidates = np.flatnonzero(graph.node_type == INSTRUCTION)
    candidates = candidates[candidates != 0]
    count = min(math.ceil(graph.num_nodes / 10), max_roots, len(candidates))
    return np.sort(rng.choice(candidates, size=count, replace=False))


class ReachabilityTask(GeneratedProgramsTask):
    """Node classification with a root: is each instruction reachable from the selected one?"""

    name = "reachability"
    description = "which instructions are reachable from the selected one? (root-node data-flow task)"
    options_class = ReachabilityOptions
    level = "node"
    metric_names = ("accuracy", "precision", "recall", "f1", "loss")
    monitor = "f1"
    uses_selector = True

    def make_examples(self, options: ReachabilityOptions, name: str, graph: ProgramGraph, has_loop: int) -> list:
        """One example per root: the selector marks it, the labels are what it reaches, instructions are scored."""
        from ncc.training.datasets import Example

        index = int(name.rsplit("_", 1)[1])
        rng = np.random.default_rng([options.seed, index])
        scored = graph.node_type == INSTRUCTION
        examples = []
        for root in roots(graph, options.max_roots, rng):
            labels, steps = reachability(graph, int(root))
            if options.max_steps and steps > options.max_steps:
                continue
            selector = np.zeros(graph.num_nodes, dtype=np.int64)
            selector[root] = 1
            examples.append(Example(graph, labels.astype(np.int64), name=f"{name}@{root}", selector=selector,
                                    mask=scored))
        return examples

    def examples_kind(self, options: ReachabilityOptions) -> str:
        return f"ncc.reachability:roots={options.max_roots}:steps={options.max_steps}"

    def metrics(self, logits: np.ndarray, targets: np.ndarray, num_classes: int) -> dict[str, float]:
        return binary_metrics(logits, targets)

    def split_info(self, dataset) -> dict:
        labels = dataset.labels.numpy()
        mask = dataset._data.mask.numpy()
        return {**super().split_info(dataset), "examples": len(dataset),
                "reachable_share": float(labels[mask].mean()) if mask.any() else 0.0}
