"""Tasks: data splits, configurations, the trainer and metrics.

    >>> from ncc.tasks import load_config, train
    >>> config = load_config("loops.toml", {"task": "loops", "model.name": "ggnn", "epochs": 10})
    >>> result = train(config)              # checkpoints, TensorBoard logs and report.json in config.output
    >>> result.report["metrics"]["test"]["accuracy"]

:data:`TASKS` maps each task's name (``ncc train NAME``) to its :class:`Task`; later task modules
(devmap, classifyapp, ...) add themselves with :func:`register_task`. Importing this package does not
import torch.
"""

from __future__ import annotations

from typing import Any

from ncc.errors import NccError
from ncc.tasks.config import ConfigError, DataConfig, ModelConfig, OptimizerConfig, TrainConfig, load_config
from ncc.tasks.task import Task, TaskData, classification_metrics

#: Task name -> task.
TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add a task to :data:`TASKS` under its name (replacing one of the same name); returns it."""
    if not task.name:
        raise ValueError("a task needs a name")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The task of a name.

    Raises:
        NccError: no such task.
    """
    if name not in TASKS:
        raise NccError(f"unknown task {name!r}; choose one of {', '.join(sorted(TASKS))}")
    return TASKS[name]


def train(config: TrainConfig, **kwargs: Any):
    """Train as :func:`ncc.tasks.training.train` does (imported on first use, as it needs torch)."""
    from ncc.tasks.training import train as _train

    return _train(config, **kwargs)


def evaluate(checkpoint: Any, data: Any = None, **kwargs: Any):
    """Evaluate as :func:`ncc.tasks.training.evaluate` does."""
    from ncc.tasks.training import evaluate as _evaluate

    return _evaluate(checkpoint, data, **kwargs)


from ncc.tasks.loops import LoopsTask  # noqa: E402  (registers itself; needs the registry above)

register_task(LoopsTask())

from ncc.tasks.devmap import DevmapTask  # noqa: E402

register_task(DevmapTask())

from ncc.tasks.threadcoarsening import ThreadCoarseningTask  # noqa: E402

register_task(ThreadCoarseningTask())

from ncc.tasks.classifyapp import ClassifyappTask  # noqa: E402

register_task(ClassifyappTask())

__all__ = ["TASKS", "Task", "TaskData", "register_task", "get_task", "train", "evaluate", "TrainConfig",
           "ModelConfig", "OptimizerConfig", "DataConfig", "ConfigError", "load_config", "classification_metrics",
           "LoopsTask", "DevmapTask", "ThreadCoarseningTask", "ClassifyappTask"]
