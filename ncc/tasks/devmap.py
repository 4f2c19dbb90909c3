"""Heterogeneous device mapping (Grewe et al., CGO 2013; DeepTune, PACT 2017; NCC; ProGraML): CPU or GPU?

Data: ``devmap/cgo17-{amd,nvidia}.csv`` (680 rows per platform: 256 OpenCL kernels of 7 suites, each
with one or more input sizes), read from ``$NCC_DATA`` or downloaded from DeepTune's repository with the
sha256 pinned in ``datasets/devmap/`` (its README says what the data set is and how it was checked).
The label of a row is the faster device (``oracle``); the auxiliary inputs are the
``transfer`` size and the work-group size ``wgsize``.

Kernels become program graphs through ncc's frontend (``source="original"``: the original sources in
``devmap/ncc/kernels_cl`` with the suites' defines, clang -O2, the default), through NCC's 2018 IR
(``source="ncc-ir"``), or from the DeepTune-normalised sources in the CSV itself (``source="normalised"``,
which needs nothing but the CSV, but compiles only 496 of the 680 rows: the normalisation dropped helper
functions the kernels call, and :meth:`DevmapExperiment.prepare` refuses it, listing the failures).

Protocols (every model runs on the same folds):

* ``published``: ``StratifiedKFold(10, shuffle=True, random_state=204)`` over the rows, as DeepTune and
  NCC. The same kernel with other input sizes lies in the training folds, so memorising kernels pays.
* ``grouped``: ``StratifiedGroupKFold(10, shuffle=True, random_state=204)`` with the kernel
  (``benchmark``) as the group: no kernel is in both the training and the test folds.

The ``transfer`` column leaks the label (:func:`merge_transfer`): in NPB's BT, LU and SP the kernels of
one program at one input size carry one of two transfer sizes a few hundred to a few thousand bytes
apart, and on each platform every row with the larger one is a GPU row and every row with the smaller a
CPU row (254 rows on AMD, 285 on NVIDIA). ``transfer="merged"`` gives every kernel of a program and input
size the smallest of its transfer sizes, which removes the leak and nothing else.

Metrics, over all 680 out-of-fold predictions: accuracy, and the mean over rows of the speedup over the
static mapping (CPU on AMD, GPU on NVIDIA): ``runtime(static device) / runtime(predicted device)``.
Nothing a fold's test rows hold is used in fitting: vocabularies, feature columns, validation splits for
early stopping and model selection come from its training rows only.

Rows of the table (:data:`MODELS`): ``static``; ``aux`` (gradient-boosted trees on transfer and
work-group size alone); ``random`` (a random vector per kernel plus the auxiliary inputs, the control for
memorisation); ``grewe`` (Grewe et al.'s decision tree on their four features); ``lstm`` (NCC's
inst2vec LSTM, our reproduction); ``ggnn`` (ProGraML's GGNN, our reproduction); ``rgine`` (ncc's
relational GINE); ``graph-gbt`` (gradient-boosted trees on program-graph counts and the auxiliary inputs);
``ncc-trees`` (trees on the auxiliary inputs blended with the mean vote of those, trees on them plus a
code summary and trees on them plus the graph counts; the blend's weight, and whether the code summary is
the five-number graph summary alone or it and a loop summary, chosen by a cross-validation inside the
training rows).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import tarfile
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ncc.download import fetch, pinned
from ncc.errors import DatasetError, NccError
from ncc.fileio import extract_members
from ncc.paths import cache_home, data_home
from ncc.training.config import ConfigError
from ncc.training.crossval import neural_rows
from ncc.training.task import TableRequest, TableResult, Task

logger = logging.getLogger(__name__)

PLATFORMS = ("amd", "nvidia")
PLATFORM_NAMES = {"amd": "AMD Tahiti 7970", "nvidia": "NVIDIA GTX 970"}
#: The static mapping (0 CPU, 1 GPU) as DeepTune defines it: the majority oracle device of each platform.
STATIC_DEVICE = {"amd": 0, "nvidia": 1}
DEVICES = ("CPU", "GPU")
PROTOCOLS = ("published", "grouped")
SOURCES = ("original", "ncc-ir", "normalised")
#: How the transfer sizes are read: as published, or merged per program and input size (:func:`merge_transfer`).
TRANSFERS = ("published", "merged")
SEED = 204
FEATURE_COLUMNS = ("comp", "rational", "mem", "localmem", "coalesced", "atomic")

DATA_FILES = {platform: pinned("devmap", f"devmap/cgo17-{platform}.csv") for platform in PLATFORMS}

#: Published accuracy (%) and speedup per platform, with where and how each was measured.
PUBLISHED = {
    "static": ("DeepTune PACT'17", {"amd": (58.8, 1.0), "nvidia": (56.9, 1.0)}),
    "grewe": ("NCC NeurIPS'18, published protocol", {"amd": (73.38, 2.91), "nvidia": (72.94, 1.26)}),
    "deeptune": ("NCC NeurIPS'18, published protocol", {"amd": (83.68, 3.34), "nvidia": (80.29, 1.41)}),
    "lstm": ("NCC NeurIPS'18, published protocol", {"amd": (82.79, 3.42), "nvidia": (81.76, 1.39)}),
    "ggnn": ("ProGraML ICML'21, published protocol", {"amd": (86.6, None), "nvidia": (80.0, None)}),
    "ir2vec": ("IR2Vec TACO'20, published protocol", {"amd": (92.82, None), "nvidia": (89.69, None)}),
}

__all__ = ["DevmapTable", "load_devmap", "grewe_features", "devmap_folds", "devmap_score", "devmap_modules",
           "split_transfer_groups", "merge_transfer", "DevmapExperiment", "MODELS", "FAST_MODELS", "cross_validate",
           "reproduce_devmap", "DevmapTask", "PLATFORMS", "PROTOCOLS", "SOURCES", "TRANSFERS"]


# ------------------------------------------------------------------------------------------------ data

@dataclass(frozen=True)
class DevmapTable:
    """The rows of one platform, as arrays side by side.

    Attributes:
        platform: ``amd`` or ``nvidia``.
        benchmark: ``str [N]``: ``<suite>-<program>-<kernel>``, the kernel (the group in ``grouped``).
        dataset: ``str [N]``: the input size.
        suite: ``str [N]``: the benchmark suite.
        features: ``float64 [N, 6]``: Grewe et al.'s static counts (:data:`FEATURE_COLUMNS`).
        transfer: ``float64 [N]``: bytes moved between host and device.
        wgsize: ``float64 [N]``: work-group size.
        label: ``int64 [N]``: the faster device, 0 CPU, 1 GPU.
        runtime: ``float64 [N, 2]``: CPU and GPU run time.
        src: ``str [N]``: DeepTune's normalised kernel source.
    """

    platform: str
    benchmark: np.ndarray
    dataset: np.ndarray
    suite: np.ndarray
    features: np.ndarray
    transfer: np.ndarray
    wgsize: np.ndarray
    label: np.ndarray
    runtime: np.ndarray
    src: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    @property
    def aux(self) -> np.ndarray:
        """``float64 [N, 2]``: the auxiliary inputs, transfer and work-group size."""
        return np.stack([self.transfer, self.wgsize], axis=1)


def _suite(benchmark: str) -> str:
    for suite in ("amd-app-sdk-3.0", "npb-3.3", "nvidia-4.2", "parboil-0.2", "polybench-gpu", "rodinia-3.1",
                  "shoc-1.1.5"):
        if benchmark.startswith(suite):
            return suite
    return benchmark.split("-", 1)[0]


def load_devmap(platform: str, root: str | Path | None = None, transfer: str = "published") -> DevmapTable:
    """The 680 rows of a platform (``amd`` or ``nvidia``), downloaded first when absent.

    Args:
        transfer: ``published`` (the CSV's transfer sizes) or ``merged`` (see :func:`merge_transfer`).

    Raises:
        NccError: an unknown platform or transfer.
        DatasetError: the file is unreadable or lacks a column.
    """
    if platform not in PLATFORMS:
        raise NccError(f"unknown devmap platform {platform!r}; choose {' or '.join(PLATFORMS)}")
    if transfer not in TRANSFERS:
        raise NccError(f"unknown devmap transfer {transfer!r}; choose {' or '.join(TRANSFERS)}")
    path = fetch(DATA_FILES[platform], root)
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
        benchmark = np.array([r["benchmark"] for r in rows])
        table = DevmapTable(
            platform=platform, benchmark=benchmark, dataset=np.array([r["dataset"] for r in rows]),
            suite=np.array([_suite(b) for b in benchmark]),
            features=np.array([[float(r[c]) for c in FEATURE_COLUMNS] for r in rows]),
            transfer=np.array([float(r["transfer"]) for r in rows]), wgsize=np.array([float(r["wgsize"]) for r in rows]),
            label=np.array([DEVICES.index(r["oracle"]) for r in rows], dtype=np.int64),
            runtime=np.array([[float(r["runtime_cpu"]), float(r["runtime_gpu"])] for r in rows]),
            src=np.array([r["src"] for r in rows], dtype=object))
    except (KeyError, ValueError) as error:
        raise DatasetError(f"not a devmap table: {error}", str(path)) from None
    if not len(table):
        raise DatasetError("no rows", str(path))
    return merge_transfer(table) if transfer == "merged" else table


def program_of(benchmark: str) -> str:
    """The program a kernel belongs to: ``npb-3.3-BT-add`` -> ``npb-3.3-BT``."""
    return benchmark.rsplit("-", 1)[0]


def _program_groups(table: DevmapTable) -> dict[tuple[str, str], np.ndarray]:
    """(program, input size) -> its rows."""
    groups: dict[tuple[str, str], list[int]] = {}
    for row, key in enumerate(zip(map(program_of, table.benchmark), table.dataset)):
        groups.setdefault(key, []).append(row)
    return {key: np.array(rows) for key, rows in groups.items()}


def split_transfer_groups(table: DevmapTable) -> list[dict]:
    """The programs and input sizes whose kernels carry more than one transfer size.

    Returns:
        One dict per group, sorted by program and input size: ``program``, ``dataset``, and per transfer size
        (ascending) ``transfer``, ``cpu_rows`` and ``gpu_rows``: how many of its rows each device wins.
    """
    found = []
    for (program, dataset), rows in sorted(_program_groups(table).items()):
        sizes = np.unique(table.transfer[rows])
        if len(sizes) > 1:
            labels = [table.label[rows[table.transfer[rows] == size]] for size in sizes]
            found.append({"program": program, "dataset": dataset, "transfer": sizes.tolist(),
                          "cpu_rows": [int((l == 0).sum()) for l in labels],
                          "gpu_rows": [int((l == 1).sum()) for l in labels]})
    return found


def merge_transfer(table: DevmapTable) -> DevmapTable:
    """The table with every kernel of one program and input size given the smallest of their transfer sizes.

    A program's kernels share its buffers, so its transfer size at an input size is one number. In the
    published CSVs the kernels of NPB's BT, LU and SP at each input size carry two, 240 to 3,080 bytes
    apart (under 0.02 %), and on each platform the larger one marks exactly the rows whose faster
    device is the GPU (:func:`split_transfer_groups`): trees that split on the exact size read the label
    from it. Nothing else changes.
    """
    transfer = table.transfer.copy()
    for rows in _program_groups(table).values():
        transfer[rows] = transfer[rows].min()
    return replace(table, transfer=transfer)


def grewe_features(table: DevmapTable) -> np.ndarray:
    """Grewe et al.'s four features, ``float64 [N, 4]``, as DeepTune computes them.

    F1 = transfer / (comp + mem), F2 = coalesced / mem, F3 = localmem / mem * wgsize, F4 = comp / mem
    (a zero denominator gives 0).
    """
    comp, mem, localmem, coalesced = (table.features[:, FEATURE_COLUMNS.index(c)]
                                      for c in ("comp", "mem", "localmem", "coalesced"))

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros_like(a), where=b != 0)

    return np.stack([ratio(table.transfer, comp + mem), ratio(coalesced, mem), ratio(localmem, mem) * table.wgsize,
                     ratio(comp, mem)], axis=1)


def devmap_folds(table: DevmapTable, protocol: str, n_splits: int = 10,
                 seed: int = SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, test)`` row indices of each fold of a protocol (see the module docstring)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if protocol == "published":
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(table)), table.label))
    if protocol == "grouped":
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(table)), table.label, groups=table.benchmark))
    raise NccError(f"unknown devmap protocol {protocol!r}; choose {' or '.join(PROTOCOLS)}")


def devmap_score(table: DevmapTable, rows: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """Accuracy (%) and mean speedup over the static mapping of predictions (0 CPU, 1 GPU) for rows."""
    rows = np.asarray(rows)
    predictions = np.asarray(predictions, dtype=np.int64)
    runtime = table.runtime[rows]
    static = runtime[:, STATIC_DEVICE[table.platform]]
    chosen = runtime[np.arange(len(rows)), predictions]
    return {"accuracy": float(100 * np.mean(predictions == table.label[rows])),
            "speedup": float(np.mean(static / chosen))}


def _ncc_ir_folder() -> Path:
    """NCC's 2018 IR, unpacked once into the cache (atomically: a temporary folder renamed into place)."""
    target = cache_home() / "devmap" / "ncc-ir"
    if target.is_dir():
        return target
    archive = data_home() / "devmap" / "ncc" / "kernels_ir.tar.gz"
    if not archive.is_file():
        raise DatasetError("NCC's devmap IR is not in $NCC_DATA (it has no public origin to download from)",
                           str(archive))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        with tarfile.open(archive) as stream:
            extract_members(stream, scratch)
        try:
            Path(scratch, "kernels_ir").rename(target)
        except OSError:
            if not target.is_dir():  # else another process finished first
                raise
    return target


def devmap_modules(table: DevmapTable, source: str = "original", opt_level: int | str = 2,
                   workers: int | None = None, clang: Any = None, progress: bool = True) -> tuple[list, dict[str, str]]:
    """One IR module per row (None where the kernel failed) and ``{row key: reason}`` for the failures.

    Args:
        table: the rows.
        source: ``original``, ``ncc-ir`` or ``normalised`` (see the module docstring).
        opt_level: clang's optimisation level for sources.
        workers, clang, progress: as for :func:`ncc.frontend.compile_batch`.
    """
    from ncc.frontend.kernel_defines import devmap_kernel_flags, devmap_source_fix
    from ncc.frontend.kernels import KernelSource, kernel_modules

    if source not in SOURCES:
        raise NccError(f"unknown devmap source {source!r}; choose one of {', '.join(SOURCES)}")
    keys = [f"{b}|{d}" for b, d in zip(table.benchmark, table.dataset)]
    kernels: dict[str, KernelSource] = {}
    if source == "ncc-ir":
        folder = _ncc_ir_folder()
        for key, benchmark, dataset in zip(keys, table.benchmark, table.dataset):
            path = folder / f"{benchmark}_{dataset}.ll"
            kernels[key] = KernelSource(key, path if path.is_file() else folder / f"{benchmark}.ll")
    elif source == "original":
        folder = data_home() / "devmap" / "ncc" / "kernels_cl"
        if not folder.is_dir():
            raise DatasetError("the original kernel sources are not in $NCC_DATA; use source='normalised'",
                               str(folder))
        for key, benchmark, dataset in zip(keys, table.benchmark, table.dataset):
            path = folder / f"{benchmark}_{dataset}.cl"
            path = path if path.is_file() else folder / f"{benchmark}.cl"
            text = path.read_text(errors="replace") if path.is_file() else None
            fixed = devmap_source_fix(benchmark, text) if text is not None else None
            kernels[key] = KernelSource(key, path, tuple(devmap_kernel_flags(benchmark, dataset)),
                                        fixed if fixed != text else None)
    else:
        folder = cache_home() / "devmap" / "normalised"
        folder.mkdir(parents=True, exist_ok=True)
        from ncc.fileio import atomic_write

        for key, benchmark, text in zip(keys, table.benchmark, table.src):
            path = folder / f"{benchmark}.cl"
            if not path.is_file() or path.read_text() != text:
                atomic_write(path, text)
            kernels[key] = KernelSource(key, path)
    modules, failures = kernel_modules(list(kernels.values()), opt_level=opt_level, workers=workers, clang=clang,
                                       progress=progress, desc=f"kernels {table.platform}")
    return [modules.get(key) for key in keys], failures


# ---------------------------------------------------------------------------------------------- models

@dataclass
class DevmapExperiment:
    """One platform's rows with their graphs, and the settings every model of the table shares.

    Attributes:
        table: the rows.
        graphs: one ProgramGraph per row (rows of the same kernel and flags share one object).
        modules: the IR module of each row.
        output: where fold runs and predictions are kept.
        epochs: training epochs of the neural models (None: each model's own, :data:`NEURAL_EPOCHS`).
        source: where the graphs came from (for the table).
        transfer: how the table's transfer sizes were read (:data:`TRANSFERS`).
        settings: extra trainer settings for the neural models (``load_config`` overrides).
        model_kwargs: per model name, constructor arguments.
        progress: show progress bars.
    """

    table: DevmapTable
    graphs: list
    modules: list
    output: Path
    epochs: int | None = None
    source: str = "original"
    transfer: str = "published"
    settings: dict = field(default_factory=dict)
    model_kwargs: dict = field(default_factory=dict)
    progress: bool = True
    _embeddings: Any = None
    _code_summaries: Any = None

    @classmethod
    def prepare(cls, platform: str, output: str | Path, source: str = "original", opt_level: int | str = 2,
                workers: int | None = None, clang: Any = None, progress: bool = True, transfer: str = "published",
                **kwargs: Any) -> "DevmapExperiment":
        """Load a platform's rows, compile (cached) and build one graph per kernel.

        Raises:
            DatasetError: a kernel failed to compile (each is named, with its reason).
        """
        from ncc.graph.features import unique_graphs

        table = load_devmap(platform, transfer=transfer)
        modules, failures = devmap_modules(table, source, opt_level, workers, clang, progress)
        if failures:
            listed = "; ".join(f"{key}: {reason}" for key, reason in sorted(failures.items())[:5])
            raise DatasetError(f"{len(failures)} devmap kernels did not compile ({listed})")
        return cls(table, unique_graphs(modules), modules, Path(output), source=source, transfer=transfer,
                   progress=progress, **kwargs)

    def epochs_for(self, model: str) -> int:
        """The training epochs of a neural model: ``epochs`` where set, else the model's own."""
        return NEURAL_EPOCHS[model] if self.epochs is None else self.epochs

    # -- inputs shared by several models --------------------------------------------------------
    def aux_log(self) -> np.ndarray:
        """``float32 [N, 2]``: log(1 + transfer), log(1 + wgsize), the neural models' auxiliary inputs."""
        return np.log1p(self.table.aux).astype(np.float32)

    def inner_folds(self, train: np.ndarray, protocol: str, seed: int,
                    n_splits: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
        """A training fold's own cross-validation: (fit, held-out) positions in ``train``, grouped by
        kernel under ``grouped``."""
        from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

        labels = self.table.label[train]
        if protocol == "grouped":
            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            return list(splitter.split(train, labels, groups=self.table.benchmark[train]))
        return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(train, labels))

    def validation_split(self, train: np.ndarray, protocol: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """A training fold cut into (fit, validation) rows, grouped by kernel under ``grouped``."""
        fit, val = self.inner_folds(train, protocol, seed, n_splits=9)[0]
        return train[fit], train[val]

    def code_summaries(self) -> tuple[np.ndarray, np.ndarray]:
        """The graph summary and the loop summary of every row (see :mod:`ncc.graph.features`), once, cached."""
        from ncc.graph.features import graph_summary, loop_summary

        if self._code_summaries is None:
            self._code_summaries = graph_summary(self.graphs), loop_summary(self.graphs)
        return self._code_summaries

    def neural_fold(self, model: str, train: np.ndarray, test: np.ndarray, protocol: str, seed: int,
                    folder: Path) -> np.ndarray:
        """One fold of a neural row: validation rows from the training rows, aux inputs, two classes."""
        from ncc.training.crossval import neural_fold

        fit, val = self.validation_split(train, protocol, seed)
        kwargs = dict(self.model_kwargs.get(model, {}))
        if model == "lstm":
            # A CPU LSTM steps through the longest sequence of a batch: the first 256 statements keep
            # an epoch within minutes (the median kernel has ~80).
            kwargs.setdefault("max_length", 256)
        return neural_fold(model, self, fit, val, test, self.table.label, self.aux_log(), self.table.benchmark,
                           num_classes=2, task="devmap", batch_size=32, seed=seed, folder=folder,
                           model_kwargs=kwargs, epochs=self.epochs_for(model))

    def embeddings(self):
        """inst2vec embeddings trained (without labels) on this platform's kernels, once, cached."""
        from ncc.embeddings.encoders import module_embeddings

        if self._embeddings is None:
            self._embeddings = module_embeddings(self.modules, self.output / f"inst2vec-{self.source}", self.progress)
        return self._embeddings


Predictor = Callable[[DevmapExperiment, np.ndarray, np.ndarray, str, int, Path], np.ndarray]


def _static(experiment: DevmapExperiment, train, test, protocol, seed, folder) -> np.ndarray:
    return np.full(len(test), STATIC_DEVICE[experiment.table.platform], dtype=np.int64)


def _gpu_probability(features: np.ndarray, experiment: DevmapExperiment, train, test, seed) -> np.ndarray:
    from ncc.training.crossval import gradient_boosting

    model = gradient_boosting(seed).fit(features[train], experiment.table.label[train])
    return model.predict_proba(features[test])[:, 1]


def _trees(features: np.ndarray, experiment: DevmapExperiment, train, test, seed) -> np.ndarray:
    return (_gpu_probability(features, experiment, train, test, seed) > 0.5).astype(np.int64)


def _aux(experiment: DevmapExperiment, train, test, protocol, seed, folder) -> np.ndarray:
    return _trees(experiment.table.aux, experiment, train, test, seed)


def _random(experiment: DevmapExperiment, train, test, protocol, seed, folder) -> np.ndarray:
    vectors = np.stack([np.random.default_rng([seed, int(hashlib.sha256(b.encode()).hexdigest()[:8], 16)]).normal(size=8)
                        for b in experiment.table.benchmark])
    return _trees(np.concatenate([vectors, experiment.table.aux], axis=1), experiment, train, test, seed)


def _grewe(experiment: DevmapExperiment, train, test, protocol, seed, folder) -> np.ndarray:
    from sklearn.tree import DecisionTreeClassifier

    features = grewe_features(experiment.table)
    model = DecisionTreeClassifier(random_state=SEED, splitter="best", criterion="entropy")
    return model.fit(features[train], experiment.table.label[train]).predict(features[test])


def _graph_counts(experiment: DevmapExperiment, train) -> np.ndarray:
    from ncc.graph.features import GraphFeatures

    columns = GraphFeatures().fit(experiment.graphs[i] for i in train)
    return np.concatenate([columns.transform(experiment.graphs), experiment.table.aux], axis=1)


def _graph_gbt(experiment: DevmapExperiment, train, test, protocol, seed, folder) -> np.ndarray:
    return _trees(_graph_counts(experiment, train), experiment, train, test, seed)


def _tree_probabilities(experiment: DevmapExperiment, code: tuple[np.ndarray, np.ndarray], train, test,
                        seed) -> np.ndarray:
    """``[3, len(test)]`` GPU probabilities: trees on aux alone, and two means of three tree models: aux
    alone, aux + a code summary, aux + graph counts, where the summary is the graph summary (``code[0]``)
    in the first mean and the graph and loop summaries (``code[0]``, ``code[1]``) in the second."""
    aux = experiment.table.aux
    summary, loops = code
    alone, counts, with_summary, with_loops = (
        _gpu_probability(features, experiment, train, test, seed)
        for features in (aux, _graph_counts(experiment, train), np.concatenate([aux, summary], axis=1),
                         np.concatenate([aux, summary, loops], axis=1)))
    return np.stack([alone, (alone + with_summary + counts) / 3, (alone + with_loops + counts) / 3])


#: Weights of the aux-alone trees against a three-model mean that ``ncc-trees`` chooses from.
BLEND_WEIGHTS = (0.0, 1 / 3, 2 / 3, 1.0)
#: (row of :func:`_tree_probabilities` blended with aux alone, weight of aux alone), in order of preference.
BLENDS = tuple((mean, weight) for mean in (1, 2) for weight in BLEND_WEIGHTS)


def _blend(probabilities: np.ndarray, mean: int, weight: float) -> np.ndarray:
    """GPU probabilities of ``weight`` x trees on aux alone (row 0 of :func:`_tree_probabilities`) plus
    ``1 - weight`` x one of its three-model means (row ``mean``)."""
    return weight * probabilities[0] + (1 - weight) * probabilities[mean]


def choose_blend(probabilities: np.ndarray, labels: np.ndarray) -> tuple[int, float]:
    """The choice of :data:`BLENDS` with the lowest Brier score on held-out rows (the first on a tie).

    The squared error of the probabilities ranks choices by more than the rows they flip, so it picks
    less by chance than accuracy on a few hundred rows does (3 seeds: grouped NVIDIA 87.99 -> 88.73 %).
    """
    errors = [np.mean((_blend(probabilities, *choice) - labels) ** 2) for choice in BLENDS]
    return BLENDS[int(np.argmin(errors))]


def _graph_ensemble(experiment: DevmapExperiment, train, test, protocol, seed, folder) -> np.ndarray:
    """A blend of trees on aux alone and a mean of three tree models (aux; aux + a code summary; aux +
    graph counts), where the blend's weight and the summary (the graph summary, or it and the loop summary)
    are chosen by a 5-fold cross-validation inside the training rows (the protocol's own splitting), by
    the Brier score of :func:`choose_blend`.

    Trees on the auxiliary inputs alone generalise best to unseen kernels on AMD, the code features help
    on NVIDIA and under the published protocol; the inner cross-validation finds how far to trust each.
    """
    code = experiment.code_summaries()
    inner = np.zeros((3, len(train)))
    for fit, held in experiment.inner_folds(train, protocol, seed):
        inner[:, held] = _tree_probabilities(experiment, code, train[fit], train[held], seed)
    choice = choose_blend(inner, experiment.table.label[train])
    return (_blend(_tree_probabilities(experiment, code, train, test, seed), *choice) > 0.5).astype(np.int64)


#: Row name -> (what it reads, predictor).
MODELS: dict[str, tuple[str, Predictor]] = {
    "static": ("nothing", _static),
    "aux": ("transfer, wgsize", _aux),
    "random": ("random kernel vector + aux", _random),
    "grewe": ("Grewe et al.'s 4 features", _grewe),
    "graph-gbt": ("graph counts + aux", _graph_gbt),
    "ncc-trees": ("aux; graph (and loop) summary + aux; graph counts + aux; blended", _graph_ensemble),
    **neural_rows({"lstm": "inst2vec statements + aux", "ggnn": "program graph + aux",
                   "rgine": "program graph + aux"}),
}
FAST_MODELS = ("static", "aux", "random", "grewe", "graph-gbt", "ncc-trees")
#: A neural row's training epochs unless a run sets them. The GGNN's validation accuracy still climbs
#: after 40 epochs (published protocol, AMD, seed 0: best epoch 34-38 of 40 in eight folds, 41-77 of 80;
#: 82.50 % at 40 epochs, 86.47 % at 80).
NEURAL_EPOCHS = {"lstm": 40, "ggnn": 80, "rgine": 80}
#: A row's revision, part of its fold folder's name, so folds kept by an earlier predictor are not reused.
REVISIONS = {"ncc-trees": 5, "ggnn": 2, "rgine": 2}


def cross_validate(experiment: DevmapExperiment, model: str, protocol: str, seed: int = 0,
                   folds: Sequence[int] | None = None) -> np.ndarray:
    """Out-of-fold predictions of a model for every row (``-1`` for rows of folds not run).

    Finished folds are kept in ``<output>/<protocol>/<platform>/<model>-seed<k>-<settings digest>/fold-<i>.npy``
    and reused by a run with the same settings.
    """
    from ncc.training.crossval import out_of_fold, run_name

    if model not in MODELS:
        raise NccError(f"unknown devmap model {model!r}; choose one of {', '.join(MODELS)}")
    predictor = MODELS[model][1]
    table = experiment.table
    folder = experiment.output / protocol / table.platform / run_name(model, seed, {
        "source": experiment.source, "settings": experiment.settings,
        **({"transfer": experiment.transfer} if experiment.transfer != "published" else {}),
        "model_kwargs": experiment.model_kwargs.get(model, {}),
        **({"epochs": experiment.epochs_for(model)} if model in NEURAL_EPOCHS else {}),
        **({"revision": REVISIONS[model]} if model in REVISIONS else {})})
    return out_of_fold(devmap_folds(table, protocol), len(table), folder,
                       lambda index, train, test, run: predictor(experiment, train, test, protocol, seed, run),
                       folds, label=f"devmap {protocol} {table.platform} {model} seed {seed}")


def reproduce_devmap(output: str | Path, models: Sequence[str] = FAST_MODELS,
                     protocols: Sequence[str] = PROTOCOLS, platforms: Sequence[str] = PLATFORMS,
                     seeds: Sequence[int] = (0,), source: str = "original", epochs: int | None = None,
                     folds: Sequence[int] | None = None, workers: int | None = None, clang: Any = None,
                     progress: bool = True, transfer: str = "published") -> list[dict]:
    """Run every (protocol, platform, model, seed) and write ``devmap.csv`` / ``devmap.md`` to ``output``.

    Args:
        models: the rows (default: :data:`FAST_MODELS`, those that finish on a CPU in minutes, as the CLI's).
        workers: compile processes, and with more than one, the runs are spread over that many
            processes (see :func:`ncc.training.crossval.run_in_processes`); the table is the same.
        transfer: ``published`` or ``merged`` transfer sizes (:func:`merge_transfer`).

    Returns:
        One row per (protocol, model): accuracy and speedup per platform (mean and standard deviation
        over the seeds), and the published figures beside them.
    """
    from tqdm import tqdm

    from ncc.training.crossval import NEURAL_MODELS, count_folds, run_in_processes, write_table

    counts: dict[tuple[str, str], int] = {}

    def fold_count(table: DevmapTable, protocol: str) -> int:
        if (table.platform, protocol) not in counts:
            counts[table.platform, protocol] = len(folds) if folds is not None else len(devmap_folds(table, protocol))
        return counts[table.platform, protocol]

    output = Path(output)
    for name in models:
        if name not in MODELS:
            raise NccError(f"unknown devmap model {name!r}; choose one of {', '.join(MODELS)}")
    experiments = {platform: DevmapExperiment.prepare(platform, output, source=source, workers=workers, clang=clang,
                                                      progress=progress, epochs=epochs, transfer=transfer)
                   for platform in platforms}
    runs = [(p, pl, m, s) for p in protocols for m in models for pl in platforms
            for s in (seeds if m not in ("static",) else seeds[:1])]
    if workers and workers > 1:
        # The slow (neural) runs first, so that the last process to finish is not the one that began last,
        # and seed by seed, so that a run stopped early has whole rows of the first seeds.
        parallel = sorted(runs, key=lambda run: (run[2] not in NEURAL_MODELS, run[3]))
        if "lstm" in models:
            for experiment in experiments.values():
                experiment.embeddings()  # trained once here, not by several processes at the same time
        run_in_processes(cross_validate, [(experiments[pl], m, p, s, folds) for p, pl, m, s in parallel], workers,
                         [f"{p} {pl} {m} seed {s}" for p, pl, m, s in parallel], progress, desc="devmap folds",
                         folds=[fold_count(experiments[pl].table, p) for p, pl, m, s in parallel])
    scores: dict[tuple[str, str, str], list[dict]] = {}
    # After the processes, the runs only read their folds back: a bar only where they are computed here.
    serial = progress and not (workers and workers > 1)
    bar = tqdm(total=sum(fold_count(experiments[pl].table, p) for p, pl, m, s in runs), desc="devmap folds",
               unit="fold", disable=not serial)
    with bar, count_folds(lambda: bar.update(1)):
        for protocol, platform, model, seed in runs:
            bar.set_postfix_str(f"{protocol} {platform} {model} seed {seed}")
            experiment = experiments[platform]
            predictions = cross_validate(experiment, model, protocol, seed, folds)
            rows = np.flatnonzero(predictions >= 0)
            scores.setdefault((protocol, model, platform), []).append(
                devmap_score(experiment.table, rows, predictions[rows]))
    table_rows = []
    for protocol in protocols:
        for model in models:
            row = {"protocol": protocol, "model": model, "reads": MODELS[model][0],
                   "graphs": source if model in ("graph-gbt", "ncc-trees", "lstm", "ggnn", "rgine") else ""}
            for platform in platforms:
                values = scores[(protocol, model, platform)]
                for metric in ("accuracy", "speedup"):
                    numbers = np.array([v[metric] for v in values])
                    row[f"{platform}_{metric}"] = float(numbers.mean())
                    row[f"{platform}_{metric}_std"] = float(numbers.std()) if len(numbers) > 1 else float("nan")
                row["seeds"] = len(values)
            if protocol == "published" and model in PUBLISHED:
                row["published"] = _published_text(model, platforms)
            table_rows.append(row)
        oracle = {"protocol": protocol, "model": "oracle", "reads": "the measured run times", "seeds": 1}
        for platform in platforms:
            table = experiments[platform].table
            oracle.update({f"{platform}_{m}": v for m, v in devmap_score(table, np.arange(len(table)),
                                                                         table.label).items()})
        table_rows.append(oracle)
    columns = ["protocol", "model", "reads", "graphs"] + [f"{p}_{m}{s}" for p in platforms
                                                         for m in ("accuracy", "speedup") for s in ("", "_std")] \
        + ["seeds", "published"]
    write_table(table_rows, columns, output / "devmap")
    return table_rows


def published_without_rows(models: Sequence[str], platforms: Sequence[str] = PLATFORMS) -> str | None:
    """A line of the published figures whose rows a table of ``models`` lacks (they stand beside their rows)."""
    missing = [model for model in PUBLISHED if model not in models]
    if not missing:
        return None
    runnable = [model for model in missing if model in MODELS]
    return ("published figures of rows not in this table" + (f" ({', '.join(runnable)}: --models all runs them)"
                                                              if runnable else "") + ": "
            + "; ".join(f"{model} {_published_text(model, platforms)}" for model in missing))


def _published_text(model: str, platforms: Sequence[str]) -> str:
    where, figures = PUBLISHED[model]
    parts = []
    for platform in platforms:
        accuracy, speedup = figures[platform]
        parts.append(f"{platform} {accuracy} %" + (f" / {speedup}x" if speedup is not None else ""))
    return "; ".join(parts) + f" ({where})"


# ------------------------------------------------------------------------------------ the trainer's task

@dataclass(frozen=True)
class DevmapOptions:
    """Options of ``ncc train devmap`` (the ``[task]`` table of a configuration).

    Attributes:
        platform: ``amd`` or ``nvidia``.
        protocol: ``published`` or ``grouped``.
        source: ``original``, ``ncc-ir`` or ``normalised``.
        transfer: ``published`` or ``merged`` transfer sizes (:func:`merge_transfer`).
        fold: the fold to train (0-9), or -1 for all ten, one after the other.
    """

    platform: str = "amd"
    protocol: str = "grouped"
    source: str = "original"
    transfer: str = "published"
    fold: int = -1

    def check(self, prefix: str = "task.", source: str | None = None) -> None:
        for key, choices in (("platform", PLATFORMS), ("protocol", PROTOCOLS), ("source", SOURCES),
                             ("transfer", TRANSFERS)):
            if getattr(self, key) not in choices:
                raise ConfigError(f"{prefix}{key}: must be one of {', '.join(choices)}, got {getattr(self, key)!r}",
                                  source)
        if not -1 <= self.fold <= 9:
            raise ConfigError(f"{prefix}fold: must be -1 (all) or 0-9, got {self.fold}", source)


class DevmapTask(Task):
    """CPU-or-GPU classification of OpenCL kernels: ``ncc train devmap`` runs the folds of one platform,
    ``ncc reproduce devmap`` the table."""

    name = "devmap"
    description = "heterogeneous device mapping (CPU or GPU), 10-fold cross-validation"
    options_class = DevmapOptions
    level = "graph"
    metric_names = ("accuracy", "f1", "loss")
    monitor = "accuracy"
    rows = {name: reads for name, (reads, _) in MODELS.items()}
    fast_rows = FAST_MODELS
    platforms = PLATFORMS
    protocols = PROTOCOLS
    table_options = ("source", "transfer")

    def train(self, config) -> dict:
        """Cross-validate ``config.model.name`` on the configured platform, protocol and folds.

        Returns:
            ``{"accuracy", "speedup", "rows", "output"}``.
        """
        from ncc.training.crossval import fold_settings

        options = self.check_options(config.task_options)
        settings = fold_settings(config, "devmap", MODELS)
        output = Path(config.output or f"runs/devmap-{config.model.name}")
        experiment = DevmapExperiment.prepare(options.platform, output, source=options.source,
                                              transfer=options.transfer, workers=config.data.workers or None,
                                              progress=config.progress, epochs=config.epochs, settings=settings,
                                              model_kwargs={config.model.name: dict(config.model.kwargs)})
        folds = None if options.fold < 0 else [options.fold]
        predictions = cross_validate(experiment, config.model.name, options.protocol, config.seed, folds)
        rows = np.flatnonzero(predictions >= 0)
        score = devmap_score(experiment.table, rows, predictions[rows])
        return {**score, "rows": int(len(rows)), "output": str(output)}

    def reproduce(self, output: Path, request: TableRequest) -> TableResult:
        """The device-mapping table (:func:`reproduce_devmap`) of the requested rows, protocols and platforms."""
        self.check_request(request)
        transfer = request.options.get("transfer", "published")
        rows = reproduce_devmap(output, models=request.rows or FAST_MODELS, protocols=request.protocols or PROTOCOLS,
                                platforms=request.platforms or PLATFORMS, seeds=request.seeds,
                                source=request.options.get("source", "original"), epochs=request.epochs,
                                folds=request.folds, workers=request.workers, clang=request.clang,
                                progress=request.progress, transfer=transfer)
        notes = ["transfer sizes as published: a few hundred bytes tell the GPU rows of NPB's BT, LU and SP from "
                 "their CPU rows; --transfer merged removes that"] if transfer == "published" else []
        if "published" in (request.protocols or PROTOCOLS):
            line = published_without_rows(request.rows or FAST_MODELS, request.platforms or PLATFORMS)
            notes += [line] if line else []
        return TableResult(rows, output / "devmap.md", output / "devmap.csv", notes)
