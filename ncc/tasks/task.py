"""What a task is to the trainer: its options, its data splits, its loss and its metrics."""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ncc.errors import NccError
from ncc.tasks.config import dataclass_from_dict

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ncc.tasks.config import TrainConfig

__all__ = ["Task", "TaskData", "classification_metrics"]


@dataclass
class TaskData:
    """The prepared data of a task.

    Attributes:
        splits: split name (``train``, ``val``, ``test``) -> dataset of model inputs.
        encoder: the feature encoder the datasets were made with (fitted on ``train`` only).
        num_classes: logits per graph (or node).
        aux_dim: graph-level auxiliary inputs per graph (0: none).
        info: task-specific facts for the report (sizes, class balance, cache hits...).
        pretrained: a ``[V, D]`` node-feature matrix (e.g. inst2vec's) the model starts from, or None; the
            checkpoint holds it as weights, so only training needs it.
    """

    splits: dict
    encoder: Any
    num_classes: int
    aux_dim: int = 0
    info: dict = field(default_factory=dict)
    pretrained: Any = None


def classification_metrics(logits: np.ndarray, targets: np.ndarray, num_classes: int) -> dict[str, float]:
    """Accuracy and macro-averaged F1 of class predictions.

    Args:
        logits: ``float [M, C]``.
        targets: ``int [M]``.
        num_classes: C (classes never seen and never predicted are left out of the F1 average).

    Returns:
        ``{"accuracy": ..., "f1": ...}``; both 0 for no examples.
    """
    if len(targets) == 0:
        return {"accuracy": 0.0, "f1": 0.0}
    predictions = np.asarray(logits).argmax(axis=1)
    targets = np.asarray(targets).reshape(-1)
    accuracy = float(np.mean(predictions == targets))
    scores = []
    for c in range(num_classes):
        tp = np.sum((predictions == c) & (targets == c))
        fp = np.sum((predictions == c) & (targets != c))
        fn = np.sum((predictions != c) & (targets == c))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": accuracy, "f1": float(np.mean(scores)) if scores else 0.0}


class Task(abc.ABC):
    """Base of every task; a subclass sets the class attributes and implements :meth:`prepare`.

    Attributes:
        name: the registry key (``ncc train NAME``).
        description: one line.
        options_class: a dataclass of the task's options (the ``[task]`` table of a config); every field
            needs a default, whose type is the field's type.
        level: ``"graph"`` (one label per graph) or ``"node"`` (one per node).
        metric_names: what :meth:`metrics` reports, plus ``loss``.
        monitor: the default validation metric for early stopping.
    """

    name: str = ""
    description: str = ""
    options_class: type = None  # type: ignore[assignment]
    level: str = "graph"
    metric_names: tuple[str, ...] = ("accuracy", "f1", "loss")
    monitor: str = "accuracy"

    def check_options(self, options: Mapping[str, Any], source: str | None = None) -> Any:
        """The options as the task's dataclass.

        Raises:
            ConfigError: an unknown key or an impossible value (named ``task.KEY``).
        """
        return dataclass_from_dict(self.options_class, options, prefix="task.", source=source)

    def default_options(self) -> dict:
        """The options' defaults, as a plain dict."""
        return dataclasses.asdict(self.options_class())

    @abc.abstractmethod
    def prepare(self, config: "TrainConfig", progress: bool = True, encoder: Any = None) -> TaskData:
        """Build (or find in the cache) the splits and the feature encoder for a configuration.

        Args:
            config: the run's configuration (task options in ``config.task_options``).
            progress: show progress bars.
            encoder: use this feature encoder (e.g. a checkpoint's) instead of fitting one on ``train``.
        """

    def dataset_from_path(self, path: str | Path, encoder: Any, config: "TrainConfig", progress: bool = True):
        """A labelled dataset from files, for ``ncc evaluate CHECKPOINT PATH``.

        Raises:
            NccError: the task cannot label files (the default).
        """
        raise NccError(f"task {self.name!r} cannot label data from files; give a split name (train, val, test)",
                       str(path))

    def loss(self, logits: "torch.Tensor", targets: "torch.Tensor") -> "torch.Tensor":
        """The summed (not averaged) loss of a batch; the trainer divides by the global count."""
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), targets.reshape(-1), reduction="sum")

    def count(self, batch: Any) -> int:
        """How many loss terms a batch holds: its graphs, or its nodes for node-level tasks."""
        return int(batch.num_nodes) if self.level == "node" else int(batch.num_graphs)

    def metrics(self, logits: np.ndarray, targets: np.ndarray, num_classes: int) -> dict[str, float]:
        """Metrics of a whole split's logits and targets (``loss`` is added by the trainer)."""
        return classification_metrics(logits, targets, num_classes)
