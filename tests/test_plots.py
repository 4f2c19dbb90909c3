"""The OpenCL tables' figures: bars equal the tasks' own scores, confusion counts add up to the rows.

Synthetic predictions over the real tables; needs ``$NCC_DATA/devmap`` and ``$NCC_DATA/threadcoarsening``
(each test skipped without its data).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(os.environ.get("NCC_DATA", "/nonexistent"))
needs_devmap = pytest.mark.skipif(not (DATA / "devmap" / "cgo17-amd.csv").is_file(),
                                  reason="$NCC_DATA/devmap not present")
needs_coarsening = pytest.mark.skipif(not (DATA / "threadcoarsening" / "pact-2014-runtimes.csv").is_file(),
                                      reason="$NCC_DATA/threadcoarsening not present")


def bar_heights(figure) -> dict[str, list[float]]:
    axes = figure.axes[0]
    return {container.get_label(): [bar.get_height() for bar in container] for container in axes.containers}


def annotated_counts(figure) -> np.ndarray:
    return np.array([int(text.get_text()) for text in figure.axes[0].texts])


@pytest.fixture(scope="module")
def devmap_table():
    from ncc.tasks.devmap import load_devmap

    return load_devmap("amd")


@pytest.fixture(scope="module")
def devmap_predictions(devmap_table):
    rng = np.random.default_rng(0)
    noisy = np.where(rng.random(len(devmap_table)) < 0.2, 1 - devmap_table.label, devmap_table.label)
    partial = noisy.copy()
    partial[::3] = -1  # folds not run
    return {"cpu": np.zeros(len(devmap_table), dtype=np.int64), "noisy": noisy, "partial": partial}


@needs_devmap
def test_devmap_bars_are_devmap_scores_per_suite(devmap_table, devmap_predictions, tmp_path):
    from ncc.tasks.devmap import devmap_score
    from ncc.plots import devmap_speedup_by_suite

    figure = devmap_speedup_by_suite(devmap_table, devmap_predictions, path=tmp_path / "suites.png")
    heights = bar_heights(figure)
    assert list(heights) == ["cpu", "noisy", "partial", "oracle"]
    suites = sorted(set(devmap_table.suite.tolist()))
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == suites + ["all"]
    for model, values in heights.items():
        predicted = devmap_table.label if model == "oracle" else devmap_predictions[model]
        scored = predicted >= 0
        for suite, height in zip(suites + ["all"], values):
            rows = np.flatnonzero(scored & ((devmap_table.suite == suite) | (suite == "all")))
            assert height == pytest.approx(devmap_score(devmap_table, rows, predicted[rows])["speedup"])
    assert heights["cpu"] == pytest.approx([1.0] * len(values))  # AMD's static mapping is the CPU
    assert (tmp_path / "suites.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*.tmp"))


@needs_devmap
def test_devmap_confusion_counts(devmap_table, devmap_predictions):
    from ncc.plots import devmap_confusion

    counts = annotated_counts(devmap_confusion(devmap_table, devmap_predictions, "partial"))
    partial = devmap_predictions["partial"]
    rows = partial >= 0
    assert counts.sum() == rows.sum()
    label = devmap_table.label[rows]
    expected = [((label == t) & (partial[rows] == p)).sum() for t in (0, 1) for p in (0, 1)]
    assert counts.tolist() == expected
    with pytest.raises(KeyError, match="no predictions"):
        devmap_confusion(devmap_table, devmap_predictions, "ggnn")


@pytest.fixture(scope="module")
def coarsening_table():
    from ncc.tasks.threadcoarsening import load_threadcoarsening

    return load_threadcoarsening()


@needs_coarsening
def test_coarsening_bars_are_coarsening_scores(coarsening_table, tmp_path):
    from ncc.plots import coarsening_speedup_by_kernel
    from ncc.tasks.threadcoarsening import FACTORS, coarsening_score

    table, platform = coarsening_table, "tahiti"
    largest = np.full(len(table), len(FACTORS) - 1)  # factor 32: unmeasured for most kernels, speedup 1
    some = np.full(len(table), -1)
    some[[0, 1, 2]] = [1, 2, 3]
    figure = coarsening_speedup_by_kernel(table, platform, {"largest": largest, "some": some},
                                          path=tmp_path / "kernels.png")
    heights = bar_heights(figure)
    assert list(heights) == ["largest", "some", "oracle"]
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == table.kernels.tolist() + ["mean"]
    for k in range(len(table)):
        assert heights["largest"][k] == pytest.approx(coarsening_score(table, platform, [k], [5])["speedup"])
        assert heights["oracle"][k] == pytest.approx(
            coarsening_score(table, platform, [k], [table.labels(platform)[k]])["speedup"])
    assert heights["some"][:3] == pytest.approx([coarsening_score(table, platform, [k], [some[k]])["speedup"]
                                                 for k in range(3)])
    assert heights["some"][3:-1] == [0.0] * (len(table) - 3)  # not predicted: no bar height
    assert heights["some"][-1] == pytest.approx(coarsening_score(table, platform, [0, 1, 2], [1, 2, 3])["speedup"])
    assert heights["oracle"][-1] == pytest.approx(table.oracle_speedup(platform))
    assert (tmp_path / "kernels.png").stat().st_size > 1000


@needs_coarsening
def test_coarsening_kernels_are_those_predicted(coarsening_table):
    from ncc.plots import coarsening_speedup_by_kernel

    some = np.full(len(coarsening_table), -1)
    some[[4, 7]] = 0
    figure = coarsening_speedup_by_kernel(coarsening_table, "fermi", {"one": some})
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == \
        coarsening_table.kernels[[4, 7]].tolist() + ["mean"]
    assert bar_heights(figure)["one"] == pytest.approx([1.0, 1.0, 1.0])


@needs_coarsening
def test_coarsening_confusion_counts(coarsening_table):
    from ncc.plots import coarsening_confusion

    labels = coarsening_table.labels("kepler")
    predicted = np.roll(labels, 1)
    predicted[-2:] = -1
    counts = annotated_counts(coarsening_confusion(coarsening_table, "kepler", {"m": predicted}, "m"))
    assert len(counts) == 36 and counts.sum() == len(coarsening_table) - 2
    matrix = counts.reshape(6, 6)
    for true, guess in zip(labels[:-2], predicted[:-2]):
        matrix[true, guess] -= 1
    assert not matrix.any()


def test_best_model_skips_reference_rows_and_missing_numbers():
    from ncc.plots import best_model

    rows = [{"protocol": "published", "model": "static", "amd_speedup": 1.0, "published": "amd 58.8 (x)"},
            {"protocol": "published", "model": "grewe", "amd_speedup": 2.5, "published": "amd 73 (y)"},
            {"protocol": "grouped", "model": "grewe", "amd_speedup": 3.5},
            {"protocol": "grouped", "model": "aux", "amd_speedup": 3.0},
            {"protocol": "grouped", "model": "ggnn", "amd_speedup": math.nan},
            {"model": "oracle", "amd_speedup": 9.0}]
    assert best_model(rows, "amd_speedup", protocol="grouped") == "grewe"
    assert best_model(rows, "amd_speedup", protocol="published") == "grewe"
    assert best_model(rows[3:], "amd_speedup") == "aux"
    with pytest.raises(ValueError):
        best_model(rows, "nvidia_speedup")


def test_importing_plots_imports_neither_torch_nor_pyplot():
    import subprocess

    code = "import sys, ncc.plots; print('torch' in sys.modules, 'matplotlib.pyplot' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split() == ["False", "False"]
