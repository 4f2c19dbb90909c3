"""Everything about training that knows no particular task: the task interface and registry, the
configuration, datasets and samplers, the trainer, metrics and cross-validated tables.

    >>> from ncc.training import load_config, train
    >>> config = load_config("loops.toml", {"task": "loops", "model.name": "ggnn", "epochs": 10})
    >>> result = train(config)              # checkpoints, TensorBoard logs and report.json in config.output
    >>> result.report["metrics"]["test"]["accuracy"]

Importing this package does not import torch; :func:`train`, :func:`evaluate` and :func:`predict` import
:mod:`ncc.training.trainer` on first use.
"""

from __future__ import annotations

from typing import Any

from ncc.training.config import ConfigError, DataConfig, ModelConfig, OptimizerConfig, TrainConfig, load_config
from ncc.training.metrics import binary_metrics, classification_metrics
from ncc.training.registry import TASKS, get_task, register_task, task_names
from ncc.training.task import SupervisedTask, TableRequest, TableResult, Task, TaskData


def train(config: TrainConfig, **kwargs: Any):
    """Train as :func:`ncc.training.trainer.train` does."""
    from ncc.training.trainer import train as _train

    return _train(config, **kwargs)


def evaluate(checkpoint: Any, data: Any = None, **kwargs: Any):
    """Evaluate as :func:`ncc.training.trainer.evaluate` does."""
    from ncc.training.trainer import evaluate as _evaluate

    return _evaluate(checkpoint, data, **kwargs)


def predict(checkpoint: Any, dataset: Any, **kwargs: Any):
    """Predict as :func:`ncc.training.trainer.predict` does."""
    from ncc.training.trainer import predict as _predict

    return _predict(checkpoint, dataset, **kwargs)


__all__ = ["TASKS", "Task", "SupervisedTask", "TaskData", "TableRequest", "TableResult", "register_task",
           "get_task", "task_names", "train", "evaluate", "predict", "TrainConfig", "ModelConfig",
           "OptimizerConfig", "DataConfig", "ConfigError", "load_config", "classification_metrics",
           "binary_metrics"]
