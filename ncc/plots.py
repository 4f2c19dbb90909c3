"""Figures for the tables (device mapping, thread coarsening, POJ-104 classification), as the notebooks show them.

Every function builds a :class:`matplotlib.figure.Figure` on its own Agg canvas (no pyplot, no global
figure state, any backend), returns it, and with ``path`` also saves it as a PNG, atomically.

Predictions are what the tasks' ``cross_validate`` return: per devmap row the device (0 CPU, 1 GPU), per
thread-coarsening kernel the index among ``FACTORS`` of the predicted factor, and ``-1`` where the fold was
not run. Rows or kernels at ``-1`` are left out of a model's bars and of its confusion matrix. The scores
come from the tasks' own ``devmap_score`` / ``coarsening_score``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ncc.tasks.devmap import DevmapTable
    from ncc.tasks.threadcoarsening import CoarseningTable

__all__ = ["devmap_speedup_by_suite", "devmap_confusion", "coarsening_speedup_by_kernel", "coarsening_confusion",
           "learning_curves", "most_confused", "classifyapp_confusion", "embedding_map", "best_model",
           "dataflow_f1_by_steps", "dataflow_graph"]

#: Rows that are references rather than models (never the "best model").
REFERENCE_ROWS = ("static", "oracle", "one")


# ------------------------------------------------------------------------------------------- helpers

def _figure(width: float, height: float) -> "Figure":
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: "Figure", path: str | os.PathLike | None) -> "Figure":
    if path is not None:
        from ncc.fileio import atomic_write

        atomic_write(Path(path), lambda stream: figure.savefig(stream, format="png", dpi=120), "wb")
    return figure


def _width(groups: Sequence[str], series: Mapping[str, Any]) -> float:
    """Figure width (inches) for grouped bars: about 0.15 inch per bar, 6 to 14 inches."""
    return float(min(14.0, max(6.0, 0.15 * len(groups) * (len(series) + 1))))


def _grouped_bars(axes, groups: Sequence[str], heights: Mapping[str, Sequence[float]]) -> None:
    """One bar container per series (in order), bars side by side within each group; NaN heights stay empty."""
    positions = np.arange(len(groups))
    width = 0.8 / max(1, len(heights))
    for index, (name, values) in enumerate(heights.items()):
        values = np.asarray(values, dtype=float)
        axes.bar(positions + (index - (len(heights) - 1) / 2) * width, np.nan_to_num(values, nan=0.0), width,
                 label=name, color="0.25" if name == "oracle" else None)
    axes.set_xticks(positions, groups, rotation=30, ha="right")
    axes.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    axes.legend(fontsize="small", ncols=min(4, len(heights)))


def _confusion(axes, matrix: np.ndarray, names: Sequence[str], title: str, truth: str = "best (measured)") -> None:
    axes.imshow(matrix, cmap="Blues", vmin=0)
    threshold = matrix.max() / 2 if matrix.size and matrix.max() else 0.5
    for (true, predicted), count in np.ndenumerate(matrix):
        axes.text(predicted, true, str(int(count)), ha="center", va="center",
                  color="white" if count > threshold else "black")
    axes.set_xticks(range(len(names)), names)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("predicted")
    axes.set_ylabel(truth)
    axes.set_title(title)


def _predicted(predictions: Mapping[str, Any], model: str) -> np.ndarray:
    if model not in predictions:
        raise KeyError(f"no predictions of model {model!r}; have {', '.join(predictions)}")
    return np.asarray(predictions[model], dtype=np.int64)


# ----------------------------------------------------------------------------------------------- devmap

def devmap_speedup_by_suite(table: "DevmapTable", predictions: Mapping[str, Any],
                            path: str | os.PathLike | None = None) -> "Figure":
    """Mean speedup over the static mapping per benchmark suite (and over all rows), per model and the oracle.

    One bar container per model in ``predictions`` order, then ``oracle``; groups are the suites in name
    order, then ``all``. A model is scored on its predicted rows (``!= -1``), the oracle on the rows any
    model predicted.
    """
    from ncc.tasks.devmap import PLATFORM_NAMES, devmap_score

    suites = sorted(set(table.suite.tolist()))
    groups = suites + ["all"]
    masks = [table.suite == suite for suite in suites] + [np.ones(len(table), dtype=bool)]
    covered = np.zeros(len(table), dtype=bool)
    series: dict[str, list[float]] = {}

    def heights(predicted: np.ndarray, scored: np.ndarray) -> list[float]:
        values = []
        for mask in masks:
            rows = np.flatnonzero(mask & scored)
            values.append(devmap_score(table, rows, predicted[rows])["speedup"] if len(rows) else math.nan)
        return values

    for model in predictions:
        predicted = _predicted(predictions, model)
        covered |= predicted >= 0
        series[model] = heights(predicted, predicted >= 0)
    series["oracle"] = heights(table.label, covered)
    figure = _figure(_width(groups, series), 4.0)
    axes = figure.add_subplot()
    _grouped_bars(axes, groups, series)
    axes.set_yscale("log")  # suites' speedups range from below 1 to over 20
    axes.yaxis.set_major_formatter("{x:g}")
    axes.set_ylabel("speedup over the static mapping (log)")
    axes.set_title(f"Device mapping, {PLATFORM_NAMES.get(table.platform, table.platform)}: speedup per suite")
    return _save(figure, path)


def devmap_confusion(table: "DevmapTable", predictions: Mapping[str, Any], model: str,
                     path: str | os.PathLike | None = None) -> "Figure":
    """The 2x2 confusion matrix (rows: the faster device, columns: the predicted one) of one model, with counts."""
    from ncc.tasks.devmap import DEVICES, PLATFORM_NAMES, devmap_score

    predicted = _predicted(predictions, model)
    rows = np.flatnonzero(predicted >= 0)
    matrix = np.zeros((len(DEVICES), len(DEVICES)), dtype=np.int64)
    np.add.at(matrix, (table.label[rows], predicted[rows]), 1)
    accuracy = devmap_score(table, rows, predicted[rows])["accuracy"] if len(rows) else math.nan
    figure = _figure(4.0, 3.6)
    _confusion(figure.add_subplot(), matrix, DEVICES,
               f"{model}, {PLATFORM_NAMES.get(table.platform, table.platform)}\n"
               f"{len(rows)} rows, accuracy {accuracy:.1f}%")
    return _save(figure, path)


# ------------------------------------------------------------------------------------ thread coarsening

def coarsening_speedup_by_kernel(table: "CoarseningTable", platform: str, predictions: Mapping[str, Any],
                                 path: str | os.PathLike | None = None) -> "Figure":
    """Speedup over factor 1 per kernel (and the mean), per model and the oracle, on one platform.

    ``predictions``: model -> factor index per kernel (``-1``: not predicted). Groups are the kernels some
    model predicted, then ``mean``; one bar container per model in order, then ``oracle``.
    """
    from ncc.tasks.threadcoarsening import PLATFORM_NAMES, coarsening_score

    arrays = {model: _predicted(predictions, model) for model in predictions}
    covered = np.zeros(len(table), dtype=bool)
    for predicted in arrays.values():
        covered |= predicted >= 0
    kernels = np.flatnonzero(covered)
    arrays["oracle"] = np.where(covered, table.labels(platform), -1)
    series: dict[str, list[float]] = {}
    for model, predicted in arrays.items():
        values = [coarsening_score(table, platform, [k], [predicted[k]])["speedup"] if predicted[k] >= 0 else math.nan
                  for k in kernels]
        scored = np.flatnonzero(predicted >= 0)
        values.append(coarsening_score(table, platform, scored, predicted[scored])["speedup"] if len(scored)
                      else math.nan)
        series[model] = values
    groups = table.kernels[kernels].tolist() + ["mean"]
    figure = _figure(_width(groups, series), 4.0)
    axes = figure.add_subplot()
    _grouped_bars(axes, groups, series)
    axes.set_ylabel("speedup over no coarsening")
    axes.set_title(f"Thread coarsening, {PLATFORM_NAMES.get(platform, platform)}: speedup per kernel")
    return _save(figure, path)


def coarsening_confusion(table: "CoarseningTable", platform: str, predictions: Mapping[str, Any], model: str,
                         path: str | os.PathLike | None = None) -> "Figure":
    """The 6x6 confusion matrix over the factors 1-32 (rows: the best factor, columns: the predicted one)."""
    from ncc.tasks.threadcoarsening import FACTORS, PLATFORM_NAMES, coarsening_score

    predicted = _predicted(predictions, model)
    kernels = np.flatnonzero(predicted >= 0)
    matrix = np.zeros((len(FACTORS), len(FACTORS)), dtype=np.int64)
    np.add.at(matrix, (table.labels(platform)[kernels], predicted[kernels]), 1)
    score = coarsening_score(table, platform, kernels, predicted[kernels]) if len(kernels) else {
        "accuracy": math.nan, "speedup": math.nan}
    figure = _figure(4.8, 4.2)
    _confusion(figure.add_subplot(), matrix, [str(f) for f in FACTORS],
               f"{model}, {PLATFORM_NAMES.get(platform, platform)}\n{len(kernels)} kernels, accuracy "
               f"{score['accuracy']:.0f}%, speedup {score['speedup']:.2f}")
    return _save(figure, path)


# ------------------------------------------------------------------------------------------ classifyapp

def learning_curves(reports: Mapping[str, Sequence[Mapping[str, Any]]],
                    path: str | os.PathLike | None = None) -> "Figure":
    """Training loss and validation accuracy per epoch, one line per run, from the trainer's ``report.json``.

    Args:
        reports: model name -> its runs' reports (one per seed).
    """
    figure = _figure(11, 4)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for index, (name, runs) in enumerate(reports.items()):
        for seed, report in enumerate(runs):
            history = report["history"]
            epochs = [h["epoch"] for h in history]
            label = name if seed == 0 else None
            loss_axes.plot(epochs, [h["train_loss"] for h in history], color=f"C{index}", label=label)
            accuracy_axes.plot(epochs, [100 * h["val"]["accuracy"] for h in history], color=f"C{index}",
                               label=label)
    loss_axes.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy (%)", title="validation accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.legend(fontsize="small")
        axes.grid(alpha=0.3)
    return _save(figure, path)


def most_confused(predicted: np.ndarray, labels: np.ndarray, count: int = 8) -> list[int]:
    """The ``count`` classes that take part in the most errors (as truth or as prediction), most first."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    wrong = predicted != labels
    errors = np.bincount(np.concatenate([labels[wrong], predicted[wrong]]),
                         minlength=int(max(labels.max(), predicted.max())) + 1)
    order = np.argsort(-errors, kind="stable")
    return [int(c) for c in order[:count]]


def classifyapp_confusion(predicted: np.ndarray, labels: np.ndarray, count: int = 8, title: str = "",
                          path: str | os.PathLike | None = None) -> "Figure":
    """Confusion counts among the most-confused classes (see :func:`most_confused`), named by POJ-104 label."""
    classes = most_confused(predicted, labels, count)
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    where = {c: i for i, c in enumerate(classes)}
    for truth, guess in zip(np.asarray(labels), np.asarray(predicted)):
        if truth in where and guess in where:
            matrix[where[truth], where[guess]] += 1
    figure = _figure(1.0 + 0.6 * len(classes), 1.0 + 0.6 * len(classes))
    accuracy = 100 * float(np.mean(np.asarray(predicted) == np.asarray(labels)))
    _confusion(figure.subplots(), matrix, [str(c + 1) for c in classes],
               title or f"most-confused classes (accuracy {accuracy:.1f} %)", truth="true class")
    return _save(figure, path)


def embedding_map(features: np.ndarray, labels: np.ndarray, classes: int = 12, seed: int = 0, title: str = "",
                  path: str | os.PathLike | None = None) -> "Figure":
    """A t-SNE map of graph representations, coloured by class, for the ``classes`` most frequent classes."""
    from sklearn.manifold import TSNE

    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    kept = np.argsort(-np.bincount(labels), kind="stable")[:classes]
    rows = np.flatnonzero(np.isin(labels, kept))
    if len(rows) < 3:
        raise ValueError(f"t-SNE needs at least 3 points, got {len(rows)}")
    points = TSNE(n_components=2, perplexity=min(30.0, (len(rows) - 1) / 3), init="pca",
                  random_state=seed).fit_transform(features[rows])
    figure = _figure(7, 6)
    axes = figure.subplots()
    colours = {int(c): f"C{i % 10}" for i, c in enumerate(sorted(kept))}
    markers = "os^v"
    for i, c in enumerate(sorted(kept)):
        mine = labels[rows] == c
        axes.scatter(points[mine, 0], points[mine, 1], s=10, color=colours[int(c)], marker=markers[i // 10 % 4],
                     label=str(int(c) + 1))
    axes.set(xticks=[], yticks=[], title=title or f"t-SNE of graph representations ({len(kept)} classes)")
    axes.legend(title="class", fontsize="x-small", ncols=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(figure, path)


# ------------------------------------------------------------------------------------------ the tables

def best_model(rows: Sequence[Mapping[str, Any]], column: str, **match: Any) -> str:
    """The model of the row (among those equal to ``match``, references such as ``static`` left out) with the
    highest ``column``.

    Raises:
        ValueError: no row matches or has a number in ``column``.
    """
    candidates = [row for row in rows if row.get("model") not in REFERENCE_ROWS
                  and all(row.get(key) == value for key, value in match.items())
                  and isinstance(row.get(column), (int, float)) and not math.isnan(row[column])]
    if not candidates:
        raise ValueError(f"no row with a number in {column!r} matches {match}")
    return str(max(candidates, key=lambda row: row[column])["model"])


def dataflow_f1_by_steps(curves: Mapping[str, Sequence[Mapping[str, Any]]], trained_up_to: int | None = None,
                         title: str = "", path: str | os.PathLike | None = None) -> "Figure":
    """F1 against the steps each example's analysis needs, one line per model.

    Args:
        curves: model name -> rows of :func:`ncc.tasks.dataflow.f1_by_steps` (``steps``, ``examples``, ``f1``).
        trained_up_to: the training examples' longest (a dashed line: to its right lies the ``long`` split).
    """
    figure = _figure(8, 4)
    axes = figure.subplots()
    for index, (name, rows) in enumerate(curves.items()):
        axes.plot([r["steps"] for r in rows], [r["f1"] for r in rows], marker="o", markersize=3, color=f"C{index}",
                  label=name)
    if trained_up_to is not None:
        axes.axvline(trained_up_to + 0.5, color="grey", linestyle="--", label="longest training example")
    axes.set(xlabel="steps the analysis needs", ylabel="F1", ylim=(-0.02, 1.02), title=title)
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def dataflow_graph(graph: Any, root: int, labels: np.ndarray, predicted: np.ndarray, title: str = "",
                   path: str | os.PathLike | None = None) -> "Figure":
    """A program graph with a data-flow query: its root (star), the nodes labelled 1 (filled) and 0 (open),
    the model's mistakes (red), and the nodes the analysis does not score (small, grey).

    Instructions are laid out in rows by their control-flow distance from the root's function entry
    (unreachable ones last), variables and constants beside the instructions they meet. Control edges are
    solid, data edges dotted, call edges dashed.

    Args:
        graph: a :class:`~ncc.graph.ProgramGraph`.
        labels, predicted: per node, 0 or 1 (``predicted`` -1 where not scored).
    """
    import networkx as nx

    edges = [tuple(edge) for edge in graph.edge_index.T.tolist()]
    control = nx.DiGraph([e for e, flow in zip(edges, graph.edge_flow) if flow == 0])
    control.add_nodes_from(range(graph.num_nodes))
    instructions = np.flatnonzero(graph.node_type == 0)
    functions = graph.node_function[instructions]
    entries = [int(instructions[functions == f][0]) for f in np.unique(functions)]
    depth = {node: float(d) for node, d in nx.multi_source_dijkstra_path_length(control, entries).items()}
    last = max(depth.values(), default=0.0) + 1
    position: dict[int, tuple[float, float]] = {}
    for row, nodes in _rows({int(n): depth.get(int(n), last) for n in instructions}).items():
        for column, node in enumerate(nodes):
            position[node] = (column - (len(nodes) - 1) / 2, -row)
    neighbours = nx.Graph(edges)
    for node in np.flatnonzero(graph.node_type != 0).tolist():
        placed = [position[n] for n in neighbours.neighbors(node) if n in position] if node in neighbours else []
        x, y = np.mean(placed, axis=0) if placed else (0.0, -last - 1)
        position[node] = (x + 0.8 + 0.1 * (node % 5), y - 0.35)
    figure = _figure(9, max(4.0, 0.55 * (last + 2)))
    axes = figure.subplots()
    for flow, style in ((0, "-"), (1, ":"), (2, "--")):
        for source, target in [e for e, f in zip(edges, graph.edge_flow) if f == flow]:
            (x0, y0), (x1, y1) = position[source], position[target]
            axes.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "-|>", "linestyle": style,
                                                              "color": "0.6", "lw": 0.7, "shrinkA": 5, "shrinkB": 5})
    scored = predicted >= 0
    for node in range(graph.num_nodes):
        x, y = position[node]
        wrong = scored[node] and predicted[node] != labels[node]
        edge = "red" if wrong else "black"
        if not scored[node]:
            axes.scatter(x, y, s=20, color="0.8", zorder=2)
            continue
        axes.scatter(x, y, s=260 if node == root else 90, marker="*" if node == root else "o", zorder=3,
                     facecolor=("C0" if labels[node] else "white"), edgecolor=edge, linewidth=2 if wrong else 1)
        axes.annotate(str(graph.node_text[node])[:10], (x, y), xytext=(6, 4), textcoords="offset points",
                      fontsize=6, color="red" if wrong else "0.2")
    axes.set_axis_off()
    mistakes = int((scored & (predicted != labels)).sum())
    axes.set_title(title or f"root {root}: {int(labels[scored].sum())} of {int(scored.sum())} scored nodes "
                   f"labelled 1, {mistakes} mistakes")
    return _save(figure, path)


def _rows(depth: Mapping[int, float]) -> dict[int, list[int]]:
    """Nodes grouped by depth (rows numbered from 0), each row in node order."""
    levels = sorted(set(depth.values()))
    rows: dict[int, list[int]] = {i: [] for i in range(len(levels))}
    index = {level: i for i, level in enumerate(levels)}
    for node in sorted(depth):
        rows[index[depth[node]]].append(node)
    return rows
