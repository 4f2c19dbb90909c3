"""What the two OpenCL tasks (device mapping, thread coarsening) share.

* :func:`kernel_modules`: compile kernel sources with ncc's frontend (cached) or read NCC's IR, one
  :class:`~ncc.frontend.IRModule` per kernel key, failures listed and never fatal for the others.
* :class:`GraphFeatures`: fixed-length numeric features of a program graph (node-text counts and
  per-flow edge counts), for tree models that read the code.
* :class:`StatementIds`: inst2vec statement ids as a feature encoder for graph datasets.
* :func:`fit_predict_graph_model`: train one of :mod:`ncc.models` with the trainer on a fold's
  examples (validation split for early stopping drawn from the training fold) and return test logits.
* :func:`run_in_processes`: a table's runs spread over processes (e.g. many small trainings on one GPU).
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
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ncc.fileio import atomic_write
from ncc.frontend.ir import IRModule, drop_unused_kernel_copies
from ncc.graph.program_graph import EDGE_FLOWS, ProgramGraph

logger = logging.getLogger(__name__)

__all__ = ["KernelSource", "kernel_modules", "GraphFeatures", "StatementIds", "fit_predict_graph_model",
           "write_table", "markdown_table", "gradient_boosting", "graph_summary", "loop_summary",
           "LOOP_SUMMARY_COLUMNS", "unique_graphs", "kernel_embeddings", "run_name", "out_of_fold",
           "embeddings_digest", "run_in_processes", "fold_settings"]


@dataclass(frozen=True)
class KernelSource:
    """One kernel to compile.

    Attributes:
        key: the name results are keyed by (e.g. ``<benchmark>|<dataset>``).
        path: the ``.cl`` file (or ``.ll`` for IR read as it is).
        flags: clang flags for this kernel.
        text: source text to compile instead of the file's (e.g. a repaired or normalised source).
    """

    key: str
    path: Path
    flags: tuple[str, ...] = ()
    text: str | None = None


def kernel_modules(kernels: Sequence[KernelSource], opt_level: int | str = 2, workers: int | None = None,
                   clang: Any = None, cache_dir: str | Path | None = None,
                   progress: bool = True) -> tuple[dict[str, IRModule], dict[str, str]]:
    """IR modules of kernels, compiled through the batch compiler's cache or read from ``.ll`` files.

    Kernels that share flags are compiled in one batch (one progress bar over all). clang's uncalled ``__clang_ocl_kern_imp_``
    copies are dropped (see :func:`ncc.frontend.ir.drop_unused_kernel_copies`).

    Returns:
        ``(modules, failures)``: key -> module, and key -> one-line reason for every kernel that failed.
    """
    from ncc.frontend import compile_batch, load
    from ncc.errors import NccError

    modules: dict[str, IRModule] = {}
    failures: dict[str, str] = {}
    groups: dict[tuple[str, ...], list[KernelSource]] = {}
    for kernel in kernels:
        if kernel.path.suffix == ".ll":
            try:
                modules[kernel.key] = load(kernel.path)
            except NccError as error:
                failures[kernel.key] = str(error)
        else:
            groups.setdefault(kernel.flags, []).append(kernel)
    from tqdm import tqdm

    bar = tqdm(total=sum(len(m) for m in groups.values()), desc="kernels", unit="kernel", disable=not progress)
    for flags, members in groups.items():
        by_path: dict[Path, list[KernelSource]] = {}
        for kernel in members:
            by_path.setdefault(kernel.path, []).append(kernel)
        texts = {str(path): group[0].text for path, group in by_path.items() if group[0].text is not None}
        result = compile_batch(list(by_path), language="opencl", opt_level=opt_level, flags=flags, workers=workers,
                               cache_dir=cache_dir, progress=False, clang=clang,
                               source_transform=(lambda path, text: texts.get(str(path), text)) if texts else None)
        for entry in result.entries:
            module = drop_unused_kernel_copies(entry.module())
            for kernel in by_path[Path(entry.path)]:
                modules[kernel.key] = module
        for failure in result.failures:
            for kernel in by_path[Path(failure.path)]:
                failures[kernel.key] = failure.reason
        bar.update(len(members))
    bar.close()
    return modules, failures


class GraphFeatures:
    """Counts of node texts and of edges per flow, as a fixed-length vector (scikit-learn style).

    ``fit`` keeps the node texts seen in at least ``min_graphs`` training graphs; ``transform`` gives
    each graph the counts of those texts (instructions by opcode, variables and constants by type), the
    number of nodes of each type and of edges of each flow, and the log of the node count. Intended for
    gradient-boosted trees beside the auxiliary inputs.

    Attributes:
        texts_: the node texts kept, in column order.
        names_: a name per column.
    """

    def __init__(self, min_graphs: int = 2):
        self.min_graphs = min_graphs

    def fit(self, graphs: Iterable[ProgramGraph]) -> "GraphFeatures":
        seen: Counter = Counter()
        for graph in graphs:
            seen.update(set(graph.node_text.tolist()))
        self.texts_ = sorted(text for text, count in seen.items() if count >= self.min_graphs)
        self.names_ = ([f"text:{t}" for t in self.texts_] + [f"nodes:{k}" for k in ("instruction", "variable", "constant")]
                       + [f"edges:{f}" for f in EDGE_FLOWS] + ["log_nodes"])
        return self

    def transform(self, graphs: Sequence[ProgramGraph]) -> np.ndarray:
        """``float32 [len(graphs), len(names_)]``."""
        index = {text: i for i, text in enumerate(self.texts_)}
        width = len(self.texts_)
        rows = np.zeros((len(graphs), len(self.names_)), dtype=np.float32)
        cache: dict[int, np.ndarray] = {}
        for r, graph in enumerate(graphs):
            if id(graph) not in cache:
                row = np.zeros(len(self.names_), dtype=np.float32)
                for text, count in Counter(graph.node_text.tolist()).items():
                    if text in index:
                        row[index[text]] = count
                row[width:width + 3] = np.bincount(graph.node_type.astype(np.int64), minlength=3)[:3]
                row[width + 3:width + 6] = np.bincount(graph.edge_flow.astype(np.int64), minlength=3)[:3]
                row[-1] = np.log1p(graph.num_nodes)
                cache[id(graph)] = row
            rows[r] = cache[id(graph)]
        return rows


_MEMORY = ("load", "store")
_ARITHMETIC = ("fadd", "fsub", "fmul", "fdiv", "fneg", "frem", "call", "add", "sub", "mul", "sdiv", "udiv", "srem",
               "urem", "shl", "lshr", "ashr", "and", "or", "xor")


def graph_summary(graphs: Sequence[ProgramGraph]) -> np.ndarray:
    """``float64 [len(graphs), 5]``: instructions, memory accesses, arithmetic (and calls), branches and phis.

    The coarse static counts of Grewe et al.'s features, read off the program graph instead of a
    source-level tool.
    """
    cache: dict[int, list[float]] = {}
    rows = []
    for graph in graphs:
        if id(graph) not in cache:
            counts = Counter(graph.node_text[graph.node_type == 0].tolist())
            cache[id(graph)] = [sum(counts.values()), sum(counts[k] for k in _MEMORY),
                                sum(counts[k] for k in _ARITHMETIC), counts["br"], counts["phi"]]
        rows.append(cache[id(graph)])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), 5)


_FLOATING = ("fadd", "fsub", "fmul", "fdiv", "frem", "fneg", "fcmp", "fpext", "fptrunc", "fptosi", "fptoui")
#: Weight of an instruction per enclosing loop in :func:`loop_summary` (a guess at a trip count).
LOOP_WEIGHT = 16.0
#: OpenCL's address spaces in SPIR: global, local, constant (private memory has none).
_ADDRESS_SPACES = ("addrspace(1)", "addrspace(3)", "addrspace(2)")
#: Columns of :func:`loop_summary`.
LOOP_SUMMARY_COLUMNS = ("deepest loop", "instructions in loops", "instructions", "memory", "arithmetic", "floating",
                        "barriers", "memory - arithmetic", "global memory", "local memory", "constant memory",
                        "private memory")


def loop_summary(graphs: Sequence[ProgramGraph]) -> np.ndarray:
    """``float64 [len(graphs), 12]``: how much of the code runs in loops (see :data:`LOOP_SUMMARY_COLUMNS`).

    Columns: deepest loop nesting; instructions inside loops; log(1 + sum of 16^depth) over all
    instructions, memory accesses, arithmetic (and calls) and floating-point instructions (fused
    multiply-adds included); barrier calls; the log weighted memory accesses minus the log weighted
    arithmetic (trees cannot subtract); the log weighted loads and stores of global, local, constant and
    private memory. Depths are :func:`ncc.graph.analysis.loop_depths`.
    """
    from ncc.graph.analysis import loop_depths

    cache: dict[int, list[float]] = {}
    rows = []
    for graph in graphs:
        if id(graph) not in cache:
            instructions = graph.node_type == 0
            depth = loop_depths(graph)[instructions]
            text = graph.node_text[instructions]
            full_text = graph.node_full_text[instructions].astype(str)
            weight = LOOP_WEIGHT ** depth

            def weighted(chosen: np.ndarray | None = None) -> float:
                return float(np.log1p(weight.sum() if chosen is None else weight[chosen].sum()))

            def containing(part: str) -> np.ndarray:
                return np.char.find(full_text, part) >= 0

            memory_access = np.isin(text, _MEMORY)
            spaces = [memory_access & containing(space) for space in _ADDRESS_SPACES]
            private = memory_access & ~np.logical_or.reduce(spaces)
            floating = np.isin(text, _FLOATING) | containing("@llvm.fmuladd") | containing("@llvm.fma.")
            memory, arithmetic = weighted(memory_access), weighted(np.isin(text, _ARITHMETIC))
            barriers = sum("barrier" in t for t in full_text[text == "call"])
            cache[id(graph)] = [depth.max(initial=0), np.count_nonzero(depth), weighted(), memory, arithmetic,
                                weighted(floating), barriers, memory - arithmetic, *map(weighted, spaces),
                                weighted(private)]
        rows.append(cache[id(graph)])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(LOOP_SUMMARY_COLUMNS))


class StatementIds:
    """inst2vec statement ids per node, as a feature encoder for :class:`~ncc.tasks.datasets.ProgramGraphDataset`.

    The ids of a graph need its module's struct types, so they are computed up front from
    ``(graph, module)`` pairs and looked up by graph identity.

    Args:
        embeddings: trained :class:`~ncc.embeddings.skipgram.Embeddings`.
        pairs: ``(graph, module)`` of every graph that will be transformed.
    """

    def __init__(self, embeddings: Any, pairs: Iterable[tuple[ProgramGraph, IRModule]]):
        from ncc.embeddings.normalise import module_statements

        self.embeddings = embeddings
        self._ids: dict[int, np.ndarray] = {}
        self._graphs: list[ProgramGraph] = []  # keeps the ids' keys alive
        for graph, module in pairs:
            if id(graph) not in self._ids:
                _, statements = module_statements(module, graph)
                self._ids[id(graph)] = embeddings.ids_for_graph(graph, statements)
                self._graphs.append(graph)

    def __len__(self) -> int:
        return len(self.embeddings.feature_matrix())

    def transform(self, graph: ProgramGraph) -> np.ndarray:
        try:
            return self._ids[id(graph)]
        except KeyError:
            raise KeyError(f"StatementIds has no statements for graph {graph.module_name!r}") from None

    def digest(self) -> str:
        return embeddings_digest(self.embeddings)


def embeddings_digest(embeddings: Any) -> str:
    """sha256 of trained embeddings' matrix and vocabulary: the content of an inst2vec feature encoder."""
    hasher = hashlib.sha256(embeddings.matrix.tobytes())
    hasher.update(json.dumps(embeddings.vocabulary.tokens_).encode())
    return hasher.hexdigest()


def unique_graphs(modules: Sequence[IRModule]) -> list[ProgramGraph]:
    """One program graph per module, built once per distinct module object (rows that share a kernel share it)."""
    from ncc.graph import build

    graphs: dict[int, ProgramGraph] = {}
    for module in modules:
        if id(module) not in graphs:
            graphs[id(module)] = build(module, name=module.name)
    return [graphs[id(module)] for module in modules]


def kernel_embeddings(modules: Sequence[IRModule], folder: Path, progress: bool = True) -> Any:
    """inst2vec embeddings trained without labels on the distinct modules, cached in ``folder``."""
    from ncc.embeddings.skipgram import Embeddings
    from ncc.embeddings.train import embed

    folder = Path(folder)
    if (folder / "embeddings.npy").is_file():
        return Embeddings.load(folder)
    scratch = folder / "ir"
    files = []
    for module in {id(m): m for m in modules}.values():
        path = scratch / f"{hashlib.sha256(module.text.encode()).hexdigest()[:16]}.ll"
        if not path.is_file():
            atomic_write(path, module.text)
        files.append((module.name, str(path)))
    return embed([], folder, ir_files=files, progress=progress).embeddings


def fold_settings(config: Any, task: str, models: Mapping[str, Any]) -> dict[str, Any]:
    """The trainer settings that ``ncc train devmap|threadcoarsening`` passes to every neural fold.

    Raises:
        ConfigError: ``config.model.name`` is not one of ``models``.
    """
    from ncc.tasks.config import ConfigError

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
            continue
        started = time.perf_counter()
        predicted = np.asarray(predict_fold(index, train, test, Path(folder) / f"run-{index}"), dtype=np.int64)
        atomic_write(path, lambda stream: np.save(stream, predicted), "wb")
        predictions[test] = predicted
        logger.info("%s fold %d: %d predictions in %.1f s", label, index, len(test), time.perf_counter() - started)
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
                     progress: bool = True, desc: str = "runs") -> None:
    """Call ``function(*call)`` for every call in ``jobs`` spawned processes, in the order given.

    The calls leave their results on disk (finished folds); what comes back is only whether they
    failed. Every call runs even when some fail; then an :class:`~ncc.errors.NccError` names each
    failed call (by its label) with its error. Each process gets ``cpu_count // jobs`` threads;
    processes started by ``spawn`` can each hold a CUDA context of their own.

    Args:
        calls: argument tuples, picklable.
        labels: a name per call for the progress bar and the failures.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    from ncc.errors import NccError

    threads = max(1, (os.cpu_count() or 1) // jobs)
    failures = []
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_limit_threads,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(function, *call): label for call, label in zip(calls, labels)}
        for future in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="run", disable=not progress):
            try:
                future.result()
            except Exception as error:  # reported with the others once every call has run
                message = str(error).splitlines()[0] if str(error) else type(error).__name__
                failures.append(f"{futures[future]}: {message}")
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
        train, val, test: :class:`~ncc.tasks.datasets.Example` lists; ``val`` decides early stopping
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
    from ncc.tasks.config import load_config
    from ncc.tasks.datasets import ExampleSource, ProgramGraphDataset
    from ncc.tasks.task import TaskData
    from ncc.tasks import training

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
    from ncc.embeddings.node_vocabulary import NodeVocabulary
    from ncc.tasks.config import node_features
    from ncc.tasks.datasets import Example

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


def write_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], stem: str | Path) -> tuple[Path, Path]:
    """Write rows as ``<stem>.csv`` and ``<stem>.md`` (atomically); returns both paths."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    stem = Path(stem)
    return (atomic_write(stem.with_suffix(".csv"), buffer.getvalue()),
            atomic_write(stem.with_suffix(".md"), markdown_table(rows, columns)))
