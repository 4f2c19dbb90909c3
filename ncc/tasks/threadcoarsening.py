"""OpenCL thread-coarsening factor prediction (Magni et al., PACT 2014; DeepTune, PACT 2017; NCC).

Data: ``threadcoarsening/pact-2014-{oracles,runtimes}.csv`` (17 kernels; run times on 4 GPUs at the
coarsening factors 1, 2, 4, 8, 16, 32, 4-6 factors measured per kernel, 89 (kernel, factor) rows), read
from ``$NCC_DATA`` or downloaded from DeepTune's repository with the sha256 pinned in
``datasets/threadcoarsening/`` (its README says what the data set is and how it was checked). Platforms, by the CSV's
names: ``cypress`` (AMD Radeon HD 5900), ``tahiti`` (AMD Tahiti 7970), ``fermi`` (NVIDIA GTX 480) and
``kepler`` (NVIDIA Tesla K20c).

The label of a kernel on a platform is the index, among :data:`FACTORS`, of the factor with the lowest
measured run time (equal to the oracle file's ``cf_*``; the tests check it). The two empty run-time cells
(nbody at factor 16 on Fermi and Kepler) are "not measured".

Kernels become program graphs through ncc's frontend (``source="original"``: NCC's original sources in
``threadcoarsening/kernels_cl``, which include the ``macros.h`` beside them, clang -O2, the default),
through NCC's 2018 IR (``source="ncc-ir"``, ``threadcoarsening/kernels_ir``), or from the
DeepTune-normalised sources of the runtimes CSV (``source="normalised"``, which needs nothing but the CSV;
mt and mtLocal normalise to one text and so share one graph; the normaliser broke two texts, which
:func:`normalised_source_fix` repairs).

Protocol: leave one kernel out, 17 folds. The held-out kernel is absent from the training set on every
platform: each model is trained per platform on the other 16 kernels' labels of that platform only
(nothing is pooled across platforms). Vocabularies, feature columns and validation splits come from a
fold's training kernels only.

Metrics per platform, over the 17 out-of-fold predictions: the mean over kernels of the speedup over no
coarsening, ``runtime(factor 1) / runtime(predicted factor)``, and accuracy (% of kernels whose predicted
factor is the best one). A predicted factor that was not measured for that kernel (e.g. 32 for most
kernels) counts as factor 1, speedup 1.0: the compiler would not coarsen that far.

Rows of the table (:data:`MODELS`): ``one`` (never coarsen); ``common`` (the training kernels' most
common best factor on that platform, ties to the smaller factor); ``magni`` (Magni et al.'s 7 PCA
features of the uncoarsened kernel, the factor-1 row, with a decision tree; DeepTune's reimplementation
was a cascade of binary neural networks over every factor's row, which 16 training kernels do not
support better than a tree); ``graph-gbt`` (gradient-boosted trees on program-graph counts); ``ncc-knn``
(the nearest training kernels in program-graph space vote with their measured speedups; the features and
the number of neighbours chosen by leave-one-out inside the training kernels); ``lstm``
(NCC's inst2vec LSTM), ``ggnn`` (ProGraML's GGNN), ``rgine`` (ncc's relational GINE), through the trainer
with 6 classes and no auxiliary inputs.

Neural rows: 16 training graphs are too few to spare a validation split, so by default
(``val_kernels=0``) the validation set *is* the training set, and the epoch kept is the one with the best
training accuracy: the graph models train every epoch, the LSTM stops once the training accuracy has not
improved for ``max(5, epochs // 4)`` epochs. ``val_kernels=k`` instead holds out ``k`` training kernels
(drawn by the seed) for validation. The held-out kernel never takes part in either. 30 epochs by default.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ncc.download import fetch, pinned
from ncc.errors import DatasetError, NccError
from ncc.paths import cache_home, data_home
from ncc.training.config import ConfigError
from ncc.training.crossval import neural_rows
from ncc.training.task import TableRequest, TableResult, Task

logger = logging.getLogger(__name__)

PLATFORMS = ("cypress", "tahiti", "fermi", "kepler")
#: Platform -> the name of its columns in the CSVs.
CSV_NAMES = {"cypress": "Cypress", "tahiti": "Tahiti", "fermi": "Fermi", "kepler": "Kepler"}
PLATFORM_NAMES = {"cypress": "AMD Radeon HD 5900", "tahiti": "AMD Tahiti 7970", "fermi": "NVIDIA GTX 480",
                  "kepler": "NVIDIA Tesla K20c"}
FACTORS = (1, 2, 4, 8, 16, 32)
SOURCES = ("original", "ncc-ir", "normalised")
PCA_COLUMNS = tuple(f"PCA{i}" for i in range(1, 8))
SEED = 204
NUM_KERNELS = 17

DATA_FILES = {name: pinned("threadcoarsening", f"threadcoarsening/pact-2014-{name}.csv")
              for name in ("oracles", "runtimes")}

#: Published speedup per platform, with where it was published. ``lstm`` is NCC's inst2vec model.
PUBLISHED = {
    "oracle": ("DeepTune PACT'17", {"cypress": 1.50, "tahiti": 1.40, "fermi": 1.34, "kepler": 1.18}),
    "magni": ("Magni et al., as reported by DeepTune PACT'17 and NCC NeurIPS'18",
              {"cypress": 1.21, "tahiti": 1.01, "fermi": 0.86, "kepler": 0.94}),
    "deeptune": ("DeepTune PACT'17", {"cypress": 1.10, "tahiti": 1.05, "fermi": 1.10, "kepler": 0.99}),
    "deeptune-tl": ("DeepTune-TL PACT'17", {"cypress": 1.17, "tahiti": 1.23, "fermi": 1.14, "kepler": 0.93}),
    "lstm": ("NCC NeurIPS'18", {"cypress": 1.25, "tahiti": 1.07, "fermi": 1.02, "kepler": 1.03}),
    "ir2vec": ("IR2Vec TACO'20; its folds kept the held-out kernel's rows of the other GPUs in training",
               {"cypress": 1.24, "tahiti": 1.30, "fermi": 1.26, "kepler": 1.16}),
}
#: Published rows with no model of ours: printed with their published figures only.
PUBLISHED_ONLY = ("deeptune", "deeptune-tl", "ir2vec")

__all__ = ["CoarseningTable", "load_threadcoarsening", "coarsening_folds", "coarsening_score",
           "coarsening_modules", "CoarseningExperiment", "MODELS", "FAST_MODELS", "cross_validate",
           "reproduce_threadcoarsening", "ThreadCoarseningTask", "PLATFORMS", "SOURCES", "FACTORS"]


# ------------------------------------------------------------------------------------------------ data

@dataclass(frozen=True)
class CoarseningTable:
    """The 17 kernels, their run times and features, as arrays side by side (kernels sorted by name).

    Attributes:
        kernels: ``str [K]``.
        runtime: ``float64 [K, 4, 6]``: run time per kernel, platform (:data:`PLATFORMS` order) and factor
            (:data:`FACTORS` order); NaN where not measured.
        pca: ``float64 [K, 6, 7]``: Magni et al.'s PCA features per kernel and factor; NaN where no row.
        src: ``object [K]``: DeepTune's normalised kernel source.
        oracle_factor: ``int64 [K, 4]``: the oracle file's best factor per kernel and platform.
    """

    kernels: np.ndarray
    runtime: np.ndarray
    pca: np.ndarray
    src: np.ndarray
    oracle_factor: np.ndarray

    def __len__(self) -> int:
        return len(self.kernels)

    def runtimes(self, platform: str) -> np.ndarray:
        """``float64 [K, 6]``: a platform's run times (NaN where not measured)."""
        return self.runtime[:, _platform_index(platform)]

    def labels(self, platform: str) -> np.ndarray:
        """``int64 [K]``: the index among :data:`FACTORS` of each kernel's fastest factor on a platform."""
        runtimes = self.runtimes(platform)
        return np.nanargmin(np.where(np.isnan(runtimes), np.inf, runtimes), axis=1).astype(np.int64)

    def oracle_labels(self, platform: str) -> np.ndarray:
        """``int64 [K]``: the oracle file's best factors as indices among :data:`FACTORS`."""
        return np.array([FACTORS.index(int(f)) for f in self.oracle_factor[:, _platform_index(platform)]],
                        dtype=np.int64)

    def speedups(self, platform: str, predictions: np.ndarray, kernels: np.ndarray | None = None) -> np.ndarray:
        """``float64``: runtime(factor 1) / runtime(predicted factor) per kernel; 1.0 for an unmeasured factor."""
        kernels = np.arange(len(self)) if kernels is None else np.asarray(kernels)
        runtimes = self.runtimes(platform)[kernels]
        chosen = runtimes[np.arange(len(kernels)), np.asarray(predictions, dtype=np.int64)]
        return np.where(np.isnan(chosen), 1.0, runtimes[:, 0] / chosen)

    def oracle_speedup(self, platform: str) -> float:
        """The mean speedup of always choosing the best factor."""
        return float(np.mean(self.speedups(platform, self.labels(platform))))


def _platform_index(platform: str) -> int:
    if platform not in PLATFORMS:
        raise NccError(f"unknown threadcoarsening platform {platform!r}; choose one of {', '.join(PLATFORMS)}")
    return PLATFORMS.index(platform)


def _number(text: str) -> float:
    return float(text) if text.strip() else float("nan")


def load_threadcoarsening(root: str | Path | None = None) -> CoarseningTable:
    """The 17 kernels of both CSVs, downloaded first when absent.

    Raises:
        DatasetError: a file is unreadable, lacks a column, or the two files name other kernels.
    """
    paths = {name: fetch(item, root) for name, item in DATA_FILES.items()}
    try:
        with open(paths["oracles"], newline="", encoding="utf-8") as stream:
            oracles = {r["kernel"]: r for r in csv.DictReader(stream)}
        with open(paths["runtimes"], newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
        kernels = sorted(oracles)
        if sorted({r["kernel"] for r in rows}) != kernels:
            raise DatasetError("the runtimes and oracles files name other kernels", str(paths["runtimes"]))
        index = {k: i for i, k in enumerate(kernels)}
        runtime = np.full((len(kernels), len(PLATFORMS), len(FACTORS)), np.nan)
        pca = np.full((len(kernels), len(FACTORS), len(PCA_COLUMNS)), np.nan)
        src = np.empty(len(kernels), dtype=object)
        for row in rows:
            k, f = index[row["kernel"]], FACTORS.index(int(float(row["cf"])))
            runtime[k, :, f] = [_number(row[f"runtime_{CSV_NAMES[p]}"]) for p in PLATFORMS]
            pca[k, f] = [float(row[c]) for c in PCA_COLUMNS]
            src[k] = row["src"]
        oracle_factor = np.array([[int(float(oracles[k][f"cf_{CSV_NAMES[p]}"])) for p in PLATFORMS] for k in kernels],
                                 dtype=np.int64)
    except (KeyError, ValueError) as error:
        raise DatasetError(f"not a thread-coarsening table: {error}", str(paths["runtimes"])) from None
    if not kernels or np.isnan(runtime[:, :, 0]).any():
        raise DatasetError("no kernels, or a kernel without its factor-1 run time", str(paths["runtimes"]))
    return CoarseningTable(np.array(kernels), runtime, pca, src, oracle_factor)


def coarsening_folds(table: CoarseningTable) -> list[tuple[np.ndarray, np.ndarray]]:
    """Leave one kernel out: ``(train, test)`` kernel indices, fold ``i`` holding out kernel ``i``."""
    everything = np.arange(len(table))
    return [(np.delete(everything, i), np.array([i])) for i in everything]


def coarsening_score(table: CoarseningTable, platform: str, kernels: np.ndarray,
                     predictions: np.ndarray) -> dict[str, float]:
    """Mean speedup over factor 1 and accuracy (%) of predicted factor indices for kernels on a platform."""
    kernels = np.asarray(kernels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    return {"speedup": float(np.mean(table.speedups(platform, predictions, kernels))),
            "accuracy": float(100 * np.mean(predictions == table.labels(platform)[kernels]))}


_VECTOR_LITERAL = re.compile(r"\(float4\)\(([^()]*)\)")
_FUSED_COMPONENT = re.compile(r"\b([a-z])([xyzw])\b")


def normalised_source_fix(kernel: str, text: str) -> str:
    """Repair the two DeepTune-normalised sources that do not compile as shipped (the rest are unchanged).

    * ``blackscholes``: the normaliser dropped the declaration ``float CND(float d);`` (the original
      declares it and leaves it undefined too) and renamed the calls to ``A``, the kernel's own new name.
      The calls are renamed ``B`` and ``float B(float a);`` is declared again.
    * ``mt`` / ``mtLocal`` (one text): vector components lost their dot (``(float4)(rx, sx, tx, ux)``
      for ``(v0.x, v1.x, ...)``); the dot is put back inside ``(float4)(...)`` literals.
    """
    if kernel == "blackscholes" and re.search(r"\bA\(\w+\)", text) and "float B(" not in text:
        return "float B(float a);\n" + re.sub(r"\bA\((\w+)\)", r"B(\1)", text)
    if kernel in ("mt", "mtLocal"):
        return _VECTOR_LITERAL.sub(lambda m: "(float4)(" + _FUSED_COMPONENT.sub(r"\1.\2", m.group(1)) + ")", text)
    return text


def coarsening_modules(table: CoarseningTable, source: str = "original", opt_level: int | str = 2,
                       workers: int | None = None, clang: Any = None, progress: bool = True
                       ) -> tuple[list, dict[str, str]]:
    """One IR module per kernel (None where it failed) and ``{kernel: reason}`` for the failures.

    Args:
        table: the kernels.
        source: ``original``, ``ncc-ir`` or ``normalised`` (see the module docstring).
        opt_level: clang's optimisation level for sources.
        workers, clang, progress: as for :func:`ncc.frontend.compile_batch`.
    """
    from ncc.frontend.kernel_defines import threadcoarsening_kernel_flags
    from ncc.frontend.kernels import KernelSource, kernel_modules

    if source not in SOURCES:
        raise NccError(f"unknown threadcoarsening source {source!r}; choose one of {', '.join(SOURCES)}")
    kernels: list[KernelSource] = []
    if source in ("original", "ncc-ir"):
        folder = data_home() / "threadcoarsening" / ("kernels_cl" if source == "original" else "kernels_ir")
        if not folder.is_dir():
            raise DatasetError("NCC's thread-coarsening kernels are not in $NCC_DATA; use source='normalised'",
                               str(folder))
        for kernel in table.kernels.tolist():
            if source == "original":
                kernels.append(KernelSource(kernel, folder / f"{kernel}.cl",
                                            tuple(threadcoarsening_kernel_flags(kernel))))
            else:
                kernels.append(KernelSource(kernel, folder / f"{kernel}.ll"))
    else:
        from ncc.fileio import atomic_write

        folder = cache_home() / "threadcoarsening" / "normalised"
        folder.mkdir(parents=True, exist_ok=True)
        for kernel, text in zip(table.kernels.tolist(), table.src):
            text = normalised_source_fix(kernel, text)
            # Named by content: kernels with one normalised text (mt, mtLocal) share one file and one module.
            path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.cl"
            if not path.is_file() or path.read_text() != text:
                atomic_write(path, text)
            kernels.append(KernelSource(kernel, path))
    missing = {k.key: f"no such file {k.path}" for k in kernels if not k.path.is_file()}
    modules, failures = kernel_modules([k for k in kernels if k.key not in missing], opt_level=opt_level,
                                       workers=workers, clang=clang, progress=progress)
    return [modules.get(kernel) for kernel in table.kernels.tolist()], {**missing, **failures}


# ---------------------------------------------------------------------------------------------- models

@dataclass
class CoarseningExperiment:
    """The 17 kernels with their graphs, and the settings every model of the table shares.

    The graphs do not depend on the platform, so one experiment serves all four.

    Attributes:
        table: the kernels.
        graphs: one ProgramGraph per kernel (kernels with the same module share one object).
        modules: the IR module of each kernel.
        output: where fold runs and predictions are kept.
        epochs: training epochs of the neural models.
        val_kernels: training kernels held out for early stopping (0: validate on the training set).
        source: where the graphs came from (for the table).
        settings: extra trainer settings for the neural models (``load_config`` overrides).
        model_kwargs: per model name, constructor arguments.
        progress: show progress bars.
    """

    table: CoarseningTable
    graphs: list
    modules: list
    output: Path
    epochs: int = 30
    val_kernels: int = 0
    source: str = "original"
    settings: dict = field(default_factory=dict)
    model_kwargs: dict = field(default_factory=dict)
    progress: bool = True
    _embeddings: Any = None

    @classmethod
    def prepare(cls, output: str | Path, source: str = "original", opt_level: int | str = 2,
                workers: int | None = None, clang: Any = None, progress: bool = True, **kwargs: Any
                ) -> "CoarseningExperiment":
        """Load the kernels, compile them (cached) and build one graph per module.

        Raises:
            DatasetError: a kernel failed to compile (each is named, with its reason).
        """

        table = load_threadcoarsening()
        modules, failures = coarsening_modules(table, source, opt_level, workers, clang, progress)
        if failures:
            listed = "; ".join(f"{key}: {reason}" for key, reason in sorted(failures.items())[:5])
            raise DatasetError(f"{len(failures)} thread-coarsening kernels did not compile ({listed})")
        from ncc.graph.features import unique_graphs

        return cls(table, unique_graphs(modules), modules, Path(output), source=source, progress=progress,
                   **kwargs)

    def validation_split(self, train: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """A fold's training kernels as (fit, validation); both are ``train`` when ``val_kernels`` is 0."""
        train = np.asarray(train)
        if self.val_kernels <= 0:
            return train, train
        if self.val_kernels >= len(train):
            raise NccError(f"val_kernels must be below the {len(train)} training kernels, got {self.val_kernels}")
        val = np.sort(np.random.default_rng([SEED, seed]).choice(train, self.val_kernels, replace=False))
        return np.setdiff1d(train, val), val

    def neural_fold(self, model: str, train: np.ndarray, test: np.ndarray, platform: str, seed: int,
                    folder: Path) -> np.ndarray:
        """One fold of a neural row on a platform: no auxiliary inputs, one class per factor."""
        from ncc.training.crossval import neural_fold

        fit, val = self.validation_split(train, seed)
        return neural_fold(model, self, fit, val, test, self.table.labels(platform), None, self.table.kernels,
                           num_classes=len(FACTORS), task="threadcoarsening", batch_size=8, seed=seed,
                           folder=folder, model_kwargs=self.model_kwargs.get(model, {}))

    def embeddings(self):
        """inst2vec embeddings trained (without labels) on the 17 kernels, once, cached."""
        from ncc.embeddings.encoders import module_embeddings

        if self._embeddings is None:
            self._embeddings = module_embeddings(self.modules, self.output / f"inst2vec-{self.source}", self.progress)
        return self._embeddings


#: ``(experiment, train kernels, test kernels, platform, seed, run folder) -> factor indices of the test kernels``.
Predictor = Callable[[CoarseningExperiment, np.ndarray, np.ndarray, str, int, Path], np.ndarray]


def _one(experiment: CoarseningExperiment, train, test, platform, seed, folder) -> np.ndarray:
    return np.zeros(len(test), dtype=np.int64)


def _common(experiment: CoarseningExperiment, train, test, platform, seed, folder) -> np.ndarray:
    counts = np.bincount(experiment.table.labels(platform)[train], minlength=len(FACTORS))
    return np.full(len(test), int(np.argmax(counts)), dtype=np.int64)  # argmax: the first, smaller, of ties


def _classify(model: Any, features: np.ndarray, labels: np.ndarray, train, test) -> np.ndarray:
    if len(np.unique(labels[train])) == 1:
        return np.full(len(test), labels[train][0], dtype=np.int64)
    return model.fit(features[train], labels[train]).predict(features[test])


def _magni(experiment: CoarseningExperiment, train, test, platform, seed, folder) -> np.ndarray:
    from sklearn.tree import DecisionTreeClassifier

    features = experiment.table.pca[:, 0]  # the uncoarsened kernel's row
    model = DecisionTreeClassifier(random_state=seed, criterion="entropy")
    return _classify(model, features, experiment.table.labels(platform), train, test)


def _graph_gbt(experiment: CoarseningExperiment, train, test, platform, seed, folder) -> np.ndarray:
    from ncc.graph.features import GraphFeatures
    from ncc.training.crossval import gradient_boosting

    graphs = experiment.graphs
    features = GraphFeatures().fit(graphs[i] for i in train).transform(graphs)
    return _classify(gradient_boosting(seed), features, experiment.table.labels(platform), train, test)


def _log_speedups(table: CoarseningTable, platform: str) -> np.ndarray:
    """``float64 [K, 6]``: log(runtime(1) / runtime(f)), 0 for an unmeasured factor (it counts as factor 1)."""
    runtimes = table.runtimes(platform)
    return np.nan_to_num(np.log(runtimes[:, :1] / runtimes), nan=0.0)


def _neighbour_vote(features: np.ndarray, log_speedups: np.ndarray, train: np.ndarray, target: int, k: int) -> int:
    """The factor whose mean log speedup over the ``k`` training kernels nearest ``target`` is best (1 if none gains)."""
    scale = features[train].std(axis=0) + 1e-9
    distance = np.linalg.norm((features[train] - features[target]) / scale, axis=1)
    vote = log_speedups[train[np.argsort(distance, kind="stable")[:k]]].mean(axis=0)
    return int(np.argmax(vote)) if vote.max() > 0 else 0


def _ncc_knn(experiment: CoarseningExperiment, train, test, platform, seed, folder) -> np.ndarray:
    """Nearest training kernels in program-graph space vote with their measured speedups.

    The feature set (a five-number graph summary, or the counts of every node text and edge flow, both
    log-scaled and standardised on the training kernels) and ``k`` (1-7) are chosen by leave-one-out over
    the training kernels alone, for the best mean speedup there; the held-out kernel takes no part.
    """
    from ncc.graph.features import GraphFeatures, graph_summary

    graphs = experiment.graphs
    log_speedups = _log_speedups(experiment.table, platform)
    feature_sets = (np.log1p(graph_summary(graphs)),
                    np.log1p(GraphFeatures().fit(graphs[i] for i in train).transform(graphs)))
    best, best_score = (0, 1), -np.inf
    for which, features in enumerate(feature_sets):
        for k in range(1, 8):
            inner = [log_speedups[j, _neighbour_vote(features, log_speedups, np.delete(train, i), j, k)]
                     for i, j in enumerate(train)]
            score = float(np.mean(np.exp(inner)))
            if score > best_score + 1e-12:
                best, best_score = (which, k), score
    return np.array([_neighbour_vote(feature_sets[best[0]], log_speedups, np.asarray(train), int(target), best[1])
                     for target in test], dtype=np.int64)


#: Row name -> (what it reads, predictor).
MODELS: dict[str, tuple[str, Predictor]] = {
    "one": ("nothing (never coarsen)", _one),
    "common": ("training labels only", _common),
    "magni": ("Magni et al.'s 7 PCA features", _magni),
    "graph-gbt": ("graph counts", _graph_gbt),
    "ncc-knn": ("graph summary or counts, nearest kernels", _ncc_knn),
    **neural_rows({"lstm": "inst2vec statements", "ggnn": "program graph", "rgine": "program graph"}),
}
FAST_MODELS = ("one", "common", "magni", "graph-gbt", "ncc-knn")
#: A row's revision, part of its fold folder's name, so folds kept by an earlier predictor are not reused.
REVISIONS = {"ggnn": 2, "rgine": 2}
#: Rows whose predictions do not depend on the seed (run once).
_SEEDLESS = ("one", "common", "ncc-knn")
_GRAPH_MODELS = ("graph-gbt", "ncc-knn", "lstm", "ggnn", "rgine")


def cross_validate(experiment: CoarseningExperiment, model: str, platform: str, seed: int = 0,
                   folds: Sequence[int] | None = None) -> np.ndarray:
    """Out-of-fold factor indices of a model for every kernel on a platform (``-1`` for folds not run).

    Finished folds are kept in ``<output>/<platform>/<model>-seed<k>-<settings digest>/fold-<i>.npy`` and
    reused by a run with the same settings; a neural fold's run folder is ``.../run-<i>``.
    """
    from ncc.training.crossval import out_of_fold, run_name

    if model not in MODELS:
        raise NccError(f"unknown threadcoarsening model {model!r}; choose one of {', '.join(MODELS)}")
    _platform_index(platform)
    predictor = MODELS[model][1]
    table = experiment.table
    folder = experiment.output / platform / run_name(model, seed, {
        "source": experiment.source, "epochs": experiment.epochs, "val_kernels": experiment.val_kernels,
        "settings": experiment.settings, "model_kwargs": experiment.model_kwargs.get(model, {}),
        **({"revision": REVISIONS[model]} if model in REVISIONS else {})})
    return out_of_fold(coarsening_folds(table), len(table), folder,
                       lambda index, train, test, run: predictor(experiment, train, test, platform, seed, run),
                       folds, label=f"threadcoarsening {platform} {model} seed {seed}")


def reproduce_threadcoarsening(output: str | Path, models: Sequence[str] = FAST_MODELS,
                               platforms: Sequence[str] = PLATFORMS, seeds: Sequence[int] = (0,),
                               source: str = "original", epochs: int = 30, folds: Sequence[int] | None = None,
                               workers: int | None = None, clang: Any = None, progress: bool = True,
                               **kwargs: Any) -> list[dict]:
    """Run every (platform, model, seed) and write ``threadcoarsening.csv`` / ``.md`` to ``output``.

    Finished folds are reused (see :func:`cross_validate`), so a stopped run resumes where it stopped.

    Args:
        models: the rows (default: :data:`FAST_MODELS`, those that finish on a CPU in minutes, as the CLI's).
        workers: compile processes, and with more than one, the runs are spread over that many
            processes (see :func:`ncc.training.crossval.run_in_processes`); the table is the same.
        kwargs: further :class:`CoarseningExperiment` fields (``val_kernels``, ``settings``, ...).

    Returns:
        One row per model: speedup and accuracy per platform (mean and standard deviation over the seeds),
        then the oracle row and the published-only rows, with the published figures beside them.
    """
    from tqdm import tqdm

    from ncc.training.crossval import NEURAL_MODELS, count_folds, run_in_processes, write_table

    output = Path(output)
    for name in models:
        if name not in MODELS:
            raise NccError(f"unknown threadcoarsening model {name!r}; choose one of {', '.join(MODELS)}")
    for platform in platforms:
        _platform_index(platform)
    if not seeds:
        raise NccError("no seeds given")
    experiment = CoarseningExperiment.prepare(output, source=source, workers=workers, clang=clang, progress=progress,
                                              epochs=epochs, **kwargs)
    table = experiment.table
    fold_count = len(folds) if folds is not None else len(coarsening_folds(table))
    runs = [(m, p, s) for m in models for p in platforms for s in (seeds[:1] if m in _SEEDLESS else seeds)]
    if workers and workers > 1:
        parallel = sorted(runs, key=lambda run: (run[0] not in NEURAL_MODELS, run[2]))
        if "lstm" in models:
            experiment.embeddings()  # trained once here, not by several processes at the same time
        run_in_processes(cross_validate, [(experiment, m, p, s, folds) for m, p, s in parallel], workers,
                         [f"{p} {m} seed {s}" for m, p, s in parallel], progress, desc="threadcoarsening folds",
                         folds=[fold_count] * len(parallel))
    scores: dict[tuple[str, str], list[dict]] = {}
    # After the processes, the runs only read their folds back: a bar only where they are computed here.
    serial = progress and not (workers and workers > 1)
    bar = tqdm(total=fold_count * len(runs), desc="threadcoarsening folds", unit="fold", disable=not serial)
    with bar, count_folds(lambda: bar.update(1)):
        for model, platform, seed in runs:
            bar.set_postfix_str(f"{platform} {model} seed {seed}")
            predictions = cross_validate(experiment, model, platform, seed, folds)
            rows = np.flatnonzero(predictions >= 0)
            scores.setdefault((model, platform), []).append(coarsening_score(table, platform, rows,
                                                                             predictions[rows]))

    def published(name: str) -> str:
        if name not in PUBLISHED:
            return ""
        where, numbers = PUBLISHED[name]
        return " / ".join(f"{numbers[p]:.2f}" for p in platforms) + f" ({where})"

    table_rows = []
    for model in models:
        row = {"model": model, "reads": MODELS[model][0], "graphs": source if model in _GRAPH_MODELS else "",
               "published": published(model)}
        for platform in platforms:
            values = scores[(model, platform)]
            for metric in ("speedup", "accuracy"):
                numbers = np.array([v[metric] for v in values])
                row[f"{platform}_{metric}"] = float(numbers.mean())
                row[f"{platform}_{metric}_std"] = float(numbers.std()) if len(numbers) > 1 else float("nan")
            row["seeds"] = len(values)
        table_rows.append(row)
    oracle = {"model": "oracle", "reads": "the measured run times", "graphs": "", "published": published("oracle"),
              "seeds": 1}
    for platform in platforms:
        oracle.update({f"{platform}_speedup": table.oracle_speedup(platform), f"{platform}_accuracy": 100.0})
    table_rows.append(oracle)
    table_rows += [{"model": name, "reads": "(published only)", "published": published(name)} for name in PUBLISHED_ONLY]
    columns = ["model", "reads", "graphs"] + [f"{p}_{m}{s}" for p in platforms for m in ("speedup", "accuracy")
                                              for s in ("", "_std")] + ["seeds", "published"]
    write_table(table_rows, columns, output / "threadcoarsening")
    return table_rows


# ------------------------------------------------------------------------------------ the trainer's task

@dataclass(frozen=True)
class ThreadCoarseningOptions:
    """Options of ``ncc train threadcoarsening`` (the ``[task]`` table of a configuration).

    Attributes:
        platform: ``cypress``, ``tahiti``, ``fermi`` or ``kepler``.
        source: ``original``, ``ncc-ir`` or ``normalised``.
        fold: the fold (held-out kernel, 0-16 in name order) to train, or -1 for all 17, one after the other.
        val_kernels: training kernels held out for early stopping (0: validate on the training set).
    """

    platform: str = "cypress"
    source: str = "original"
    fold: int = -1
    val_kernels: int = 0

    def check(self, prefix: str = "task.", source: str | None = None) -> None:
        for key, choices in (("platform", PLATFORMS), ("source", SOURCES)):
            if getattr(self, key) not in choices:
                raise ConfigError(f"{prefix}{key}: must be one of {', '.join(choices)}, got {getattr(self, key)!r}",
                                  source)
        if not -1 <= self.fold < NUM_KERNELS:
            raise ConfigError(f"{prefix}fold: must be -1 (all) or 0-{NUM_KERNELS - 1}, got {self.fold}", source)
        if not 0 <= self.val_kernels < NUM_KERNELS - 1:
            raise ConfigError(f"{prefix}val_kernels: must be 0-{NUM_KERNELS - 2}, got {self.val_kernels}", source)


class ThreadCoarseningTask(Task):
    """Coarsening-factor classification of OpenCL kernels; ``ncc train threadcoarsening`` runs one platform's folds."""

    name = "threadcoarsening"
    description = "thread-coarsening factor (1-32) per GPU, leave-one-kernel-out over 17 kernels"
    options_class = ThreadCoarseningOptions
    level = "graph"
    metric_names = ("accuracy", "f1", "loss")
    monitor = "accuracy"

    rows = {name: reads for name, (reads, _) in MODELS.items()}
    fast_rows = FAST_MODELS
    platforms = PLATFORMS
    table_options = ("source",)

    def train(self, config) -> dict:
        """Cross-validate ``config.model.name`` on the configured platform and folds.

        Returns:
            ``{"speedup", "accuracy", "kernels", "output"}``.
        """
        from ncc.training.crossval import fold_settings

        options = self.check_options(config.task_options)
        settings = fold_settings(config, "threadcoarsening", MODELS)
        output = Path(config.output or f"runs/threadcoarsening-{config.model.name}")
        epochs = {} if config.epochs is None else {"epochs": config.epochs}
        experiment = CoarseningExperiment.prepare(output, source=options.source, workers=config.data.workers or None,
                                                  progress=config.progress, settings=settings,
                                                  val_kernels=options.val_kernels, **epochs,
                                                  model_kwargs={config.model.name: dict(config.model.kwargs)})
        folds = None if options.fold < 0 else [options.fold]
        predictions = cross_validate(experiment, config.model.name, options.platform, config.seed, folds)
        rows = np.flatnonzero(predictions >= 0)
        score = coarsening_score(experiment.table, options.platform, rows, predictions[rows])
        return {**score, "kernels": int(len(rows)), "output": str(output)}

    def reproduce(self, output: Path, request: TableRequest) -> TableResult:
        """The thread-coarsening table (:func:`reproduce_threadcoarsening`) of the requested rows and platforms."""
        self.check_request(request)
        epochs = {} if request.epochs is None else {"epochs": request.epochs}
        rows = reproduce_threadcoarsening(output, models=request.rows or FAST_MODELS,
                                          platforms=request.platforms or PLATFORMS, seeds=request.seeds,
                                          source=request.options.get("source", "original"), folds=request.folds,
                                          workers=request.workers, clang=request.clang, progress=request.progress,
                                          **epochs)
        return TableResult(rows, output / "threadcoarsening.md", output / "threadcoarsening.csv")
