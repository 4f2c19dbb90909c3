"""Training configurations: dataclasses that load from TOML and take overrides from the command line.

A configuration file holds top-level run settings and four tables; every key is optional::

    epochs = 30
    patience = 5                # epochs without improvement of `monitor` before stopping (0: never)
    seed = 0
    device = "auto"             # auto | cpu | cuda | cuda:1
    amp = "auto"                # auto (on for CUDA) | true | false
    output = "runs/loops-ggnn"

    [model]                     # `name` picks the model; every other key is a constructor argument
    name = "ggnn"
    steps = 4

    [optimizer]
    name = "adamw"              # adam | adamw | sgd
    lr = 1e-3
    scheduler = "cosine"        # none | cosine | step | plateau

    [data]
    batch_size = 32             # graphs per process and step, or
    node_budget = 10000         # at most this many nodes per process and step (0: batch by count)

    [task]                      # the task (usually given on the command line) and its own options
    name = "loops"
    programs = 400

Unknown keys, values of the wrong type and impossible values raise :class:`ConfigError`, one line that
names the key and the file it came from.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ncc.errors import NccError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["ConfigError", "ModelConfig", "OptimizerConfig", "DataConfig", "TrainConfig", "load_config",
           "parse_value", "dataclass_from_dict", "node_features", "OPTIMIZERS", "SCHEDULERS", "FEATURES"]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "step", "plateau")
FEATURES = ("auto", "text", "inst2vec")


def node_features(model: str, features: str = "auto") -> str:
    """``text`` or ``inst2vec``: what ``model``'s node feature ids stand for (see ``DataConfig.features``)."""
    if features == "auto":
        return "inst2vec" if model == "lstm" else "text"
    return features


class ConfigError(NccError):
    """A configuration key that is unknown, of the wrong type, or holds an impossible value.

    Args:
        message: what is wrong, starting with the dotted key (``optimizer.lr: must be > 0, got -1``).
        path: the configuration file, if the value came from one.
    """


def _fail(key: str, message: str, source: str | None) -> None:
    raise ConfigError(f"{key}: {message}", source)


def _check_type(key: str, value: Any, kind: type, source: str | None) -> Any:
    """``value`` as ``kind`` (int accepted for float), or a ConfigError naming the key."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is not bool and isinstance(value, bool) or not isinstance(value, kind):
        _fail(key, f"expected {kind.__name__}, got {type(value).__name__} {value!r}", source)
    if kind is float and not math.isfinite(value):
        _fail(key, f"must be finite, got {value!r}", source)
    return value


def _at_least(key: str, value: float, minimum: float, source: str | None, strict: bool = False) -> None:
    if value < minimum or (strict and value == minimum):
        _fail(key, f"must be {'>' if strict else '>='} {minimum}, got {value!r}", source)


def _choice(key: str, value: str, choices: tuple[str, ...], source: str | None) -> None:
    if value not in choices:
        _fail(key, f"must be one of {', '.join(choices)}, got {value!r}", source)


def dataclass_from_dict(cls, values: Mapping[str, Any], prefix: str = "", source: str | None = None):
    """Build a flat dataclass of settings from a mapping, rejecting unknown keys and ill-typed values.

    Each field's type is the type of its default (an int default accepts ints only, a float default
    ints and floats). After construction, the instance's ``check(prefix, source)`` runs if it has one.

    Args:
        cls: the dataclass.
        values: key -> value, as read from TOML.
        prefix: the table name for messages (``"optimizer."``).
        source: the file the values came from, for messages.

    Raises:
        ConfigError: unknown key, wrong type or impossible value.
    """
    if not isinstance(values, Mapping):
        _fail(prefix.rstrip(".") or "config", f"expected a table, got {type(values).__name__}", source)
    types = {f.name: type(f.default) for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(types))
    if unknown:
        _fail(prefix + unknown[0], f"unknown key; expected one of {', '.join(sorted(types))}", source)
    instance = cls(**{key: _check_type(prefix + key, value, types[key], source) for key, value in values.items()})
    if hasattr(instance, "check"):
        instance.check(prefix, source)
    return instance


class _Section:
    """Loading of the flat config dataclasses."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], prefix: str = "", source: str | None = None):
        """Build from a mapping; see :func:`dataclass_from_dict`."""
        return dataclass_from_dict(cls, values, prefix, source)


@dataclass(frozen=True)
class ModelConfig:
    """Which model to train and its constructor arguments.

    Attributes:
        name: a key of ``ncc.models.MODELS`` (``ggnn``, ``lstm``, ...).
        kwargs: constructor arguments; the data-dependent ones (``num_classes``, ``vocab_size``,
            ``aux_dim``) are filled in by the trainer and must not be given.
    """

    name: str = "ggnn"
    kwargs: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], prefix: str = "model.", source: str | None = None) -> "ModelConfig":
        values = dict(values)
        name = _check_type(prefix + "name", values.pop("name", cls.name), str, source)
        if not name:
            _fail(prefix + "name", "must not be empty", source)
        for key in values:
            if key in DERIVED_MODEL_KWARGS:
                _fail(prefix + key, "is set from the data by the trainer; remove it", source)
        return cls(name=name, kwargs=values)


#: Model arguments the trainer derives from the task and its data.
DERIVED_MODEL_KWARGS = ("num_classes", "vocab_size", "aux_dim")


@dataclass(frozen=True)
class OptimizerConfig(_Section):
    """Optimiser and learning-rate schedule.

    Attributes:
        name: ``adam``, ``adamw`` or ``sgd``.
        lr: learning rate (> 0).
        weight_decay: L2 penalty (>= 0).
        momentum: SGD momentum in [0, 1).
        scheduler: ``none``; ``cosine`` (to 0 over the epochs); ``step`` (times ``gamma`` every
            ``step_size`` epochs); ``plateau`` (times ``gamma`` after ``step_size`` epochs without a better
            validation metric).
        step_size: epochs, for ``step`` and ``plateau``.
        gamma: decay factor in (0, 1].
        grad_clip: clip the gradient norm to this (0: no clipping).
    """

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: str = "none"
    step_size: int = 10
    gamma: float = 0.5
    grad_clip: float = 0.0


    def check(self, prefix: str = "optimizer.", source: str | None = None) -> None:
        _choice(prefix + "name", self.name, OPTIMIZERS, source)
        _at_least(prefix + "lr", self.lr, 0.0, source, strict=True)
        _at_least(prefix + "weight_decay", self.weight_decay, 0.0, source)
        if not 0.0 <= self.momentum < 1.0:
            _fail(prefix + "momentum", f"must be in [0, 1), got {self.momentum!r}", source)
        _choice(prefix + "scheduler", self.scheduler, SCHEDULERS, source)
        _at_least(prefix + "step_size", self.step_size, 1, source)
        if not 0.0 < self.gamma <= 1.0:
            _fail(prefix + "gamma", f"must be in (0, 1], got {self.gamma!r}", source)
        _at_least(prefix + "grad_clip", self.grad_clip, 0.0, source)


@dataclass(frozen=True)
class DataConfig(_Section):
    """Batching, loading and features.

    Attributes:
        batch_size: graphs per process and step (>= 1), used when ``node_budget`` is 0.
        node_budget: at most this many nodes per process and step (ProGraML: 10,000); a graph larger
            than the budget gets a batch of its own. 0 batches by ``batch_size``.
        eval_batch_size: graphs per batch for validation and test (0: as for training).
        bucket: batches of graphs of similar size (in training, shuffled within chunks of 32 steps
            sorted by size, the steps shuffled again; in evaluation, all sorted by size): less padding
            for sequence models.
        workers: DataLoader worker processes (0 loads in the training process).
        min_count: node texts rarer than this in the training graphs share the unknown feature id.
        features: what a node's feature id stands for: ``text`` (its node text, a vocabulary fitted on the
            training graphs), ``inst2vec`` (its instruction's normalised statement, with inst2vec
            embeddings trained without labels as the model's starting table; variables and constants
            get one reserved id each, as in ProGraML's POJ-104 and devmap GGNN) or ``auto`` (``inst2vec``
            for the ``lstm``, ``text`` for the graph models). Tasks without IR modules accept ``text`` only.
        cache_dir: where tasks keep generated sources and processed datasets ("" : ``ncc.paths.cache_home()``).
    """

    batch_size: int = 32
    node_budget: int = 0
    eval_batch_size: int = 0
    bucket: bool = False
    workers: int = 0
    min_count: int = 1
    features: str = "auto"
    cache_dir: str = ""


    def check(self, prefix: str = "data.", source: str | None = None) -> None:
        _at_least(prefix + "batch_size", self.batch_size, 1, source)
        _at_least(prefix + "node_budget", self.node_budget, 0, source)
        _at_least(prefix + "eval_batch_size", self.eval_batch_size, 0, source)
        _at_least(prefix + "workers", self.workers, 0, source)
        _at_least(prefix + "min_count", self.min_count, 1, source)
        _choice(prefix + "features", self.features, FEATURES, source)

    def feature_kind(self, model: str) -> str:
        """``text`` or ``inst2vec``: the node features ``model`` reads under these settings."""
        return node_features(model, self.features)


#: Training epochs of a run that sets none, for tasks without their own count.
DEFAULT_EPOCHS = 20

_RUN_TYPES = {"task": str, "epochs": int, "patience": int, "seed": int, "device": str, "amp": str,
              "output": str, "resume": bool, "monitor": str, "progress": bool, "deterministic": bool,
              "find_unused_parameters": bool, "log_every": int, "checkpoint_minutes": float}
_SECTIONS = {"model": ModelConfig, "optimizer": OptimizerConfig, "data": DataConfig}


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; ``to_dict()`` / ``from_dict()`` round-trip it.

    Attributes:
        task: a key of ``ncc.tasks.TASKS``.
        model: the model and its arguments.
        optimizer: optimiser and schedule.
        data: batching and features.
        task_options: the task's own options (checked by the task).
        epochs: passes over the training split (>= 1); None: the task's own count where it has one
            (devmap's and thread coarsening's tables), else :data:`DEFAULT_EPOCHS`.
        patience: stop after this many epochs without a better ``monitor`` value (0: never stop early).
        seed: seeds model initialisation, dropout and shuffling.
        device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``. Under torchrun
            every process takes the GPU of its ``LOCAL_RANK``.
        amp: mixed precision: ``auto`` (on for CUDA: bfloat16 where supported, else float16 with loss
            scaling), ``true`` or ``false``. Ignored on CPU.
        output: the run folder (checkpoints, TensorBoard logs, report); "" picks ``runs/<task>-<model>``.
        resume: continue the run in ``output`` from its last checkpoint.
        monitor: the validation metric that decides early stopping and the best checkpoint ("" : the
            task's); names ending in ``loss`` are minimised, others maximised.
        progress: show progress bars.
        deterministic: ask torch for deterministic algorithms (CPU runs are deterministic regardless).
        find_unused_parameters: passed to DistributedDataParallel for models with unused branches.
        log_every: TensorBoard training-loss interval in steps.
        checkpoint_minutes: also write ``checkpoint.pt`` inside an epoch when this many minutes have
            passed since the last one (0: at the ends of epochs only), so a stopped run of long epochs
            loses at most that much work.
    """

    task: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    task_options: dict = field(default_factory=dict)
    epochs: int | None = None
    patience: int = 0
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    output: str = ""
    resume: bool = False
    monitor: str = ""
    progress: bool = True
    deterministic: bool = False
    find_unused_parameters: bool = False
    log_every: int = 10
    checkpoint_minutes: float = 10.0

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str | None = None) -> "TrainConfig":
        """Build and check a configuration from nested mappings (a parsed TOML file).

        Raises:
            ConfigError: unknown key, wrong type or impossible value.
        """
        if not isinstance(values, Mapping):
            raise ConfigError(f"expected a table of settings, got {type(values).__name__}", source)
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key in _SECTIONS:
                if not isinstance(value, Mapping):
                    _fail(key, f"expected a table, got {type(value).__name__}", source)
                kwargs[key] = _SECTIONS[key].from_dict(value, prefix=f"{key}.", source=source)
            elif key == "task" and isinstance(value, Mapping):
                options = dict(value)
                if "name" in options:
                    kwargs["task"] = _check_type("task.name", options.pop("name"), str, source)
                kwargs["task_options"] = options
            elif key == "task_options":
                if not isinstance(value, Mapping):
                    _fail(key, f"expected a table, got {type(value).__name__}", source)
                kwargs["task_options"] = dict(value)
            elif key in _RUN_TYPES:
                if key == "epochs" and value is None:
                    continue
                if key == "amp" and isinstance(value, bool):
                    value = "true" if value else "false"
                value = _check_type(key, value, _RUN_TYPES[key], source)
                kwargs[key] = value.lower() if key == "amp" else value
            else:
                allowed = sorted({*_RUN_TYPES, *_SECTIONS})
                _fail(key, f"unknown key; expected one of {', '.join(allowed)}", source)
        config = cls(**kwargs)
        config.check(source)
        return config

    def check(self, source: str | None = None) -> "TrainConfig":
        """Raise :class:`ConfigError` on an impossible value; return self."""
        if self.epochs is not None:
            _at_least("epochs", self.epochs, 1, source)
        _at_least("patience", self.patience, 0, source)
        _at_least("log_every", self.log_every, 1, source)
        _at_least("checkpoint_minutes", self.checkpoint_minutes, 0, source)
        _choice("amp", self.amp, ("auto", "true", "false"), source)
        device = self.device
        if device not in ("auto", "cpu", "cuda") and not (device.startswith("cuda:") and device[5:].isdigit()):
            _fail("device", f"must be auto, cpu, cuda or cuda:N, got {device!r}", source)
        self.optimizer.check("optimizer.", source)
        self.data.check("data.", source)
        if self.task:
            from ncc.training.registry import get_task

            try:
                task = get_task(self.task)
            except NccError as error:
                raise ConfigError(f"task: {error.message}", source) from None
            task.check_options(self.task_options, source)
            if self.monitor and self.monitor not in task.metric_names:
                _fail("monitor", f"task {self.task!r} reports {', '.join(task.metric_names)}, "
                                 f"not {self.monitor!r}", source)
        return self

    def with_overrides(self, overrides: Mapping[str, Any], source: str | None = None) -> "TrainConfig":
        """A new configuration with dotted keys replaced (``{"optimizer.lr": 0.01, "epochs": 3}``).

        None values are skipped, so unset command-line flags can be passed as they are. Keys under
        ``model.`` and ``task.`` go into the model's arguments and the task's options.

        Raises:
            ConfigError: unknown key, wrong type or impossible value.
        """
        values = self.to_dict()
        for key, value in overrides.items():
            if value is None:
                continue
            head, _, rest = key.partition(".")
            if rest:
                if head == "task":
                    head = "task_options"
                if head not in (*_SECTIONS, "task_options"):
                    _fail(key, f"unknown key; tables are {', '.join((*_SECTIONS, 'task'))}", source)
                values.setdefault(head, {})[rest] = value
            else:
                values[key] = value
        return TrainConfig.from_dict(values, source=source)

    def to_dict(self) -> dict:
        """Nested plain values (JSON- and TOML-friendly) that :meth:`from_dict` reads back."""
        values = {key: getattr(self, key) for key in _RUN_TYPES}
        values["model"] = {"name": self.model.name, **self.model.kwargs}
        values["optimizer"] = dataclasses.asdict(self.optimizer)
        values["data"] = dataclasses.asdict(self.data)
        values["task_options"] = dict(self.task_options)
        return json.loads(json.dumps(values))

    # -- derived values ---------------------------------------------------------------------------
    @property
    def output_dir(self) -> Path:
        """The run folder."""
        return Path(self.output) if self.output else Path("runs") / f"{self.task or 'task'}-{self.model.name}"

    def training_identity(self) -> dict:
        """The settings a resumed run must share with the run it continues."""
        values = self.to_dict()
        for key in ("epochs", "patience", "resume", "progress", "device", "output", "log_every",
                    "checkpoint_minutes"):
            values.pop(key)
        values["data"].pop("workers")
        values["data"].pop("eval_batch_size")
        return values


def parse_value(text: str) -> Any:
    """A command-line value as TOML would read it (``3``, ``1e-3``, ``true``, ``[2, 2]``), else the string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a TOML configuration file (or start from the defaults) and apply overrides.

    Args:
        path: the TOML file, or None for the defaults.
        overrides: dotted keys to replace, e.g. from command-line flags; None values are skipped.

    Returns:
        The checked configuration.

    Raises:
        ConfigError: the file is unreadable or not TOML, or a key is unknown or impossible.
    """
    source = None
    values: dict = {}
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as stream:
                values = tomllib.load(stream)
        except FileNotFoundError:
            raise ConfigError("no such configuration file", source) from None
        except IsADirectoryError:
            raise ConfigError("is a directory, not a configuration file", source) from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"not valid TOML: {error}", source) from None
        except UnicodeDecodeError:
            raise ConfigError("not a text file", source) from None
    config = TrainConfig.from_dict(values, source=source)
    if overrides:
        config = config.with_overrides(overrides, source="command line")
    return config
