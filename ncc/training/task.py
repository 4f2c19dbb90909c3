"""The one interface every task implements, for the trainer, ``ncc train`` and ``ncc reproduce``.

A task declares its options, its level (one label per graph, or per node, optionally scored on a mask
of the nodes), its metrics, and the table it reproduces: the rows it offers (and those that finish on a
CPU in minutes), its platforms or analyses, and its protocols. Three shapes share it:

* :class:`SupervisedTask`: one train / val / test split (``loops``, ``dataflow``, ``classifyapp``);
  :meth:`SupervisedTask.prepare` gives the datasets and ``ncc train`` runs the trainer on them. Node-level
  tasks with a root node carry a selector per example (:class:`~ncc.training.datasets.Example`).
* cross-validated tables (``devmap``, ``threadcoarsening``): :meth:`Task.train` runs the folds of one
  platform, each fold through the trainer with the task's loss and metrics.
* every task may offer a table: :meth:`Task.reproduce` runs its rows on the same splits or folds.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ncc.errors import NccError
from ncc.training.config import dataclass_from_dict
from ncc.training.metrics import classification_metrics

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ncc.training.config import TrainConfig

__all__ = ["Task", "SupervisedTask", "TaskData", "TableRequest", "TableResult"]


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
        selector: the examples mark a root node (``selector``) that the model must read.
    """

    splits: dict
    encoder: Any
    num_classes: int
    aux_dim: int = 0
    info: dict = field(default_factory=dict)
    pretrained: Any = None
    selector: bool = False


@dataclass(frozen=True)
class TableRequest:
    """What ``ncc reproduce TASK`` asks of a task's table.

    Attributes:
        rows: the rows to run (None: the task's :attr:`Task.fast_rows`).
        seeds: the seeds of rows with randomness.
        platforms: the platforms (or analyses) to run (empty: all the task declares).
        protocols: the protocols to run (empty: the task's default).
        epochs: training epochs of the neural rows (None: each row's own).
        folds: fold numbers to run, a quick look (None: all).
        workers: processes.
        clang: a system clang to compile with (None: ncc's).
        options: task-specific settings, each one the task declares in :attr:`Task.table_options`.
        progress: show progress bars.
    """

    rows: Sequence[str] | None = None
    seeds: Sequence[int] = (0,)
    platforms: Sequence[str] = ()
    protocols: Sequence[str] = ()
    epochs: int | None = None
    folds: Sequence[int] | None = None
    workers: int | None = None
    clang: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    progress: bool = True


@dataclass
class TableResult:
    """A reproduced table: its rows, where it was written, and lines to show beside it."""

    rows: list
    markdown: Path
    csv: Path
    notes: list = field(default_factory=list)


class Task(abc.ABC):
    """Base of every task.

    Attributes:
        name: the registry key (``ncc train NAME``).
        description: one line.
        options_class: a dataclass of the task's options (the ``[task]`` table of a configuration); every
            field needs a default, whose type is the field's type.
        level: ``"graph"`` (one label per graph) or ``"node"`` (one per node; a batch's ``mask``, where
            present, says which nodes are scored).
        metric_names: what :meth:`metrics` reports, plus ``loss``.
        monitor: the default validation metric for early stopping and model selection.
        rows: the rows of the task's table, name -> what the row reads.
        fast_rows: the rows ``ncc reproduce`` runs by default (those that finish on a CPU in minutes).
        platforms: the platforms (or analyses) the table has a column group for.
        protocols: the protocols (splits or fold schemes) the table can be run under.
        table_options: task-specific settings :meth:`reproduce` accepts in ``TableRequest.options``.
    """

    name: str = ""
    description: str = ""
    options_class: type = None  # type: ignore[assignment]
    level: str = "graph"
    metric_names: tuple[str, ...] = ("accuracy", "f1", "loss")
    monitor: str = "accuracy"
    rows: Mapping[str, str] = {}
    fast_rows: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    table_options: tuple[str, ...] = ()

    # -- options ----------------------------------------------------------------------------------
    def check_options(self, options: Mapping[str, Any], source: str | None = None) -> Any:
        """The options as the task's dataclass.

        Raises:
            ConfigError: an unknown key or an impossible value (named ``task.KEY``).
        """
        return dataclass_from_dict(self.options_class, options, prefix="task.", source=source)

    def default_options(self) -> dict:
        """The options' defaults, as a plain dict."""
        return dataclasses.asdict(self.options_class())

    # -- what the trainer asks ----------------------------------------------------------------------
    def scored(self, logits: "torch.Tensor", batch: Any) -> tuple["torch.Tensor", "torch.Tensor"]:
        """The logits and targets a batch is scored on: per graph, or per node (masked nodes only)."""
        targets = batch.y.reshape(-1) if self.level == "graph" else batch.y
        mask = getattr(batch, "mask", None)
        if mask is None:
            return logits, targets
        return logits[mask], targets[mask]

    def loss(self, logits: "torch.Tensor", targets: "torch.Tensor") -> "torch.Tensor":
        """The summed (not averaged) loss of scored logits; the trainer divides by the global count."""
        import torch.nn.functional as F

        return F.cross_entropy(logits.float(), targets.reshape(-1), reduction="sum")

    def metrics(self, logits: np.ndarray, targets: np.ndarray, num_classes: int) -> dict[str, float]:
        """Metrics of a whole split's scored logits and targets (``loss`` is added by the trainer)."""
        return classification_metrics(logits, targets, num_classes)

    def dataset_from_path(self, path: str | Path, encoder: Any, config: "TrainConfig", progress: bool = True):
        """A labelled dataset from files, for ``ncc evaluate CHECKPOINT PATH``.

        Raises:
            NccError: the task cannot label files (the default).
        """
        raise NccError(f"task {self.name!r} cannot label data from files; give a split name (train, val, test)",
                       str(path))

    def prepare(self, config: "TrainConfig", progress: bool = True, encoder: Any = None) -> TaskData:
        """The train / val / test datasets of a configuration, for ``ncc evaluate`` on a split.

        Raises:
            NccError: the task has no single split (cross-validated tasks; the default).
        """
        raise NccError(f"task {self.name!r} is cross-validated and has no single split to evaluate on")

    # -- what the command line asks -------------------------------------------------------------------
    @abc.abstractmethod
    def train(self, config: "TrainConfig") -> dict:
        """``ncc train``: train as the configuration says.

        Returns:
            ``{"output": run folder, ...metrics}``: flat floats, or ``{split: {metric: value}}``.
        """

    def reproduce(self, output: Path, request: TableRequest) -> TableResult:
        """``ncc reproduce``: run the requested rows of the task's table and write it under ``output``.

        Raises:
            NccError: the task has no table (the default).
        """
        raise NccError(f"task {self.name!r} has no table to reproduce")

    def select_rows(self, text: str | None) -> list[str]:
        """Rows from the command line's ``--models``: None gives :attr:`fast_rows`, ``all`` every row, else a
        comma-separated list.

        Raises:
            NccError: an unknown row (the message lists the task's rows).
        """
        if text is None:
            return list(self.fast_rows)
        if text == "all":
            return list(self.rows)
        names = [name.strip() for name in text.split(",") if name.strip()]
        for name in names:
            if name not in self.rows:
                raise NccError(f"unknown {self.name} row {name!r}; choose from {', '.join(self.rows)} or all")
        return names

    def check_request(self, request: TableRequest) -> None:
        """Refuse platforms, protocols and options the task does not declare, each with the choices.

        Raises:
            NccError: the first thing the task does not have.
        """
        for kind, given, declared in (("platform", request.platforms, self.platforms),
                                      ("protocol", request.protocols, self.protocols),
                                      ("option", list(request.options), self.table_options)):
            for value in given:
                if value not in declared:
                    choices = f"choose from {', '.join(declared)}" if declared else "it has none"
                    raise NccError(f"{self.name} has no {kind} {value!r}; {choices}")
        for row in request.rows or ():
            if row not in self.rows:
                raise NccError(f"unknown {self.name} row {row!r}; choose from {', '.join(self.rows)}")


class SupervisedTask(Task):
    """A task with one train / val / test split: ``ncc train`` runs the trainer on :meth:`prepare`'s data."""

    @abc.abstractmethod
    def prepare(self, config: "TrainConfig", progress: bool = True, encoder: Any = None) -> TaskData:
        """Build (or find in the cache) the splits and the feature encoder for a configuration.

        Args:
            config: the run's configuration (task options in ``config.task_options``).
            progress: show progress bars.
            encoder: use this feature encoder (e.g. a checkpoint's) instead of fitting one on ``train``.
        """

    def train(self, config: "TrainConfig") -> dict:
        """Run the trainer on :meth:`prepare`'s data; the run folder, the best epoch and every split's metrics."""
        from ncc.training.trainer import train

        result = train(config, task=self)
        return {"output": str(result.output_dir), "best_epoch": result.report["metrics"]["best_epoch"],
                **{split: values for split, values in result.report["metrics"].items() if isinstance(values, dict)}}
