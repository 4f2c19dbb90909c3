"""Cross-validated tables: folds kept on disk, runs spread over processes, neural rows through the trainer.

* :func:`out_of_fold`: out-of-fold predictions, each fold computed once and kept (a stopped run resumes).
* :func:`run_name`: a row's folder name from its settings, so changed settings never reuse old folds.
* :func:`run_in_processes`: a table's runs spread over processes (e.g. many small trainings on one GPU).
* :func:`fit_predict_graph_model` / :func:`neural_fold`: one fold of a neural row through the trainer.
* :func:`write_table`: a results table as CSV and Markdown.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ncc.fileio import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["run_name", "out_of_fold", "run_in_processes", "gradient_boosting", "fit_predict_graph_model",
           "neural_fold", "neural_rows", "fold_settings", "markdown_table", "write_table", "NEURAL_MODELS"]


def fold_settings(config: Any, task: str, models: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer settings that ``ncc train devmap|threadcoarsening`` passes to every neural fold.

    Raises:
        ConfigError: ``config.model.name`` is not one of ``models``.
    """
    from ncc.training.config import ConfigError

    if config.model.name not in models:
        raise ConfigError(f"model.name: {task} has no model {config.model.name!r}; choose one of {', '.join(models)}")
    settings = {"optimizer.lr": config.optimizer.lr, "data.batch_size": config.data.batch_size,
                "device": config.device}
    if config.data.features != "auto":
        settings["data.features"] = config.data.features
    return settings


def run_name(model: str, seed: int, settings: Mapping[str, Any]) -> str:
    """``<model>-seed<k>-<digest>``: the folder of a model's folds, so changed settings never reuse old folds."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{model}-seed{seed}-{digest}"


#: Called with no arguments each time :func:`out_of_fold` has a fold (computed or read); see :func:`count_folds`.
_fold_listener: Any = None


class count_folds:
    """``with count_folds(callback):`` calls ``callback()`` for every fold :func:`out_of_fold` finishes here."""

    def __init__(self, callback: Any):
        self.callback = callback

    def __enter__(self) -> "count_folds":
        global _fold_listener
        self.previous, _fold_listener = _fold_listener, self.callback
        return self

    def __exit__(self, *exc: Any) -> None:
        global _fold_listener
        _fold_listener = self.previous


def _report_folds_to(queue: Any, threads: int) -> None:
    """Process initializer of :func:`run_in_processes`: threads as :func:`_limit_threads`, folds to ``queue``."""
    global _fold_listener
    _limit_threads(threads)
    _fold_listener = lambda: queue.put(1)  # noqa: E731


def out_of_fold(folds: Sequence[tuple[np.ndarray, np.ndarray]], size: int, folder: Path,
                predict_fold: Any, only: Sequence[int] | None = None, label: str = "") -> np.ndarray:
    """Out-of-fold predictions, each fold computed once and kept as ``folder/fold-<i>.npy``.

    Args:
        folds: ``(train, test)`` indices of every fold.
        size: how many items the folds cover.
        folder: where finished folds are kept (a fold found there is read, not computed).
        predict_fold: ``(index, train, test, run_folder) -> predictions for test``.
        only: the fold numbers to run (None: all).
        label: what the log line names.

    Returns:
        ``int64 [size]``, ``-1`` for items of folds not run.
    """
    predictions = np.full(size, -1, dtype=np.int64)
    for index, (train, test) in enumerate(folds):
        if only is not None and index not in only:
            continue
        path = Path(folder) / f"fold-{index}.npy"
        if path.is_file():
            predictions[test] = np.load(path)
        else:
            started = time.perf_counter()
            predicted = np.asarray(predict_fold(index, train, test, Path(folder) / f"run-{index}"), dtype=np.int64)
            atomic_write(path, lambda stream: np.save(stream, predicted), "wb")
            predictions[test] = predicted
            logger.info("%s fold %d: %d predictions in %.1f s", label, index, len(test),
                        time.perf_counter() - started)
        if _fold_listener is not None:
            _fold_listener()
    return predictions


NEURAL_MODELS = ("lstm", "ggnn", "rgine")


def _limit_threads(threads: int) -> None:
    """Process initializer: ``threads`` CPU threads for numpy and torch, so parallel runs do not oversubscribe."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def run_in_processes(function: Any, calls: Sequence[tuple], jobs: int, labels: Sequence[str],
                     progress: bool = True, desc: str = "runs", folds: Sequence[int] | None = None) -> None:
    """Call ``function(*call)`` for every call in ``jobs`` spawned processes, in the order given.

    The calls leave their results on disk (finished folds); what comes back is only whether they
    failed. Every call runs even when some fail; then an :class:`~ncc.errors.NccError` names each
    failed call (by its label) with its error. Each process gets ``cpu_count // jobs`` threads;
    processes started by ``spawn`` can each hold a CUDA context of their own.

    Args:
        calls: argument tuples, picklable.
        labels: a name per call for the failures.
        desc: the progress bar's name.
        folds: how many folds each call runs: the bar counts folds (as :func:`out_of_fold` finishes them),
            else calls.
    """
    import multiprocessing
    import queue as queues

    from tqdm import tqdm

    from ncc.errors import NccError
    from ncc.processes import process_pool

    threads = max(1, (os.cpu_count() or 1) // jobs)
    failures = []
    finished = multiprocessing.get_context("spawn").Queue()
    total, unit = (sum(folds), "fold") if folds is not None else (len(calls), "run")
    with process_pool(jobs, start="spawn", initializer=_report_folds_to, initargs=(finished, threads)) as pool, \
            tqdm(total=total, desc=desc, unit=unit, disable=not progress) as bar:
        futures = {pool.submit(function, *call): label for call, label in zip(calls, labels)}
        pending = set(futures)
        while pending:
            done = {future for future in pending if future.done()}
            for future in done:
                try:
                    future.result()
                except Exception as error:  # reported with the others once every call has run
                    message = str(error).splitlines()[0] if str(error) else type(error).__name__
                    failures.append(f"{futures[future]}: {message}")
                if folds is None:
                    bar.update(1)
            pending -= done
            try:
                finished.get(timeout=0.2)
                if folds is not None:
                    bar.update(1)
            except queues.Empty:
                pass
        while folds is not None and bar.n < total:  # the last folds' messages may still be on their way
            try:
                finished.get(timeout=1.0)
                bar.update(1)
            except queues.Empty:
                break
    if failures:
        raise NccError(f"{len(failures)} of {len(calls)} runs failed (their finished folds are kept): "
                       + "; ".join(sorted(failures)))


def gradient_boosting(seed: int) -> Any:
    """The gradient-boosted trees every tree row of the tables uses (scikit-learn, fixed settings)."""
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(n_estimators=200, max_depth=3, learning_rate=0.1, subsample=0.8,
                                      random_state=seed)


def fit_predict_graph_model(model: str, train: Sequence[Any], val: Sequence[Any], test: Sequence[Any],
                            encoder: Any, num_classes: int, output: Path, task: str, aux_dim: int = 0,
                            model_kwargs: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None,
                            pretrained: np.ndarray | None = None, seed: int = 0, progress: bool = False) -> np.ndarray:
    """Train a model of :mod:`ncc.models` on examples with ncc's trainer and return its test logits.

    A finished run in ``output`` (its ``report.json`` and ``best.pt``) is reused, so a cross-validation
    that was stopped resumes at the first unfinished fold.

    Args:
        model: ``ggnn``, ``lstm``, ``rgine``, ...
        train, val, test: :class:`~ncc.training.datasets.Example` lists; ``val`` decides early stopping
            and the best epoch.
        encoder: the feature encoder (fitted on ``train`` only).
        num_classes: classes.
        output: the run folder.
        task: the registered task name the checkpoint records.
        aux_dim: auxiliary inputs per example.
        model_kwargs: model constructor arguments.
        settings: trainer settings as ``load_config`` overrides (``epochs``, ``optimizer.lr`` ...).
        pretrained: a ``[V, D]`` node-feature matrix (inst2vec's) the model starts from; the checkpoint
            holds it as weights, so only training needs it.
        seed: the training seed.

    Returns:
        ``float32 [len(test), num_classes]``.
    """
    from ncc.training.config import load_config
    from ncc.training.datasets import ExampleSource, ProgramGraphDataset
    from ncc.training.task import TaskData
    from ncc.training import trainer as training

    output = Path(output)
    datasets = {split: ProgramGraphDataset(output.parent / "processed", ExampleSource(items), encoder, name=split)
                for split, items in (("train", train), ("val", val), ("test", test))}
    if not ((output / training.REPORT_FILE).is_file() and (output / training.BEST_FILE).is_file()):
        overrides = {"task": task, "model.name": model, "seed": seed, "output": str(output), "progress": progress,
                     "device": "auto", "resume": (output / "checkpoint.pt").is_file()}
        overrides.update({f"model.{k}": v for k, v in (model_kwargs or {}).items()})
        overrides.update(settings or {})
        config = load_config(None, overrides)
        data = TaskData(splits=datasets, encoder=encoder, num_classes=num_classes, aux_dim=aux_dim,
                        info={split: len(d) for split, d in datasets.items()}, pretrained=pretrained)
        training.train(config, task_data=data)
    return training.predict(output / training.BEST_FILE, datasets["test"])


def neural_fold(model: str, experiment: Any, fit: Sequence[int], val: Sequence[int], test: Sequence[int],
                labels: np.ndarray, aux: np.ndarray | None, names: Sequence[str], num_classes: int, task: str,
                batch_size: int, seed: int, folder: Path, model_kwargs: Mapping[str, Any] | None = None,
                epochs: int | None = None) -> np.ndarray:
    """One fold of a neural row of an OpenCL table: the predicted class of every ``test`` row.

    ``experiment`` holds ``graphs`` and ``modules`` per row, ``embeddings()``, ``epochs`` (unless
    ``epochs`` is given) and ``settings``. Node features follow ``settings["data.features"]`` (see
    ``DataConfig.features``): by default the LSTM reads inst2vec statement ids (embeddings trained
    without labels), the graph models a node vocabulary fitted on the ``fit`` rows. The best epoch on the
    ``val`` rows is kept; the LSTM stops after ``max(5, epochs // 4)`` epochs without a better one, the
    graph models train every epoch, unless ``settings`` says otherwise.
    """
    from ncc.embeddings.encoders import StatementIds
    from ncc.embeddings.node_vocabulary import NodeVocabulary
    from ncc.training.config import node_features
    from ncc.training.datasets import Example

    graphs = experiment.graphs
    pretrained = None
    if node_features(model, experiment.settings.get("data.features", "auto")) == "inst2vec":
        embeddings = experiment.embeddings()
        encoder = StatementIds(embeddings, zip(graphs, experiment.modules))
        pretrained = embeddings.feature_matrix()
    else:
        encoder = NodeVocabulary().fit(graphs[i] for i in fit)

    def examples(rows):
        return [Example(graphs[i], int(labels[i]), None if aux is None else aux[i], name=names[i]) for i in rows]

    epochs = experiment.epochs if epochs is None else epochs
    # The graph models' validation accuracy sits on a plateau for 10-20 epochs before it climbs (devmap, 68
    # validation rows), and stopping them early cost the GGNN on every coarsening GPU: they train every epoch.
    patience = max(5, epochs // 4) if model == "lstm" else 0
    settings = {"epochs": epochs, "patience": patience,
                "data.batch_size": batch_size, **experiment.settings}
    logits = fit_predict_graph_model(model, examples(fit), examples(val), examples(test), encoder, num_classes,
                                     folder, task=task, aux_dim=0 if aux is None else aux.shape[1],
                                     model_kwargs=model_kwargs, settings=settings, pretrained=pretrained,
                                     seed=seed, progress=False)
    return logits.argmax(axis=1)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of rows (floats with 2 decimals, or 3 for values below 10)."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if np.isnan(value) else f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and np.isnan(value))


def write_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], stem: str | Path) -> tuple[Path, Path]:
    """Write rows as ``<stem>.csv`` and ``<stem>.md`` (atomically); returns both paths.

    A ``*_std`` column empty in every row (a single seed) is left out.
    """
    columns = [c for c in columns if not (c.endswith("_std") and all(_empty(row.get(c)) for row in rows))]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    stem = Path(stem)
    return (atomic_write(stem.with_suffix(".csv"), buffer.getvalue()),
            atomic_write(stem.with_suffix(".md"), markdown_table(rows, columns)))


def neural_rows(reads: Mapping[str, str]) -> dict[str, tuple[str, Any]]:
    """Table rows of neural models: name -> (what it reads, predictor).

    The predictor, ``(experiment, train, test, setting, seed, folder) -> predictions``, hands the fold to
    ``experiment.neural_fold(name, train, test, setting, seed, folder)``, where the task says what is
    particular to it (labels, auxiliary inputs, validation rows, batch size), usually through
    :func:`neural_fold`.
    """
    def row(name: str) -> Any:
        def predict(experiment: Any, train, test, setting, seed, folder) -> np.ndarray:
            return experiment.neural_fold(name, train, test, setting, seed, folder)

        return predict

    return {name: (what, row(name)) for name, what in reads.items()}
