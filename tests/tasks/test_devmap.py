"""Device mapping: data, both protocols' folds, scores, the baselines, resumable folds, a short neural run, CLI.

Needs ``$NCC_DATA/devmap`` (skipped otherwise).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(os.environ.get("NCC_DATA", "/nonexistent")) / "devmap"
pytestmark = pytest.mark.skipif(not (DATA / "cgo17-amd.csv").is_file(), reason="$NCC_DATA/devmap not present")


@pytest.fixture(scope="module")
def experiment(cache, tmp_path_factory):
    from ncc.tasks.devmap import DevmapExperiment

    return DevmapExperiment.prepare("amd", tmp_path_factory.mktemp("devmap-runs"), workers=2, progress=False)


@pytest.mark.parametrize("platform, cpu_rows, oracle_speedup", [("amd", 400, 3.642), ("nvidia", 293, 1.526)])
def test_table_matches_the_published_data(platform, cpu_rows, oracle_speedup):
    from ncc.tasks.devmap import devmap_score, load_devmap

    table = load_devmap(platform)
    assert len(table) == 680
    assert len(set(table.benchmark)) == 256
    assert len(set(table.suite)) == 7
    assert int((table.label == 0).sum()) == cpu_rows
    assert devmap_score(table, np.arange(680), table.label) == {"accuracy": 100.0,
                                                                  "speedup": pytest.approx(oracle_speedup, abs=5e-4)}


def test_static_mapping_is_the_majority_device():
    from ncc.tasks.devmap import devmap_score, load_devmap

    for platform, accuracy in (("amd", 58.82), ("nvidia", 56.91)):
        table = load_devmap(platform)
        static = np.full(680, 0 if platform == "amd" else 1)
        score = devmap_score(table, np.arange(680), static)
        assert score["accuracy"] == pytest.approx(accuracy, abs=0.01)
        assert score["speedup"] == pytest.approx(1.0)
        assert devmap_score(table, np.arange(680), 1 - static)["accuracy"] == pytest.approx(100 - accuracy, abs=0.01)


def test_grewe_features_follow_deeptune():
    from ncc.tasks.devmap import FEATURE_COLUMNS, grewe_features, load_devmap

    table = load_devmap("amd")
    features = grewe_features(table)
    comp, mem, localmem, coalesced = (table.features[0, FEATURE_COLUMNS.index(c)]
                                      for c in ("comp", "mem", "localmem", "coalesced"))
    assert features[0].tolist() == pytest.approx([table.transfer[0] / (comp + mem), coalesced / mem,
                                                  localmem / mem * table.wgsize[0], comp / mem])
    assert np.isfinite(features).all()


@pytest.mark.parametrize("platform, groups, leaking_rows, changed_rows", [("amd", 10, 254, 117),
                                                                       ("nvidia", 11, 285, 209)])
def test_published_transfer_sizes_give_the_label_away_and_merged_ones_do_not(platform, groups, leaking_rows,
                                                                            changed_rows):
    from ncc.tasks.devmap import load_devmap, split_transfer_groups

    published, merged = load_devmap(platform), load_devmap(platform, transfer="merged")
    found = split_transfer_groups(published)
    assert len(found) == groups
    assert {group["program"] for group in found} == {"npb-3.3-BT", "npb-3.3-LU", "npb-3.3-SP"}
    # Two sizes a few hundred bytes apart: every row at the smaller is a CPU row, every row at the larger a GPU row.
    for group in found:
        assert len(group["transfer"]) == 2 and group["transfer"][1] - group["transfer"][0] < 2e-4 * group["transfer"][0]
        assert group["gpu_rows"][0] == 0 and group["cpu_rows"][1] == 0
    assert sum(sum(group["cpu_rows"]) + sum(group["gpu_rows"]) for group in found) == leaking_rows
    assert split_transfer_groups(merged) == []
    changed = published.transfer != merged.transfer
    assert int(changed.sum()) == changed_rows
    assert (merged.transfer <= published.transfer).all()
    for field in ("benchmark", "dataset", "wgsize", "label", "runtime", "features"):
        assert np.array_equal(getattr(published, field), getattr(merged, field))


@pytest.mark.training
def test_aux_trees_lose_their_edge_on_merged_transfer_sizes(cache, tmp_path):
    from ncc.tasks.devmap import reproduce_devmap

    # One output folder for both: the merged run must not reuse the published run's folds.
    accuracy = {transfer: reproduce_devmap(tmp_path, models=("aux",), protocols=("grouped",), platforms=("amd",),
                                           transfer=transfer, progress=False)[0]["amd_accuracy"]
                for transfer in ("published", "merged")}
    assert accuracy["published"] > accuracy["merged"] + 2.0
    assert len(list(tmp_path.glob("grouped/amd/aux-seed0-*"))) == 2


def test_folds_partition_rows_and_grouped_folds_keep_kernels_apart():
    from ncc.tasks.devmap import devmap_folds, load_devmap

    table = load_devmap("nvidia")
    for protocol in ("published", "grouped"):
        folds = devmap_folds(table, protocol)
        assert len(folds) == 10
        tests = np.concatenate([test for _, test in folds])
        assert sorted(tests.tolist()) == list(range(680))
        for train, test in folds:
            assert not set(train) & set(test)
        assert [t.tolist() for _, t in folds] == [t.tolist() for _, t in devmap_folds(table, protocol)]
    leaked = [set(table.benchmark[train]) & set(table.benchmark[test]) for train, test in devmap_folds(table, "grouped")]
    assert all(not kernels for kernels in leaked)
    assert any(set(table.benchmark[train]) & set(table.benchmark[test])
               for train, test in devmap_folds(table, "published"))


def test_every_row_compiles_from_the_original_sources(experiment):
    graphs = experiment.graphs
    assert len(graphs) == 680
    assert all(graph.num_nodes > 10 for graph in graphs)
    # clang's uncalled kernel copies are dropped: one function per kernel for this one-kernel file
    first = experiment.table.benchmark.tolist().index("amd-app-sdk-3.0-BlackScholes-blackScholes")
    assert not any(name.lstrip("@").startswith("__clang_ocl_kern_imp_") for name in graphs[first].function_names)


def test_ncc_ir_source_gives_every_row(cache):
    from ncc.tasks.devmap import devmap_modules, load_devmap

    if not (DATA / "ncc" / "kernels_ir.tar.gz").is_file():
        pytest.skip("NCC's IR is not present")
    modules, failures = devmap_modules(load_devmap("amd"), "ncc-ir", progress=False)
    assert not failures
    assert all(module is not None and "spir_kernel" in module.text for module in modules)


def test_baselines_score_as_measured_and_folds_are_reused(experiment):
    from ncc.tasks.devmap import cross_validate, devmap_score

    table = experiment.table
    scores = {}
    for model in ("static", "aux", "grewe"):
        predictions = cross_validate(experiment, model, "grouped")
        assert (predictions >= 0).all()
        scores[model] = devmap_score(table, np.arange(680), predictions)["accuracy"]
    assert scores["static"] == pytest.approx(58.82, abs=0.01)
    assert scores["aux"] > 85.0  # transfer and work-group size alone decide most AMD rows
    assert 60.0 < scores["grewe"] < scores["aux"]
    saved = sorted(experiment.output.glob("grouped/amd/aux-seed0-*/fold-*.npy"))
    assert len(saved) == 10
    stamps = [path.stat().st_mtime_ns for path in saved]
    again = cross_validate(experiment, "aux", "grouped")
    assert [path.stat().st_mtime_ns for path in saved] == stamps
    assert devmap_score(table, np.arange(680), again)["accuracy"] == scores["aux"]


@pytest.mark.training
def test_random_kernel_vectors_profit_from_the_published_protocol_only(experiment):
    from ncc.tasks.devmap import cross_validate, devmap_score

    accuracy = {protocol: devmap_score(experiment.table, np.arange(680),
                                       cross_validate(experiment, "random", protocol))["accuracy"]
                for protocol in ("published", "grouped")}
    assert accuracy["published"] > accuracy["grouped"] + 5.0


def test_validation_split_stays_inside_the_training_fold(experiment):
    from ncc.tasks.devmap import devmap_folds

    train, test = devmap_folds(experiment.table, "grouped")[3]
    fit, val = experiment.validation_split(train, "grouped", seed=0)
    assert sorted(np.concatenate([fit, val]).tolist()) == sorted(train.tolist())
    assert not set(experiment.table.benchmark[fit]) & set(experiment.table.benchmark[val])
    assert not set(val) & set(test)


def test_inner_folds_cover_the_training_rows_and_keep_kernels_apart(experiment):
    from ncc.tasks.devmap import devmap_folds

    train, _ = devmap_folds(experiment.table, "grouped")[3]
    folds = experiment.inner_folds(train, "grouped", seed=0)
    assert len(folds) == 5
    assert sorted(np.concatenate([held for _, held in folds]).tolist()) == list(range(len(train)))
    for fit, held in folds:
        assert not set(experiment.table.benchmark[train[fit]]) & set(experiment.table.benchmark[train[held]])


@pytest.mark.training
def test_ggnn_fold_through_the_trainer(experiment, tmp_path):
    """One fold of a tiny GGNN through ``ncc train devmap``: predictions saved, a second run trains nothing."""
    from click.testing import CliRunner

    from ncc.cli import cli

    output = tmp_path / "ggnn"
    arguments = ["train", "devmap", "--model", "ggnn", "--platform", "amd", "--epochs", "1", "--device", "cpu",
                 "--output", str(output), "--set", "task.fold=2", "--set", "model.steps=1",
                 "--set", "model.embedding_dim=8", "--set", "progress=false"]
    result = CliRunner().invoke(cli, arguments, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    from ncc.tasks.devmap import devmap_folds

    rows = len(devmap_folds(experiment.table, "grouped")[2][1])
    assert "accuracy" in result.output and f"rows {rows}" in result.output
    (run,) = output.glob("grouped/amd/ggnn-seed0-*")
    fold = run / "fold-2.npy"
    predictions = np.load(fold)
    assert predictions.shape == (rows,) and set(predictions.tolist()) <= {0, 1}
    assert (run / "run-2" / "report.json").is_file()
    # A graph model trains every epoch: on a 68-row validation split early stopping kept epoch-2 models.
    assert json.loads((run / "run-2" / "config.json").read_text())["patience"] == 0
    stamp = fold.stat().st_mtime_ns
    assert CliRunner().invoke(cli, arguments, catch_exceptions=False).exit_code == 0
    assert fold.stat().st_mtime_ns == stamp


@pytest.mark.training
def test_neural_rows_train_their_own_epochs_unless_the_run_sets_them(experiment, tmp_path, monkeypatch):
    """The table's GGNN trains its own epoch count; a run's ``epochs`` overrides it and keeps its folds apart."""
    import dataclasses

    from ncc.tasks import devmap

    monkeypatch.setitem(devmap.NEURAL_EPOCHS, "ggnn", 2)
    tiny = {"ggnn": {"steps": 1, "embedding_dim": 8}}
    for epochs, expected in ((None, 2), (1, 1)):
        run = dataclasses.replace(experiment, output=tmp_path / str(epochs), epochs=epochs, model_kwargs=tiny,
                                  settings={"device": "cpu"}, progress=False)
        devmap.cross_validate(run, "ggnn", "grouped", folds=[3])
        (config,) = (tmp_path / str(epochs)).glob("grouped/amd/ggnn-seed0-*/run-3/config.json")
        assert json.loads(config.read_text())["epochs"] == expected
    (default,), (set_by_run,) = ([p.name for p in (tmp_path / e).glob("grouped/amd/ggnn-*")] for e in ("None", "1"))
    assert default != set_by_run
    # ncc train devmap without --epochs trains the table's count, not the trainer's default.
    from ncc.training import get_task, load_config

    config = load_config(None, {"task": "devmap", "model.name": "ggnn", "task.fold": 3, "device": "cpu",
                                "output": str(tmp_path / "cli"), "progress": False, "model.steps": 1,
                                "model.embedding_dim": 8})
    get_task("devmap").train(config)
    (config_file,) = (tmp_path / "cli").glob("grouped/amd/ggnn-seed0-*/run-3/config.json")
    assert json.loads(config_file.read_text())["epochs"] == 2


def test_unknown_model_is_a_one_line_config_error():
    from ncc.training import ConfigError, get_task, load_config

    config = load_config(None, {"task": "devmap", "model.name": "deeptune", "progress": False})
    with pytest.raises(ConfigError, match="devmap has no model 'deeptune'; choose one of static, ") as caught:
        get_task("devmap").train(config)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("setting, message", [("task.platform=arm", "task.platform"),
                                              ("task.protocol=random", "task.protocol"),
                                              ("task.transfer=rounded", "task.transfer"),
                                              ("task.fold=12", "task.fold")])
def test_bad_options_fail_in_one_line(setting, message):
    from ncc.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "devmap", "--model", "aux", "--set", setting])
    assert exit_info.value.code == 1


def test_reproduce_prints_and_saves_the_table(cache, tmp_path):
    from click.testing import CliRunner

    from ncc.cli import cli

    result = CliRunner().invoke(cli, ["reproduce", "devmap", "--models", "static,grewe", "--platform", "nvidia",
                                      "--protocol", "grouped", "--output", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "| grouped | static |" in result.output and "| grouped | grewe |" in result.output
    assert "| grouped | oracle |" in result.output
    assert "transfer sizes as published" in result.output and "--transfer merged" in result.output
    csv_text = (tmp_path / "devmap.csv").read_text()
    assert csv_text.startswith("protocol,model,") and "56.91" in csv_text
    assert (tmp_path / "devmap.md").is_file()


def test_ncc_trees_chooses_the_blend_with_the_best_probabilities_not_only_the_best_accuracy():
    from ncc.tasks.devmap import choose_blend

    labels = np.array([1, 1, 0, 0])
    aux_alone, mean_summary = [0.9, 0.9, 0.1, 0.1], [0.6, 0.6, 0.4, 0.4]
    # Every blend of these two is right on all four rows; the confident one has the lower squared error.
    assert choose_blend(np.array([aux_alone, mean_summary, [0.4, 0.6, 0.4, 0.4]]), labels) == (1, 1.0)
    assert choose_blend(np.array([aux_alone, mean_summary, [0.95, 0.95, 0.05, 0.05]]), labels) == (2, 0.0)


@pytest.mark.training
def test_ncc_trees_on_two_folds(cache, tmp_path):
    from click.testing import CliRunner

    from ncc.cli import cli

    result = CliRunner().invoke(cli, ["reproduce", "devmap", "--models", "ncc-trees", "--platform", "amd",
                                      "--folds", "0,1", "--output", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {line.split("|")[1].strip() + " " + line.split("|")[2].strip(): line
            for line in result.output.splitlines() if line.startswith("| ")}
    for protocol in ("published", "grouped"):
        accuracy = float(rows[f"{protocol} ncc-trees"].split("|")[5])
        assert 75.0 < accuracy <= 100.0
    saved = sorted(p.name for p in tmp_path.glob("grouped/amd/ncc-trees-seed0-*/fold-*.npy"))
    assert saved == ["fold-0.npy", "fold-1.npy"]


@pytest.mark.training
def test_runs_spread_over_processes_give_the_same_table(cache, tmp_path):
    from ncc.tasks.devmap import reproduce_devmap

    settings = dict(models=("random", "grewe"), platforms=("amd",), seeds=(0, 1), folds=(0, 1), progress=False)
    alone = reproduce_devmap(tmp_path / "one", workers=1, **settings)
    spread = reproduce_devmap(tmp_path / "two", workers=2, **settings)
    assert spread == alone
    assert (tmp_path / "two" / "devmap.md").read_text() == (tmp_path / "one" / "devmap.md").read_text()
    assert len(list((tmp_path / "two").glob("*/amd/random-seed1-*/fold-1.npy"))) == 2


def test_run_in_processes_runs_every_call_and_names_the_failures(tmp_path):
    from ncc.errors import NccError
    from ncc.training.crossval import run_in_processes

    (tmp_path / "file").write_text("")
    calls = [(str(tmp_path / "a"),), (str(tmp_path / "file" / "below"),), (str(tmp_path / "b"),)]
    with pytest.raises(NccError, match=r"1 of 3 runs failed .*: bad: ") as error:
        run_in_processes(os.makedirs, calls, 2, ["first", "bad", "last"], progress=False)
    assert "first" not in str(error.value) and "last" not in str(error.value)
    assert (tmp_path / "a").is_dir() and (tmp_path / "b").is_dir()


@pytest.mark.parametrize("arguments, message, code", [
    (["--models", "nope"], "unknown devmap row 'nope'", 1),
    (["--platform", "arm"], "devmap has no platform 'arm'; choose from amd, nvidia", 1),
    (["--protocol", "quick"], "devmap has no protocol 'quick'; choose from published, grouped", 1),
    (["--classes", "3"], "devmap has no option 'classes'; choose from source, transfer", 1),
    (["--folds", "a,b"], "--folds", 2),
    (["--transfer", "rounded"], "--transfer", 2)])
def test_reproduce_rejects_bad_arguments(arguments, message, code, capsys):
    from ncc.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["reproduce", "devmap", *arguments])
    assert stop.value.code == code and message in capsys.readouterr().err


def test_fetch_downloads_checks_and_refuses_a_bad_digest(tmp_path):
    from ncc.download import DataFile, fetch
    from ncc.errors import DatasetError

    origin = tmp_path / "origin.csv"
    origin.write_bytes(b"a,b\n1,2\n")
    digest = hashlib.sha256(origin.read_bytes()).hexdigest()
    with pytest.raises(DatasetError, match="sha256"):
        fetch(DataFile("x/bad.csv", origin.as_uri(), "0" * 64), root=tmp_path / "home")
    assert not (tmp_path / "home" / "x" / "bad.csv").exists()
    path = fetch(DataFile("x/good.csv", origin.as_uri(), digest), root=tmp_path / "home")
    assert path.read_bytes() == origin.read_bytes()
    origin.unlink()  # present now: no download needed
    assert fetch(DataFile("x/good.csv", origin.as_uri(), digest), root=tmp_path / "home") == path


@pytest.mark.training
def test_lstm_fold_reads_inst2vec_statements(experiment, tmp_path):
    """NCC's LSTM on inst2vec embeddings trained (without labels) on the kernels: one fold, one epoch."""
    import dataclasses

    from ncc.tasks.devmap import cross_validate, devmap_folds

    small = dataclasses.replace(experiment, output=tmp_path, epochs=1,
                                model_kwargs={"lstm": {"lstm_size": 16, "max_length": 64}},
                                settings={"device": "cpu"}, _embeddings=None)
    predictions = cross_validate(small, "lstm", "grouped", folds=[4])
    test = devmap_folds(experiment.table, "grouped")[4][1]
    assert set(predictions[test].tolist()) <= {0, 1}
    assert (predictions[np.setdiff1d(np.arange(680), test)] == -1).all()
    embeddings = small.embeddings()
    assert embeddings.dim == 200 and len(embeddings.vocabulary) > 100
    assert (tmp_path / "inst2vec-original" / "embeddings.npy").is_file()


def test_a_single_seed_table_has_no_empty_std_columns_and_published_figures_beside_their_rows(cache, tmp_path):
    from click.testing import CliRunner

    from ncc.cli import cli

    result = CliRunner().invoke(cli, ["reproduce", "devmap", "--models", "static,grewe", "--platform", "nvidia",
                                      "--protocol", "published", "--output", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "| protocol |" in line)  # after the bars' \r
    assert "_std" not in header and "nvidia_accuracy" in header and "published" in header
    assert "(published only)" not in result.output
    grewe = next(line for line in result.output.splitlines() if line.startswith("| published | grewe |"))
    assert "nvidia 72.94 % / 1.26x (NCC NeurIPS'18, published protocol)" in grewe
    assert "published figures of rows not in this table (lstm, ggnn: --models all runs them): deeptune" in result.output
    assert "_std" not in (tmp_path / "devmap.csv").read_text().splitlines()[0]
