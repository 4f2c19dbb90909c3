"""One trainer for every task: CPU, one GPU with mixed precision, or many GPUs with DDP.

:func:`train` runs a :class:`~ncc.training.config.TrainConfig`:

* **Devices.** ``device="auto"`` takes CUDA when present, else the CPU. On CUDA, ``amp="auto"`` runs the
  forward pass under ``torch.autocast`` in bfloat16 where the GPU supports it (float16 with a
  ``GradScaler`` elsewhere). Started by ``torchrun --nproc_per_node N $(which ncc) train ...`` (or any
  launcher that sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``), every process joins
  an ``env://`` process group (NCCL on CUDA, gloo on CPU), takes the GPU of its ``LOCAL_RANK`` and a
  shard of every step (:class:`~ncc.training.datasets.GraphBatchSampler`). The loss of each shard is
  summed and divided by the step's global number of graphs (or nodes), so the gradient is that of the
  whole global batch and ``N`` processes with ``batch_size`` ``b`` follow the same curve as one process
  with ``N * b``. Validation predictions are gathered from all ranks, so they all decide early
  stopping alike.
* **Determinism.** Model initialisation, dropout and shuffling follow ``seed``; on the CPU two runs of
  the same configuration give identical weights.
* **Checkpoints.** After every epoch ``checkpoint.pt`` (model, optimiser, scheduler, loss scaler, the RNG
  states of every rank, epoch, best metric, history, configuration) is written atomically, and
  ``best.pt`` whenever the validation metric improves; inside an epoch, every ``checkpoint_minutes``
  (with the steps done so far). ``resume=True`` continues from the last checkpoint, skipping the steps
  already done with the RNG states of that moment, so the result is the same as that of an
  uninterrupted run.
* **Early stopping** on the validation ``monitor`` metric after ``patience`` epochs without improvement.
* **Logs.** TensorBoard scalars under ``<output>/tensorboard``, a tqdm bar per epoch with the live loss
  and graphs per second, and ``<output>/report.json``: metrics of the best epoch on validation and
  test, the per-epoch history, the configuration, library versions, git commit, wall time and
  training throughput.

:func:`evaluate` reloads a model from a checkpoint and computes the task's metrics on a split or on files.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import platform
import random
import subprocess
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from ncc.errors import NccError
from ncc.fileio import atomic_write
from ncc.training.config import DEFAULT_EPOCHS, ConfigError, TrainConfig
from ncc.training.datasets import GraphBatchSampler

if TYPE_CHECKING:  # pragma: no cover
    from ncc.training.task import Task, TaskData

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"
REPORT_FILE = "report.json"
CHECKPOINT_FORMAT = 1

__all__ = ["train", "evaluate", "predict", "TrainResult", "seed_everything", "load_checkpoint", "build_task_model",
           "CHECKPOINT_FILE", "BEST_FILE", "REPORT_FILE"]

ModelFactory = Callable[..., torch.nn.Module]
Callback = Callable[[dict], None]


@dataclass
class TrainResult:
    """What a training run left behind.

    Attributes:
        report: the contents of ``report.json``.
        output_dir: the run folder.
        best_checkpoint: ``best.pt``, the weights of the best validation epoch.
        history: one record per finished epoch (loss, throughput, validation metrics).
    """

    report: dict
    output_dir: Path
    best_checkpoint: Path
    history: list = field(default_factory=list)


# --------------------------------------------------------------------------------------- environment

@dataclass
class _Distributed:
    """This process's place in a distributed run (world 1 when there is none)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def all_sum(self, values: Sequence[float], device: torch.device) -> list[float]:
        """Element-wise sum over ranks (float64)."""
        if not self.active:
            return list(values)
        tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, value: Any) -> list:
        """Every rank's value, in rank order, on every rank."""
        if not self.active:
            return [value]
        values: list = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _distributed_from_env(device_setting: str) -> _Distributed:
    """Join the process group torchrun describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Distributed()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if dist.is_initialized():
        return _Distributed(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=False)
    use_cuda = device_setting != "cpu" and torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend, init_method="env://", timeout=datetime.timedelta(minutes=30))
    logger.info("rank %d of %d joined the %s process group", rank, world, backend)
    return _Distributed(rank, world, local_rank, owns_group=True)


def resolve_device(setting: str, local_rank: int = 0, distributed: bool = False) -> torch.device:
    """The device a setting names: ``auto`` is CUDA (this process's GPU under torchrun) if present, else CPU.

    Raises:
        ConfigError: CUDA was asked for but is not available.
    """
    if setting == "cpu" or (setting == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"device: {setting!r} asked for, but torch sees no CUDA device")
    if setting in ("auto", "cuda"):
        index = local_rank if distributed else torch.cuda.current_device()
        return torch.device("cuda", index)
    device = torch.device(setting)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device: {setting!r} asked for, but there are {torch.cuda.device_count()} GPUs")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's (CPU and CUDA) random number generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _git_commit() -> dict:
    """The commit (and whether the tree is dirty) of the ncc checkout this code runs from, if any."""
    folder = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def _versions() -> dict:
    import torch_geometric

    try:
        from importlib.metadata import version

        ncc_version = version("ncc")
    except Exception:  # not installed as a distribution
        ncc_version = None
    return {"ncc": ncc_version, "python": platform.python_version(), "torch": torch.__version__,
            "torch_geometric": torch_geometric.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
            "numpy": np.__version__, "platform": platform.platform()}


# --------------------------------------------------------------------------------------------- model

def _default_factory(name: str, **kwargs: Any) -> torch.nn.Module:
    from ncc.models import build_model

    return build_model(name, **kwargs)


def _check_model_name(name: str, factory: ModelFactory | None) -> None:
    if factory is not None:
        return
    from ncc.models import MODELS

    if name not in MODELS:
        raise ConfigError(f"model.name: unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")


def model_kwargs(config: TrainConfig, task: Task, data: TaskData) -> dict:
    """The model's constructor arguments: the configured ones plus those the data decides."""
    kwargs = dict(config.model.kwargs)
    kwargs["num_classes"] = data.num_classes
    kwargs["vocab_size"] = len(data.encoder)
    if data.aux_dim:
        kwargs["aux_dim"] = data.aux_dim
    if data.pretrained is not None:
        kwargs["embedding_dim"] = int(data.pretrained.shape[1])
    if task.level == "node":
        kwargs.setdefault("readout", "node")
    if data.selector:
        kwargs.setdefault("selector", True)
    return kwargs


def build_task_model(name: str, kwargs: dict, factory: ModelFactory | None = None) -> torch.nn.Module:
    """Build a model, turning the factory's complaints about arguments into a one-line ConfigError."""
    try:
        return (factory or _default_factory)(name, **kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"model: {error}") from None


def _optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    settings = config.optimizer
    parameters = [p for p in model.parameters() if p.requires_grad]
    if settings.name == "sgd":
        return torch.optim.SGD(parameters, lr=settings.lr, momentum=settings.momentum,
                               weight_decay=settings.weight_decay)
    cls = torch.optim.AdamW if settings.name == "adamw" else torch.optim.Adam
    return cls(parameters, lr=settings.lr, weight_decay=settings.weight_decay)


def _scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, maximise: bool):
    settings = config.optimizer
    if settings.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if settings.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=settings.step_size, gamma=settings.gamma)
    if settings.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max" if maximise else "min",
                                                          factor=settings.gamma, patience=settings.step_size)
    return None


def _amp_settings(config: TrainConfig, device: torch.device) -> tuple[bool, torch.dtype | None]:
    if device.type != "cuda" or config.amp == "false":
        if config.amp == "true" and device.type != "cuda":
            logger.warning("amp = true is ignored on %s: mixed precision runs on CUDA only", device)
        return False, None
    return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# ---------------------------------------------------------------------------------------------- loops

def _loader(dataset: Any, sampler: GraphBatchSampler, workers: int, device: torch.device):
    from torch_geometric.loader import DataLoader

    # Its own generator: a DataLoader iterator otherwise draws its base seed from the global RNG, and a run
    # resumed inside an epoch (RNG states restored after that draw) would draw once more than the original.
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda",
                      persistent_workers=False, generator=torch.Generator().manual_seed(sampler.seed))


def _eval_sampler(dataset: Any, config: TrainConfig, where: _Distributed) -> GraphBatchSampler:
    return GraphBatchSampler(dataset.num_nodes_per_graph, batch_size=config.data.eval_batch_size or config.data.batch_size,
                             node_budget=config.data.node_budget, shuffle=False, num_replicas=where.world,
                             rank=where.rank, even=False, bucket=config.data.bucket)


@torch.no_grad()
def _predict(model: torch.nn.Module, loader: Iterable, device: torch.device, autocast: Any, task: Task,
             progress: bool, description: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Logits, targets and the summed loss of every batch a loader gives."""
    from tqdm import tqdm

    model.eval()
    logits_parts, target_parts, loss = [], [], 0.0
    for batch in tqdm(loader, desc=description, unit="batch", leave=False, disable=not progress):
        batch = batch.to(device, non_blocking=True)
        with autocast():
            logits = model(batch)
        logits, targets = task.scored(logits.float(), batch)
        loss += float(task.loss(logits, targets))
        logits_parts.append(logits.cpu().numpy())
        target_parts.append(targets.reshape(-1).cpu().numpy())
    if not logits_parts:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64), 0.0
    return np.concatenate(logits_parts), np.concatenate(target_parts), loss


def _evaluate_split(model: torch.nn.Module, dataset: Any, config: TrainConfig, task: Task, num_classes: int,
                    device: torch.device, autocast: Any, where: _Distributed, progress: bool,
                    description: str) -> dict:
    """The task's metrics (and mean loss) of a dataset, gathered over all ranks."""
    loader = _loader(dataset, _eval_sampler(dataset, config, where), config.data.workers, device)
    logits, targets, loss = _predict(model, loader, device, autocast, task, progress, description)
    parts = where.gather((logits, targets, loss))
    logits = np.concatenate([p[0] for p in parts if len(p[1])]) if any(len(p[1]) for p in parts) else logits
    targets = np.concatenate([p[1] for p in parts])
    loss = sum(p[2] for p in parts)
    metrics = task.metrics(logits, targets, num_classes)
    metrics["loss"] = loss / max(len(targets), 1)
    return metrics


def _better(value: float, best: float | None, maximise: bool) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value > best if maximise else value < best


def _save(path: Path, payload: dict) -> None:
    atomic_write(path, lambda stream: torch.save(payload, stream), "wb")


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read a checkpoint written by :func:`train`: a ``.pt`` file, or a run folder (its ``best.pt``).

    Raises:
        NccError: no such file, or not an ncc checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / BEST_FILE
    if not path.is_file():
        raise NccError("no such checkpoint", str(path))
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:
        raise NccError(f"not a readable checkpoint: {error}", str(path)) from None
    if not isinstance(payload, dict) or payload.get("kind") != "ncc.checkpoint":
        raise NccError("not an ncc checkpoint", str(path))
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise NccError(f"unknown checkpoint format {payload.get('format')!r}", str(path))
    payload["path"] = str(path)
    return payload


def train(config: TrainConfig, callbacks: Sequence[Callback] = (), model_factory: ModelFactory | None = None,
          task_data: TaskData | None = None, task: Task | None = None) -> TrainResult:
    """Train a model on a task as the configuration says; see the module docstring.

    Args:
        config: the run's configuration (``config.task`` must be set).
        callbacks: called with each finished epoch's record, after its checkpoint is written (an
            exception raised there stops the run; the checkpoint stays).
        model_factory: ``factory(name, **kwargs) -> nn.Module`` instead of :func:`ncc.models.build_model`.
        task_data: already prepared data (default: ``task.prepare(config)``).
        task: the task (default: the registered task named ``config.task``).

    Returns:
        The report, the run folder, the best checkpoint and the history.

    Raises:
        ConfigError: an impossible configuration, or ``output`` holds another run and ``resume`` is off.
        KeyboardInterrupt: after the last finished epoch's checkpoint is safe; resume with ``resume=True``.
    """
    from ncc.training.registry import get_task

    started = time.perf_counter()
    if not config.task:
        raise ConfigError("task: no task given")
    config.check()
    if config.epochs is None:
        config = replace(config, epochs=DEFAULT_EPOCHS)
    task = task or get_task(config.task)
    _check_model_name(config.model.name, model_factory)
    output = config.output_dir
    checkpoint_path = output / CHECKPOINT_FILE
    if checkpoint_path.exists() and not config.resume:
        raise ConfigError(f"output: {output} already holds a run; resume it with --resume or choose another --output")

    where = _distributed_from_env(config.device)
    writer = None
    try:
        device = resolve_device(config.device, where.local_rank, where.active)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if config.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        progress = config.progress and where.main
        seed_everything(config.seed)

        # Data: the first rank builds the caches, the others then read them.
        if task_data is None:
            if not where.main:
                where.barrier()
            task_data = task.prepare(config, progress=progress)
            if where.main:
                where.barrier()
        kwargs = model_kwargs(config, task, task_data)
        if task_data.pretrained is not None and model_factory is None:
            from functools import partial

            from ncc.models import build_model

            model_factory = partial(build_model, pretrained_embeddings=task_data.pretrained)
        seed_everything(config.seed)
        model = build_task_model(config.model.name, kwargs, model_factory).to(device)
        parameters = sum(p.numel() for p in model.parameters())
        monitor = config.monitor or task.monitor
        maximise = not monitor.endswith("loss")
        optimizer = _optimizer(config, model)
        scheduler = _scheduler(config, optimizer, maximise)
        use_amp, amp_dtype = _amp_settings(config, device)
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

        def autocast():
            return torch.autocast(device.type, dtype=amp_dtype) if use_amp else nullcontext()

        state = {"epoch": 0, "best": None, "best_epoch": 0, "bad_epochs": 0, "history": [], "stopped_early": False,
                 "elapsed_s": 0.0, "train_seconds": 0.0, "train_graphs": 0, "global_step": 0}
        resumed_from = None
        if config.resume and checkpoint_path.exists():
            checkpoint = load_checkpoint(checkpoint_path, map_location=device)
            saved = TrainConfig.from_dict(checkpoint["config"])
            if saved.training_identity() != config.training_identity():
                mine, theirs = _flatten(config.training_identity()), _flatten(saved.training_identity())
                keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                raise ConfigError(f"resume: the run in {output} was made with other settings ({', '.join(keys)})")
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            if scheduler is not None and checkpoint.get("scheduler") is not None:
                scheduler.load_state_dict(checkpoint["scheduler"])
            if checkpoint.get("scaler") is not None:
                scaler.load_state_dict(checkpoint["scaler"])
            state.update(checkpoint["state"])
            states = checkpoint.get("rng") or []
            if len(states) == where.world:
                _set_rng_state(states[where.rank])
            else:
                logger.warning("checkpoint holds RNG states of %d processes, this run has %d: reseeding",
                               len(states), where.world)
                seed_everything(config.seed + 7919 * state["epoch"] + where.rank)
            resumed_from = state["epoch"]
            logger.info("resuming %s after epoch %d", output, state["epoch"])
        elif where.active:  # the same model on every rank, different dropout masks
            seed_everything(config.seed + 1000003 * where.rank)
        if where.main:
            output.mkdir(parents=True, exist_ok=True)
            if hasattr(task_data.encoder, "save"):
                task_data.encoder.save(output / "node_vocabulary.json")
            atomic_write(output / "config.json", json.dumps(config.to_dict(), indent=2))

        trained = model
        if where.active:
            from torch.nn.parallel import DistributedDataParallel

            trained = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                              find_unused_parameters=config.find_unused_parameters)
        train_set, val_set = task_data.splits["train"], task_data.splits["val"]
        sampler = GraphBatchSampler(train_set.num_nodes_per_graph, batch_size=config.data.batch_size,
                                    node_budget=config.data.node_budget, shuffle=True, seed=config.seed,
                                    num_replicas=where.world, rank=where.rank, even=True,
                                    bucket=config.data.bucket)
        loader = _loader(train_set, sampler, config.data.workers, device)
        if where.main:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(output / "tensorboard"), purge_step=state["global_step"] or None)
        logger.info("training %s (%d parameters) on %s for %s on %s%s", config.model.name, parameters,
                    config.task, f"{config.epochs} epochs", device,
                    f" x {where.world} processes" if where.active else "")

        def save_checkpoint(metrics: dict | None) -> None:
            """``checkpoint.pt``: everything to continue from here (``state["epoch_progress"]`` inside an epoch)."""
            nonlocal started
            state["elapsed_s"] += time.perf_counter() - started
            started = time.perf_counter()
            rng = where.gather(_rng_state())
            if where.main:
                _save(checkpoint_path, {
                    "kind": "ncc.checkpoint", "format": CHECKPOINT_FORMAT, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None, "rng": rng, "state": state,
                    "config": config.to_dict(), "model_name": config.model.name, "model_kwargs": kwargs,
                    "encoder": task_data.encoder, "task": config.task, "epoch": state["epoch"], "metrics": metrics})

        epoch = state["epoch"]
        while not state["stopped_early"] and epoch < config.epochs:
            epoch += 1
            record = _train_epoch(trained, loader, sampler, optimizer, scaler, config, task, device, autocast,
                                  where, epoch, state, writer, progress, save_checkpoint)
            val = _evaluate_split(model, val_set, config, task, task_data.num_classes, device, autocast, where,
                                  progress, f"validate {epoch}")
            record["val"] = val
            if monitor not in val:
                raise ConfigError(f"monitor: task {config.task!r} reports {', '.join(val)}, not {monitor!r}")
            value = val[monitor]
            if scheduler is not None:
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step(value)
                else:
                    scheduler.step()
            improved = _better(value, state["best"], maximise)
            record["improved"] = improved
            state["epoch"] = epoch
            state["history"].append(record)
            if improved:
                state.update(best=value, best_epoch=epoch, bad_epochs=0)
            else:
                state["bad_epochs"] += 1
            if config.patience and state["bad_epochs"] >= config.patience and epoch < config.epochs:
                state["stopped_early"] = True
                logger.info("early stop after epoch %d: no better %s for %d epochs", epoch, monitor,
                            config.patience)
            if where.main and improved:
                _save(output / BEST_FILE, _best_payload(model, config, kwargs, task_data, epoch, val))
            save_checkpoint(val)
            if where.main:
                _log_epoch(writer, record, monitor)
            where.barrier()
            for callback in callbacks:
                callback(dict(record))

        # The best epoch's weights on validation and test.
        best = load_checkpoint(output / BEST_FILE, map_location=device)
        model.load_state_dict(best["model"])
        final = {split: _evaluate_split(model, data, config, task, task_data.num_classes, device, autocast, where,
                                        progress, split)
                 for split, data in task_data.splits.items() if split != "train"}
        state["elapsed_s"] += time.perf_counter() - started
        report = _report(config, task, task_data, state, final, monitor, kwargs, parameters, device, where,
                         use_amp, amp_dtype, resumed_from)
        if where.main:
            atomic_write(output / REPORT_FILE, json.dumps(report, indent=2, default=_json_default))
            if writer is not None:
                for split, metrics in final.items():
                    for name, value in metrics.items():
                        writer.add_scalar(f"final/{split}_{name}", value, state["epoch"])
            logger.info("%s: best epoch %d, %s", output, state["best_epoch"],
                        ", ".join(f"{s} {monitor} {m.get(monitor, float('nan')):.4f}" for s, m in final.items()))
        return TrainResult(report=report, output_dir=output, best_checkpoint=output / BEST_FILE,
                           history=list(state["history"]))
    except KeyboardInterrupt:
        if where.main:
            logger.warning("interrupted; finished epochs are in %s: continue with resume", checkpoint_path)
        raise
    finally:
        if writer is not None:
            writer.close()
        where.close()


def _train_epoch(model, loader, sampler, optimizer, scaler, config: TrainConfig, task: Task, device, autocast,
                 where: _Distributed, epoch: int, state: dict, writer, progress: bool,
                 save_checkpoint: Callable[[dict | None], None]) -> dict:
    """One pass over the training split; returns the epoch's record (global mean loss, throughput).

    Every ``config.checkpoint_minutes`` the run is checkpointed with ``state["epoch_progress"]`` (the
    steps done and the running sums); an epoch that finds its own progress there continues after those
    steps, with the RNG states of that moment, as if it had never stopped.
    """
    from tqdm import tqdm

    model.train()
    done = state.get("epoch_progress") or {}
    if done.get("epoch") != epoch:
        done = {"epoch": epoch, "steps": 0, "loss_sum": 0.0, "terms": 0, "graphs": 0, "seconds": 0.0}
    sampler.set_epoch(epoch, skip=done["steps"])
    loss_sum, terms, graphs, steps = done["loss_sum"], done["terms"], done["graphs"], done["steps"]
    if where.rank:  # the saved sums are global, held by rank 0
        loss_sum, terms = 0.0, 0
    begun = time.perf_counter() - done["seconds"]
    last_checkpoint = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}/{config.epochs}", unit="batch", leave=False, disable=not progress,
               initial=steps, total=steps + len(sampler))
    for batch in bar:
        batch = batch.to(device, non_blocking=True)
        with autocast():
            logits = model(batch)
        logits, targets = task.scored(logits.float(), batch)
        local = int(targets.shape[0])
        local_graphs = int(batch.num_graphs)
        due = bool(config.checkpoint_minutes) and time.perf_counter() - last_checkpoint >= 60 * config.checkpoint_minutes
        if where.active:  # every rank checkpoints at the same step
            total, total_graphs, due = where.all_sum([local, local_graphs, float(due)], device)
        else:
            total, total_graphs = local, local_graphs
        summed = task.loss(logits, targets)
        loss = summed * (where.world / max(total, 1))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.optimizer.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.optimizer.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        value = float(summed.detach())
        loss_sum += value
        terms += local
        graphs += int(total_graphs)
        steps += 1
        state["global_step"] += 1
        if progress:
            seconds = time.perf_counter() - begun
            bar.set_postfix(loss=f"{loss_sum / max(terms, 1):.4f}", graphs_s=f"{graphs / max(seconds, 1e-9):.0f}",
                            refresh=False)
        if writer is not None and state["global_step"] % config.log_every == 0:
            writer.add_scalar("train/batch_loss", value / max(local, 1), state["global_step"])
        if due:
            saved_sum, saved_terms = where.all_sum([loss_sum, terms], device) if where.active else (loss_sum, terms)
            state["epoch_progress"] = {"epoch": epoch, "steps": steps, "loss_sum": saved_sum, "terms": saved_terms,
                                       "graphs": graphs, "seconds": time.perf_counter() - begun}
            save_checkpoint(None)
            last_checkpoint = time.perf_counter()
    state.pop("epoch_progress", None)
    seconds = time.perf_counter() - begun
    loss_total, term_total = where.all_sum([loss_sum, terms], device) if where.active else (loss_sum, terms)
    state["train_seconds"] += seconds  # the steps before a stop included: their time is in done["seconds"]
    state["train_graphs"] += graphs
    return {"epoch": epoch, "train_loss": loss_total / max(term_total, 1), "train_seconds": seconds,
            "train_graphs": graphs, "train_graphs_per_s": graphs / max(seconds, 1e-9),
            "lr": optimizer.param_groups[0]["lr"], "steps": steps}


def _log_epoch(writer, record: dict, monitor: str) -> None:
    if writer is None:
        return
    epoch = record["epoch"]
    writer.add_scalar("train/loss", record["train_loss"], epoch)
    writer.add_scalar("train/graphs_per_s", record["train_graphs_per_s"], epoch)
    writer.add_scalar("train/lr", record["lr"], epoch)
    for name, value in record["val"].items():
        writer.add_scalar(f"val/{name}", value, epoch)
    writer.flush()


def _best_payload(model, config: TrainConfig, kwargs: dict, task_data: TaskData, epoch: int, val: dict) -> dict:
    return {"kind": "ncc.checkpoint", "format": CHECKPOINT_FORMAT, "model": model.state_dict(),
            "model_name": config.model.name, "model_kwargs": kwargs, "config": config.to_dict(),
            "encoder": task_data.encoder, "num_classes": task_data.num_classes, "task": config.task, "epoch": epoch,
            "metrics": val}


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _report(config: TrainConfig, task: Task, task_data: TaskData, state: dict, final: dict, monitor: str,
            kwargs: dict, parameters: int, device: torch.device, where: _Distributed, use_amp: bool, amp_dtype,
            resumed_from: int | None) -> dict:
    history = state["history"]
    return {
        "task": config.task,
        "model": config.model.name,
        "metrics": {"monitor": monitor, "best_epoch": state["best_epoch"], "best_val": state["best"], **final},
        "epochs_run": state["epoch"],
        "stopped_early": state["stopped_early"],
        "resumed_from_epoch": resumed_from,
        "wall_time_s": state["elapsed_s"],
        "train_seconds": state["train_seconds"],
        "train_graphs_per_s": state["train_graphs"] / max(state["train_seconds"], 1e-9),
        "history": history,
        "data": task_data.info,
        "model_kwargs": {k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool, list, tuple))},
        "parameters": parameters,
        "device": str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
        "world_size": where.world,
        "amp": str(amp_dtype).replace("torch.", "") if use_amp else None,
        "config": config.to_dict(),
        "versions": _versions(),
        "git": _git_commit(),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _checkpoint_model(payload: dict, device: torch.device, model_factory: ModelFactory | None) -> torch.nn.Module:
    """The model a checkpoint holds, with its weights, on ``device``."""
    model = build_task_model(payload["model_name"], payload["model_kwargs"], model_factory)
    model.load_state_dict(payload["model"])
    return model.to(device)


def predict(checkpoint: str | os.PathLike | dict, dataset: Any, device: str = "auto", batch_size: int = 64,
            model_factory: ModelFactory | None = None, features: bool = False) -> np.ndarray:
    """The logits a checkpoint's model gives each item of a dataset, in the dataset's order.

    Args:
        checkpoint: a ``best.pt`` / ``checkpoint.pt`` file or a loaded checkpoint.
        dataset: a :class:`~ncc.training.datasets.ProgramGraphDataset` made with the checkpoint's encoder.
        device: as for training.
        batch_size: graphs per batch.
        features: return what the model's ``head`` reads (its graph representation: the pooled node
            states of ``rgine``, the last LSTM state of ``lstm``) instead of the logits; models without a
            ``head`` (``ggnn``) give their logits.

    Returns:
        ``float32 [len(dataset), C]`` (or ``[len(dataset), F]`` features).
    """
    from ncc.training.registry import get_task

    payload = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    torch_device = resolve_device(device)
    model = _checkpoint_model(payload, torch_device, model_factory)
    sampler = GraphBatchSampler(dataset.num_nodes_per_graph, batch_size=batch_size, shuffle=False)
    captured: list[torch.Tensor] = []
    head = getattr(model, "head", None) if features else None
    hook = head.register_forward_pre_hook(lambda _, inputs: captured.append(inputs[0].detach().float().cpu())) \
        if head is not None else None
    try:
        logits, _, _ = _predict(model, _loader(dataset, sampler, 0, torch_device), torch_device, nullcontext,
                                get_task(payload["task"]), False, "predict")
    finally:
        if hook is not None:
            hook.remove()
    return torch.cat(captured).numpy() if captured else logits


def evaluate(checkpoint: str | os.PathLike | dict, data: str | os.PathLike | None = None, device: str = "auto",
             batch_size: int = 0, progress: bool = True, model_factory: ModelFactory | None = None) -> dict:
    """Reload a model from a checkpoint and compute its task's metrics.

    Args:
        checkpoint: a ``best.pt`` / ``checkpoint.pt`` file, a run folder, or a loaded checkpoint.
        data: a split of the checkpoint's task (``train``, ``val``, ``test``, ``long`` where the task has
            it; default ``test``) or a file
            or folder of inputs the task can label (for ``loops``: C sources or LLVM IR).
        device: as for training.
        batch_size: graphs per batch (0: the training configuration's).
        progress: show progress bars.
        model_factory: as for :func:`train`.

    Returns:
        ``{"checkpoint", "task", "model", "epoch", "data", "graphs", "metrics": {...}}``.

    Raises:
        NccError: an unreadable checkpoint, or data the task cannot use.
    """
    from ncc.training.registry import get_task

    payload = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    config = TrainConfig.from_dict(payload["config"])
    overrides = {"data.eval_batch_size": batch_size or None, "device": device, "progress": progress}
    config = config.with_overrides(overrides)
    task = get_task(payload["task"])
    target = "test" if data is None else str(data)
    encoder = payload["encoder"]
    if target in ("train", "val", "test", "long") or (target.isidentifier() and not Path(target).exists()):
        prepared = task.prepare(config, progress=progress, encoder=encoder)
        if target not in prepared.splits:
            raise NccError(f"task {task.name!r} has no split {target!r}; it has {', '.join(prepared.splits)}")
        dataset = prepared.splits[target]
    else:
        dataset = task.dataset_from_path(target, encoder, config, progress=progress)
    torch_device = resolve_device(config.device)
    model = _checkpoint_model(payload, torch_device, model_factory)
    use_amp, amp_dtype = _amp_settings(config, torch_device)

    def autocast():
        return torch.autocast(torch_device.type, dtype=amp_dtype) if use_amp else nullcontext()

    num_classes = payload.get("num_classes") or payload["model_kwargs"].get("num_classes")
    metrics = _evaluate_split(model, dataset, config, task, num_classes, torch_device, autocast, _Distributed(),
                              progress, "evaluate")
    return {"checkpoint": payload.get("path"), "task": payload["task"], "model": payload["model_name"],
            "epoch": payload["epoch"], "data": target, "graphs": len(dataset), "metrics": metrics}
