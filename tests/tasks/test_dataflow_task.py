"""The dataflow task: root-node examples, their selector, labels and mask, through the processed cache."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ncc.graph.dataflow import analysis
from ncc.graph.program_graph import INSTRUCTION
from ncc.training import get_task, load_config

OPTIONS = {"task.programs": 30, "task.max_roots": 4, "task.analysis": "liveness"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    cache = tmp_path_factory.mktemp("reach-cache")
    config = load_config(None, {"task": "dataflow", "model.name": "ggnn", "data.cache_dir": str(cache),
                                "progress": False, **OPTIONS})
    return get_task("dataflow").prepare(config, progress=False), config


def test_examples_mark_one_root_and_label_what_it_reaches(prepared):
    data, _ = prepared
    task = get_task("dataflow")
    examples = [e for split in ("train", "val", "test") for e in data.splits[split].source.examples()]
    programs = {e.name.split("@")[0]: e.graph for e in examples}
    assert len(programs) == 30 and data.selector
    for name, graph in programs.items():  # ProGraML's count of roots, capped by the option
        count = sum(e.name.split("@")[0] == name for e in examples)
        assert count == min(math.ceil(graph.num_nodes / 10), 4)
    for example in examples:
        root = int(np.flatnonzero(example.selector)[0])
        assert example.selector.sum() == 1 and root != 0 and example.graph.node_type[root] == INSTRUCTION
        solver = analysis("liveness", example.graph)
        np.testing.assert_array_equal(example.y, solver.reference(root).astype(np.int64))
        np.testing.assert_array_equal(example.mask, solver.mask())
    kinds = {task.examples_kind(task.check_options(options))
             for options in ({"max_roots": 4}, {"max_roots": 5}, {"analysis": "dominance"})}
    assert len(kinds) == 3  # max_steps picks among the same examples when the splits are made
    assert task.examples_kind(task.check_options({"max_roots": 4, "max_steps": 30})) in kinds


def test_processed_items_carry_selector_labels_and_mask(prepared):
    data, _ = prepared
    train = data.splits["train"]
    item = train[0]
    example = train.source.examples()[0]
    assert item.selector.tolist() == example.selector.tolist()
    assert item.y.tolist() == example.y.tolist() and item.mask.tolist() == example.mask.tolist()
    assert 0 < data.info["train"]["positive_share"] < 1


def test_a_second_prepare_reads_the_cache_and_other_roots_are_other_data(prepared, tmp_path):
    data, config = prepared
    again = get_task("dataflow").prepare(config, progress=False)
    assert not again.splits["train"].reprocessed and again.splits["train"].key == data.splits["train"].key
    other = config.with_overrides({"task.seed": 1})
    assert get_task("dataflow").prepare(other, progress=False).splits["train"].key != data.splits["train"].key


@pytest.mark.training
def test_ncc_train_dataflow_builds_a_model_that_reads_the_selector(prepared, tmp_path, capsys):
    import torch

    from ncc.cli import main
    from ncc.training.trainer import load_checkpoint

    _, config = prepared
    main(["train", "dataflow", "--analysis", "liveness", "--model", "ggnn", "--epochs", "2", "-o", str(tmp_path / "run"),
          "--set", f"data.cache_dir={config.data.cache_dir}", "--set", "task.programs=30", "--set", "task.max_roots=4",
          "--set", "progress=false", "--set", "model.steps=4"])
    line = capsys.readouterr().out
    assert line.startswith(f"{tmp_path / 'run'}: val accuracy") and "test f1" in line and "test recall" in line
    checkpoint = load_checkpoint(tmp_path / "run" / "best.pt")
    assert checkpoint["model_kwargs"]["selector"] is True and checkpoint["model_kwargs"]["readout"] == "node"
    assert checkpoint["task"] == "dataflow" and checkpoint["config"]["task_options"]["analysis"] == "liveness"
    assert isinstance(checkpoint["model"], dict) and all(torch.isfinite(v).all() for v in checkpoint["model"].values()
                                                         if v.is_floating_point())


def test_the_llvm_test_suite_corpus_splits_by_program_and_sets_long_examples_apart(tmp_path):
    from ncc.frontend.corpora import LLVM_TEST_SUITE_ARCHIVE
    from ncc.paths import data_home

    if not (data_home() / LLVM_TEST_SUITE_ARCHIVE).is_file():
        pytest.skip(f"{LLVM_TEST_SUITE_ARCHIVE} is not under $NCC_DATA")
    config = load_config(None, {"task": "dataflow", "model.name": "ggnn", "task.analysis": "datadep",
                                "task.corpus": "llvm-test-suite", "task.programs": 24, "task.opt_levels": "0,2",
                                "task.max_roots": 3, "data.cache_dir": str(tmp_path), "progress": False})
    data = get_task("dataflow").prepare(config, progress=False)
    programs = {split: {e.name.split("@")[0] for e in dataset.source.examples()}
                for split, dataset in data.splits.items()}
    assert not programs["train"] & programs["val"] and not programs["train"] & (programs["test"] | programs.get(
        "long", set())) and not programs["val"] & programs["test"]
    levels = {e.name.split("@")[1] for e in data.splits["train"].source.examples()}
    assert levels == {"O0", "O2"}
    longest = max(e.info["steps"] for e in data.splits["train"].source.examples())
    assert all(e.info["steps"] <= longest for e in data.splits["test"].source.examples())
    beyond = data.splits["long"].source.examples() if "long" in data.splits else []
    assert all(e.info["steps"] > longest for e in beyond)
    example = data.splits["val"].source.examples()[0]
    root = int(np.flatnonzero(example.selector)[0])
    labels, steps = analysis("datadep", example.graph).query(root)
    assert example.info["steps"] == steps and int(data.splits["val"][0].steps) == steps
    np.testing.assert_array_equal(example.y, labels.astype(np.int64))
    assert 0 <= data.info["compile_failures"] < 24 * 2 // 4  # the suite's flags make most of them compile


def test_test_examples_beyond_the_longest_training_example_form_the_long_split(prepared):
    from ncc.training.datasets import Example, ExampleSource

    data, _ = prepared
    graph = data.splits["train"].source.examples()[0].graph

    def examples(*steps):
        return ExampleSource([Example(graph, np.zeros(graph.num_nodes, dtype=np.int64), info={"steps": s})
                              for s in steps])

    task = get_task("dataflow")
    options = task.check_options({})
    splits = task.final_splits(options, {"train": examples(3, 7), "val": examples(2), "test": examples(1, 7, 8, 20)})
    assert [e.info["steps"] for e in splits["test"].examples()] == [1, 7]
    assert [e.info["steps"] for e in splits["long"].examples()] == [8, 20]
    assert set(task.final_splits(options, {"train": examples(9), "val": examples(2), "test": examples(1)})) == {
        "train", "val", "test"}
    limited = task.final_splits(task.check_options({"max_steps": 5}),
                                {"train": examples(3, 7), "val": examples(2, 9), "test": examples(1, 7, 8, 20)})
    assert [[e.info["steps"] for e in limited[split].examples()] for split in ("train", "val", "test", "long")] == [
        [3], [2], [1], [7, 8, 20]]
    assert len({source.key for source in limited.values()}) == 4


@pytest.mark.training
def test_reproduce_writes_one_row_per_analysis_and_model_with_the_published_figures(tmp_path, monkeypatch, capsys):
    from ncc.cli import main
    from ncc.tasks import dataflow

    monkeypatch.setitem(dataflow.PROTOCOLS, "quick", ({"programs": 30, "max_roots": 3, "max_steps": 10},
                                                      {"epochs": 2, "data.batch_size": 8, "model.steps": 4}))
    monkeypatch.setenv("NCC_CACHE", str(tmp_path / "cache"))
    arguments = ["reproduce", "dataflow", "--platform", "liveness", "--platform", "dominance", "--models", "ggnn,rgine",
                 "-o", str(tmp_path / "out")]
    main(arguments)
    out = capsys.readouterr().out
    with open(tmp_path / "out" / "dataflow.csv", newline="") as handle:
        rows = list(__import__("csv").DictReader(handle))
    assert [(r["analysis"], r["model"]) for r in rows] == [("liveness", "ggnn"), ("liveness", "rgine"),
                                                           ("dominance", "ggnn"), ("dominance", "rgine")]
    assert all(0 <= float(r["test_f1"]) <= 1 and r["published"].startswith(str(dataflow.PUBLISHED[r["analysis"]][0]))
               for r in rows)
    assert "| liveness | ggnn | quick |" in out
    runs = sorted((tmp_path / "out" / "quick").glob("*/*/report.json"))
    assert len(runs) == 4
    stamps = [run.stat().st_mtime_ns for run in runs]
    main(arguments)  # finished rows are read back, not trained again
    assert [run.stat().st_mtime_ns for run in runs] == stamps
