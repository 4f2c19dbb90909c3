"""Thread-coarsening task: data, leave-one-kernel-out folds, scores, baselines and a short neural run.

Needs ``$NCC_DATA/threadcoarsening`` (skipped otherwise).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

DATA = Path(os.environ.get("NCC_DATA", "/nonexistent")) / "threadcoarsening"
pytestmark = pytest.mark.skipif(not (DATA / "pact-2014-runtimes.csv").is_file(),
                                reason="$NCC_DATA/threadcoarsening not present")


@pytest.fixture(scope="module")
def table(cache):
    from ncc.tasks.threadcoarsening import load_threadcoarsening

    return load_threadcoarsening()


@pytest.fixture(scope="module")
def experiment(cache, tmp_path_factory):
    from ncc.tasks.threadcoarsening import CoarseningExperiment

    return CoarseningExperiment.prepare(tmp_path_factory.mktemp("tc-runs"), workers=2, progress=False)


def test_table_labels_and_oracle_speedups_match_the_csv_files(table):
    """Everything recomputed from the two CSVs with the csv module: run times, best factors, oracle speedups."""
    import csv

    from ncc.tasks.threadcoarsening import PLATFORMS

    with open(DATA / "pact-2014-runtimes.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    with open(DATA / "pact-2014-oracles.csv", newline="", encoding="utf-8") as stream:
        oracles = {row["kernel"]: row for row in csv.DictReader(stream)}
    columns = [c[len("runtime_"):] for c in rows[0] if c.startswith("runtime_")]  # Fermi, Kepler, ...
    assert sorted(c.lower() for c in columns) == sorted(PLATFORMS)
    factors = sorted({int(float(row["cf"])) for row in rows})
    kernels = sorted(oracles)
    assert table.kernels.tolist() == kernels and sorted({row["kernel"] for row in rows}) == kernels
    measured = {}  # (kernel, column) -> {factor: run time}, empty cells left out
    for row in rows:
        for column in columns:
            if row[f"runtime_{column}"].strip():
                measured.setdefault((row["kernel"], column), {})[int(float(row["cf"]))] = \
                    float(row[f"runtime_{column}"])
    assert int((~np.isnan(table.pca[:, :, 0])).sum()) == len(rows)  # one (kernel, factor) per CSV row
    assert int(np.isnan(table.runtime).sum() - np.isnan(table.pca[:, :, 0]).sum() * len(columns)) == \
        sum(not row[f"runtime_{c}"].strip() for row in rows for c in columns)  # empty cells stay NaN
    for column in columns:
        platform = column.lower()
        runtimes, labels = table.runtimes(platform), table.labels(platform)
        oracle_speedups = []
        for k, kernel in enumerate(kernels):
            times = measured[(kernel, column)]
            np.testing.assert_array_equal(runtimes[k], [times.get(f, np.nan) for f in factors])
            best = min(sorted(times), key=times.get)  # the fastest measured factor (smallest on a tie)
            assert factors[labels[k]] == best, (kernel, platform)
            assert int(float(oracles[kernel][f"cf_{column}"])) == best, (kernel, platform)
            assert float(oracles[kernel][f"runtime_{column}"]) == times[best], (kernel, platform)
            oracle_speedups.append(times[1] / times[best])
        assert table.oracle_speedup(platform) == pytest.approx(float(np.mean(oracle_speedups)), rel=1e-12)
        best_speedups = table.speedups(platform, labels)
        assert (best_speedups >= 1.0).all()
        for choice in range(len(factors)):  # no fixed factor beats the oracle on any kernel
            assert (table.speedups(platform, np.full(len(kernels), choice)) <= best_speedups).all()


def test_labels_are_the_oracle_files_factors(table):
    from ncc.tasks.threadcoarsening import PLATFORMS

    for platform in PLATFORMS:
        np.testing.assert_array_equal(table.labels(platform), table.oracle_labels(platform))


def test_an_unmeasured_factor_counts_as_factor_one(table):
    from ncc.tasks.threadcoarsening import coarsening_score

    unmeasured = np.isnan(table.runtimes("tahiti")[:, 5])  # factor 32
    assert unmeasured.sum() == 12
    speedups = table.speedups("tahiti", np.full(17, 5))
    assert (speedups[unmeasured] == 1.0).all() and np.isfinite(speedups).all()
    assert coarsening_score(table, "tahiti", np.arange(17), table.labels("tahiti"))["accuracy"] == 100.0


def test_leave_one_kernel_out_folds(table):
    from ncc.tasks.threadcoarsening import coarsening_folds

    folds = coarsening_folds(table)
    assert len(folds) == 17
    for index, (train, test) in enumerate(folds):
        assert test.tolist() == [index] and len(train) == 16 and index not in train
    assert sorted(np.concatenate([test for _, test in folds]).tolist()) == list(range(17))


def test_validation_split_never_holds_the_test_kernel(experiment):
    from dataclasses import replace

    from ncc.tasks.threadcoarsening import coarsening_folds

    train, test = coarsening_folds(experiment.table)[3]
    fit, val = experiment.validation_split(train, 0)
    assert fit is train and val is train
    held = replace(experiment, val_kernels=3)
    fit, val = held.validation_split(train, 0)
    assert len(val) == 3 and len(fit) == 13 and not set(fit) & set(val) and 3 not in set(fit) | set(val)


@pytest.mark.parametrize("source", ["original", "ncc-ir", "normalised"])
def test_all_kernels_compile(table, source):
    from ncc.tasks.threadcoarsening import coarsening_modules

    modules, failures = coarsening_modules(table, source, workers=2, progress=False)
    assert failures == {} and all(m is not None for m in modules)
    kernels = table.kernels.tolist()
    shared = modules[kernels.index("mt")] is modules[kernels.index("mtLocal")]
    assert shared == (source == "normalised")  # one normalised text, one module


def test_one_scores_exactly_one_and_baselines_are_finite(experiment):
    from ncc.tasks.threadcoarsening import PLATFORMS, coarsening_folds, coarsening_score, cross_validate

    table = experiment.table
    for platform in PLATFORMS:
        predictions = cross_validate(experiment, "one", platform)
        assert coarsening_score(table, platform, np.arange(17), predictions)["speedup"] == 1.0
        common = cross_validate(experiment, "common", platform)
        labels = table.labels(platform)
        for (train, test), predicted in zip(coarsening_folds(table), common):
            counts = Counter(labels[train].tolist())
            assert predicted == min(c for c in counts if counts[c] == max(counts.values()))
        for model in ("common", "magni"):
            predictions = cross_validate(experiment, model, platform)
            assert (predictions >= 0).all()
            score = coarsening_score(table, platform, np.arange(17), predictions)
            assert math.isfinite(score["speedup"]) and score["speedup"] > 0


@pytest.mark.training
def test_reproduce_writes_the_table(experiment, tmp_path):
    from ncc.tasks.threadcoarsening import reproduce_threadcoarsening

    rows = reproduce_threadcoarsening(tmp_path, models=("one", "common", "magni"), platforms=("cypress", "kepler"),
                                      workers=2, progress=False)
    by_model = {row["model"]: row for row in rows}
    assert by_model["one"]["cypress_speedup"] == 1.0
    assert math.isfinite(by_model["magni"]["kepler_speedup"])
    assert by_model["oracle"]["cypress_speedup"] == pytest.approx(1.498, abs=5e-4)
    assert by_model["magni"]["published"].startswith("1.21 / 0.94")
    assert "deeptune" in by_model and "ir2vec" in by_model
    text = (tmp_path / "threadcoarsening.md").read_text()
    assert "| magni |" in text and (tmp_path / "threadcoarsening.csv").is_file()


def test_ggnn_two_folds_then_reuse(experiment, tmp_path):
    """A neural row on two folds; the second call and the trainer's task reuse the saved fold predictions."""
    from dataclasses import replace

    from ncc.training import get_task, load_config
    from ncc.tasks.threadcoarsening import cross_validate

    quick = replace(experiment, output=tmp_path, epochs=1, model_kwargs={"ggnn": {"steps": 1, "embedding_dim": 8}})
    first = cross_validate(quick, "ggnn", "tahiti", 0, folds=[0, 1])
    assert (first[:2] >= 0).all() and (first[2:] == -1).all()
    (folder,) = (tmp_path / "tahiti").glob("ggnn-seed0-*")
    saved = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert {"fold-0.npy", "fold-1.npy", "run-0", "run-1"} <= set(saved)
    # The graph models train every epoch: stopping early cost the GGNN on every GPU.
    assert json.loads((folder / "run-0" / "config.json").read_text())["patience"] == 0
    again = cross_validate(quick, "ggnn", "tahiti", 0, folds=[0, 1])
    np.testing.assert_array_equal(first, again)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == saved  # nothing retrained or added
    cross_validate(replace(quick, epochs=2), "ggnn", "tahiti", 0, folds=[0])
    assert len(list((tmp_path / "tahiti").glob("ggnn-seed0-*"))) == 2  # other settings: other folds
    config = load_config(None, {"task": "threadcoarsening", "model.name": "ggnn", "task.platform": "tahiti",
                                "task.fold": 1, "epochs": 1, "output": str(tmp_path / "cli"), "progress": False,
                                "model.steps": 1, "model.embedding_dim": 8})
    result = get_task("threadcoarsening").train(config)
    assert result["kernels"] == 1 and result["output"] == str(tmp_path / "cli")
    (run,) = (tmp_path / "cli" / "tahiti").glob("ggnn-seed0-*")
    stamp = (run / "fold-1.npy").stat().st_mtime_ns
    get_task("threadcoarsening").train(config)
    assert (run / "fold-1.npy").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("key, value", [("platform", "foo"), ("source", "clean"), ("fold", 17)])
def test_bad_option_is_a_one_line_config_error(key, value):
    from ncc.training import ConfigError, get_task, load_config

    with pytest.raises(ConfigError) as caught:
        load_config(None, {"task": "threadcoarsening", f"task.{key}": value})
    assert f"task.{key}" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ConfigError):
        get_task("threadcoarsening").check_options({key: value})


def test_unknown_model_is_a_config_error():
    from ncc.training import ConfigError, get_task, load_config

    config = load_config(None, {"task": "threadcoarsening", "model.name": "deeptune", "progress": False})
    with pytest.raises(ConfigError, match="model.name"):
        get_task("threadcoarsening").train(config)


def test_ncc_knn_never_reads_the_held_out_kernel_and_beats_never_coarsening(experiment):
    import dataclasses

    from ncc.tasks.threadcoarsening import MODELS, PLATFORMS, coarsening_folds, coarsening_score

    predict = MODELS["ncc-knn"][1]
    table = experiment.table
    train, test = coarsening_folds(table)[5]
    scrambled_runtime = table.runtime.copy()
    scrambled_runtime[test[0]] = scrambled_runtime[test[0]][:, ::-1]  # the held-out kernel's measurements
    scrambled = dataclasses.replace(experiment, table=dataclasses.replace(table, runtime=scrambled_runtime))
    for platform in PLATFORMS:
        assert predict(experiment, train, test, platform, 0, None).tolist() == \
            predict(scrambled, train, test, platform, 0, None).tolist()
    speedups = []
    for platform in PLATFORMS:
        predictions = np.concatenate([predict(experiment, tr, te, platform, 0, None)
                                      for tr, te in coarsening_folds(table)])
        speedups.append(coarsening_score(table, platform, np.arange(len(table)), predictions)["speedup"])
    assert np.mean(speedups) > 1.05
