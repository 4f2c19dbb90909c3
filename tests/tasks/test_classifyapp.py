"""POJ-104 classification: the shipped split, the compiled datasets, the rows and the command line.

Real data: the manifest and archive in ``$NCC_DATA/poj104`` (skipped without them), compiled by ncc's clang
into a private cache; the datasets use two classes (200 programs under the quick protocol).
"""

from __future__ import annotations

import csv
import gzip
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ncc.cli import main
from ncc.errors import DatasetError
from ncc.training import get_task, load_config
from ncc.tasks import classifyapp
from ncc.training.config import ConfigError
from ncc.training.crossval import NEURAL_MODELS

DATA = Path(os.environ.get("NCC_DATA", "/nonexistent")) / "poj104"
pytestmark = pytest.mark.skipif(not (DATA / "manifest.csv.gz").is_file(), reason="$NCC_DATA/poj104 not present")
OPTIONS = {"task.protocol": "quick", "task.classes": 2}


@pytest.fixture(scope="module")
def programs():
    return classifyapp.load_programs()


@pytest.fixture(scope="module")
def prepared(cache):
    """The quick protocol's two-class datasets (node vocabulary), prepared once in the module's cache."""
    config = load_config(None, {"task": "classifyapp", "model.name": "ggnn", **OPTIONS})
    return get_task("classifyapp").prepare(config, progress=False)


def test_shipped_split_is_the_seeded_three_one_one_split(programs):
    shipped = classifyapp.load_split()
    assert shipped == classifyapp.make_split(programs)
    assert len(programs) == 52_000 and set(shipped) == {p.path for p in programs}
    per_class = Counter((p.label, shipped[p.path][0]) for p in programs)
    assert {per_class[(label, split)] for label in range(1, 105) for split in ("train",)} == {300}
    assert {per_class[(label, split)] for label in range(1, 105) for split in ("val", "test")} == {100}


def test_quick_protocol_is_a_subset_of_the_full_split(programs):
    full = classifyapp.select_programs(programs, "full")
    quick = classifyapp.select_programs(programs, "quick")
    assert {s: len(v) for s, v in full.items()} == {"train": 31_200, "val": 10_400, "test": 10_400}
    assert {s: len(v) for s, v in quick.items()} == {"train": 6_240, "val": 2_080, "test": 2_080}
    for split in ("train", "val", "test"):
        assert set(quick[split]) <= set(full[split])
    assert Counter(p.label for p in quick["val"]) == {label: 20 for label in range(1, 105)}
    paths = [p.path for split in full.values() for p in split]
    assert len(paths) == len(set(paths))  # no program in two splits
    three = classifyapp.select_programs(programs, "quick", classes=3)
    assert {p.label for split in three.values() for p in split} == {1, 2, 3}


def test_split_file_is_byte_stable_and_checked(programs, tmp_path):
    split = classifyapp.make_split(programs[:1000])
    first = classifyapp.write_split(split, tmp_path / "a.csv.gz").read_bytes()
    assert classifyapp.write_split(split, tmp_path / "b.csv.gz").read_bytes() == first
    assert classifyapp.load_split(tmp_path / "a.csv.gz") == split
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(gzip.compress(b"path,split,rank\n1/2.cpp,holdout,0\n"))
    with pytest.raises(DatasetError, match="holdout") as error:
        classifyapp.load_split(bad)
    assert str(bad) in str(error.value)


def test_missing_data_names_the_file(tmp_path):
    with pytest.raises(DatasetError, match="manifest.csv.gz") as error:
        classifyapp.load_programs(tmp_path)
    assert str(tmp_path) in str(error.value)


def _unpack_then_read(cache: str, start, answers) -> None:
    start.wait()
    folder = classifyapp.source_folder(cache=cache)
    paths = [folder / program.path for program in classifyapp.load_programs()]
    missing, passes = 0, 0
    deadline = time.monotonic() + 3.0  # keep reading while the other process may still be unpacking
    while time.monotonic() < deadline or passes < 2:
        missing = max(missing, sum(not path.is_file() for path in paths))
        passes += 1
    answers.put((str(folder), missing))


def test_processes_unpacking_at_once_never_remove_files_another_reads(tmp_path):
    """Two runs started together (``train_row`` for two seeds) once lost 4,056 programs to a late unpacker."""
    context = multiprocessing.get_context("fork")
    start, answers = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_unpack_then_read, args=(str(tmp_path), start, answers)) for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [answers.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert [missing for _, missing in results] == [0, 0]
    assert len({folder for folder, _ in results}) == 1
    assert [p.name for p in (tmp_path / "poj104").iterdir() if p.is_dir()] == [Path(results[0][0]).name]


def test_folders_of_earlier_versions_are_removed_and_the_current_one_kept(tmp_path):
    import hashlib

    digest = hashlib.sha256((DATA / "poj104_codexglue.tar.gz").read_bytes()).hexdigest()
    current = tmp_path / "poj104" / f"sources-{digest[:16]}"
    legacy = tmp_path / "poj104" / "sources-8167433-1796458180"
    for folder in (current, legacy):
        (folder / "1").mkdir(parents=True)
        (folder / "1" / "1.cpp").write_text("int main() { return 0; }\n")
    (current / ".complete").write_text("")
    assert classifyapp.source_folder(cache=tmp_path) == current
    assert (current / "1" / "1.cpp").is_file() and not legacy.exists()


def test_impossible_options_are_rejected():
    task = get_task("classifyapp")
    for options, key in (({"protocol": "half"}, "task.protocol"), ({"classes": 1}, "task.classes"),
                         ({"opt_levels": "0,0"}, "task.opt_levels"), ({"opt_levels": "4"}, "task.opt_levels"),
                         ({"split_file": "/nonexistent.csv.gz"}, "task.split_file")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            task.check_options(options)


def test_every_neural_row_has_valid_settings_and_the_annealed_rows_train_every_epoch():
    for protocol in classifyapp.TRAIN_SETTINGS:
        for model in NEURAL_MODELS:
            settings = classifyapp.row_settings(model, protocol)
            config = load_config(None, {"task": "classifyapp", "model.name": model, "task.protocol": protocol,
                                        **settings})
            if model in ("lstm", "rgine"):  # cosine to 0 over the epochs: an early stop would cut it short
                assert (config.optimizer.scheduler, config.patience) == ("cosine", 0), (model, protocol)
    assert classifyapp.row_settings("rgine", "full", {"epochs": 3})["epochs"] == 3


def test_prepare_compiles_the_programs_and_lists_every_failure(prepared):
    info = prepared.info
    assert info["programs"] == 200 and info["compiled_programs"] >= 190  # POJ-104 compiles at ~98 %
    with open(info["failures_file"], newline="") as handle:
        failures = list(csv.DictReader(handle))
    assert len(failures) == info["programs"] - info["compiled_programs"]
    assert all(row["reason"] and row["path"].endswith(".cpp") for row in failures)
    sizes = {split: len(prepared.splits[split]) for split in ("train", "val", "test")}
    assert sum(sizes.values()) == info["compiled_programs"] and 115 <= sizes["train"] <= 120
    for split in ("train", "val", "test"):
        assert set(prepared.splits[split].labels.tolist()) == {0, 1}
    assert prepared.num_classes == 2 and prepared.pretrained is None


def test_a_second_prepare_compiles_and_processes_nothing(prepared):
    from ncc.frontend import compile_batch

    config = load_config(None, {"task": "classifyapp", "model.name": "ggnn", **OPTIONS})
    again = get_task("classifyapp").prepare(config, progress=False)
    assert not any(again.splits[s].reprocessed for s in ("train", "val", "test"))
    assert [again.splits[s].key for s in ("train", "val", "test")] == \
        [prepared.splits[s].key for s in ("train", "val", "test")]
    folder = classifyapp.source_folder()
    sample = [folder / p.path for p in classifyapp.select_programs(classifyapp.load_programs(), "quick", 2)["val"]]
    result = compile_batch(sample, dialect="poj104", opt_level=0, workers=1, progress=False)
    assert result.cache_hits == len(sample) and result.compiled == 0


def test_bag_of_nodes_tells_two_classes_apart(prepared):
    metrics = classifyapp.bag_of_nodes(prepared)
    assert metrics["test"]["accuracy"] > 0.85  # two balanced classes: chance is 0.5


@pytest.mark.training
def test_a_neural_row_trains_once_and_is_reused(prepared, tmp_path):
    settings = {"epochs": 1, "data.batch_size": 32}
    report = classifyapp.train_row("rgine", 0, tmp_path, "quick", classes=2, settings=settings, progress=False)
    assert report["task"] == "classifyapp" and report["epochs_run"] == 1
    assert report["data"]["train"]["graphs"] == len(prepared.splits["train"])
    again = classifyapp.train_row("rgine", 0, tmp_path, "quick", classes=2, settings=settings, progress=False)
    assert again["finished_at"] == report["finished_at"]  # read back, not trained again
    run = report["config"]["output"]
    logits, labels = classifyapp.split_outputs(run, "test")
    assert logits.shape == (len(prepared.splits["test"]), 2) and set(labels.tolist()) == {0, 1}
    features, _ = classifyapp.split_outputs(run, "test", features=True)
    assert features.shape[0] == len(labels) and features.shape[1] > 2  # pooled node states, not logits
    from ncc.training import evaluate

    outcome = evaluate(Path(run) / "best.pt", progress=False)
    assert outcome["metrics"]["accuracy"] == pytest.approx(report["metrics"]["test"]["accuracy"])
    assert outcome["metrics"]["accuracy"] == pytest.approx(float(np.mean(logits.argmax(axis=1) == labels)))


def test_lstm_reads_inst2vec_statements_trained_on_the_training_split(prepared):
    config = load_config(None, {"task": "classifyapp", "model.name": "lstm", **OPTIONS})
    data = get_task("classifyapp").prepare(config, progress=False)
    assert isinstance(data.encoder, classifyapp.ModuleStatementIds)
    assert data.pretrained.shape == (len(data.encoder), 200)
    ids = data.splits["train"]._data.x.reshape(-1).numpy()
    types = data.splits["train"]._data.node_type.reshape(-1).numpy()
    statements = ids[types == 0]
    known = np.count_nonzero(np.abs(data.pretrained[statements]).sum(axis=1) > 0)
    assert known / len(statements) > 0.9  # statements of the training split have trained vectors


def test_ggnn_reads_fine_tuned_inst2vec_statements_as_programls_poj104_model(prepared, tmp_path):
    settings = {"epochs": 1, "data.batch_size": 32, "model.hidden_size": 16}  # the row's own features
    report = classifyapp.train_row("ggnn", 0, tmp_path, "quick", classes=2, settings=settings, progress=False)
    from ncc.training.trainer import load_checkpoint

    payload = load_checkpoint(report["config"]["output"])
    encoder = payload["encoder"]
    assert isinstance(encoder, classifyapp.ModuleStatementIds)
    start = encoder.embeddings.feature_matrix()
    table = payload["model"]["embedding.table.weight"].numpy()
    assert table.shape == start.shape == (len(encoder), 200)
    assert not np.allclose(table, start)  # fine-tuned from the inst2vec matrix, not a fresh table
    logits, labels = classifyapp.split_outputs(report["config"]["output"], "test")
    assert logits.shape == (len(labels), 2)


def test_reproduce_command_rejects_options_of_other_tasks(capsys):
    for arguments, message in ((["--protocol", "published"], "classifyapp has no protocol 'published'; choose from "
                                                             "full, quick"),
                               (["--protocol", "full", "--protocol", "quick"], "takes one protocol"),
                               (["--models", "svm"], "unknown classifyapp row 'svm'"),
                               (["--platform", "amd"], "classifyapp has no platform 'amd'; it has none"),
                               (["--transfer", "merged"], "classifyapp has no option 'transfer'"),
                               (["--folds", "1"], "no folds")):
        with pytest.raises(SystemExit) as exit_info:
            main(["reproduce", "classifyapp", *arguments])
        assert exit_info.value.code == 1
        assert message in capsys.readouterr().err


def test_reproduce_command_prints_the_table(prepared, tmp_path, capsys, monkeypatch):
    main(["reproduce", "classifyapp", "--classes", "2", "--models", "bag,bag-statements", "-o", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| bag |" in out and "| ProGraML GGNN (Cummins et al., 2021) | (published) |" in out
    assert "| bag-statements | inst2vec statement counts" in out
    with open(tmp_path / "classifyapp.csv", newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert float(rows["bag"]["test_accuracy"]) > 85 and rows["bag"]["programs"].endswith("/200")
    assert float(rows["bag-statements"]["test_accuracy"]) > 85
    with open(tmp_path / "compile-failures.csv", newline="") as handle:
        failed = list(csv.DictReader(handle))
    assert len(failed) == 200 - int(rows["bag"]["programs"].split("/")[0]) and "compile-failures.csv" in out
    assert len(list((tmp_path / "quick").glob("bag*/report.json"))) == 2

    def refit(*_):
        raise AssertionError("a bag row was fitted again")

    monkeypatch.setattr(classifyapp, "bag_of_nodes", refit)  # the second run reads the rows' reports
    main(["reproduce", "classifyapp", "--classes", "2", "--models", "bag,bag-statements", "-o", str(tmp_path)])
    with open(tmp_path / "classifyapp.csv", newline="") as handle:
        assert {row["model"]: row for row in csv.DictReader(handle)} == rows


def test_a_stopped_reproduce_lists_its_unfinished_row_and_resumes_it(prepared, tmp_path):
    """SIGTERM in the middle of a neural row: exit 130, the table lists the row as incomplete, and the next
    run resumes it from its checkpoint and finishes it."""
    command = [sys.executable, "-m", "ncc.cli", "reproduce", "classifyapp", "--classes", "2", "--models", "bag,rgine",
               "--epochs", "4", "-o", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob("quick/rgine-*/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    with open(tmp_path / "classifyapp.csv", newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert rows["bag"]["status"] == "done" and float(rows["bag"]["test_accuracy"]) > 85
    assert rows["rgine"]["status"].startswith("seed 0: incomplete: epoch ") and rows["rgine"]["test_accuracy"] == ""
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    with open(tmp_path / "classifyapp.csv", newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert rows["rgine"]["status"] == "done" and float(rows["rgine"]["epochs"]) == 4
    report = json.loads(next(tmp_path.glob("quick/rgine-*/report.json")).read_text())
    assert report["resumed_from_epoch"] is not None


def test_rebuild_from_the_origin_layout_gives_the_pinned_programs(programs, tmp_path):
    """The origin's layout (``<repo>-<commit>/codexglue/<label>/<n>.cpp``, label 65 with every program twice)."""
    import io
    import tarfile

    labels = {3, 65}
    with open(DATA / "removed_duplicates.csv", newline="") as handle:
        twins = [row for row in csv.DictReader(handle) if int(row["label"]) in labels]
    assert len(twins) == 500  # label 65 held each of its programs twice
    origin = tmp_path / "origin.tar.gz"
    with tarfile.open(DATA / "poj104_codexglue.tar.gz") as source, tarfile.open(origin, "w:gz") as target:
        texts = {m.name[len("poj104/"):]: source.extractfile(m).read() for m in source
                 if m.isfile() and int(m.name.split("/")[1]) in labels}
        copies = {f"{row['label']}/{row['removed_file']}": texts[f"{row['label']}/{row['identical_to_kept_file']}"]
                  for row in twins}
        for path, data in {**texts, **copies}.items():
            info = tarfile.TarInfo(f"dataset-poj-104-28790c7/codexglue/{path}")
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    wanted = [p for p in programs if p.label in labels]
    expected = classifyapp.content_digest((p.path, p.sha1) for p in wanted)
    folder = classifyapp.rebuild_from_origin(origin, tmp_path / "poj104", expected)
    assert [(p.label, p.path, p.sha1) for p in classifyapp.load_programs(folder)] == \
        [(p.label, p.path, p.sha1) for p in wanted]
    with tarfile.open(folder / "poj104_codexglue.tar.gz") as rebuilt:
        assert len([m for m in rebuilt if m.isfile()]) == 1000
    with pytest.raises(DatasetError, match="not the pinned POJ-104 programs"):
        classifyapp.rebuild_from_origin(origin, tmp_path / "other", classifyapp.CONTENT_SHA256)
    assert not (tmp_path / "other").exists()


def _ddp_worker(rank: int, world: int, port: int, output: str, queue) -> None:
    import torch

    from ncc.training import train

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    config = load_config(None, {"task": "classifyapp", "model.name": "rgine", "model.hidden_size": 16,
                                "model.num_layers": 2, "epochs": 1, "device": "cpu", "output": output,
                                "progress": False, **OPTIONS})
    result = train(config)
    queue.put((rank, result.history[0]["train_loss"], result.report["world_size"]))


@pytest.mark.training
def test_two_process_ddp_run_trains_on_the_prepared_splits(prepared, tmp_path):
    """What ``torchrun --nproc_per_node 2 -m ncc.cli train classifyapp ...`` does, on CPU with gloo."""
    import socket

    import torch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = torch.multiprocessing.get_context("spawn").SimpleQueue()
    torch.multiprocessing.start_processes(_ddp_worker, args=(2, port, str(tmp_path / "ddp"), queue), nprocs=2,
                                          join=True, start_method="spawn")
    results = sorted(queue.get() for _ in range(2))
    assert results[0][1] == results[1][1] and all(world == 2 for _, _, world in results)
    report = json.loads((tmp_path / "ddp" / "report.json").read_text())
    assert report["data"]["test"]["graphs"] == len(prepared.splits["test"])
    assert 0.0 <= report["metrics"]["test"]["accuracy"] <= 1.0


def test_every_variant_of_a_program_stays_in_its_split(programs, prepared):
    chosen = classifyapp.select_programs(programs, "quick", classes=2)
    compiled = classifyapp.compile_programs(chosen, ("0", "2"), progress=False)
    split_of: dict[str, set] = {}
    levels: dict[str, set] = {}
    for split, items in compiled.entries.items():
        for program, level, ir in items:
            split_of.setdefault(program.path, set()).add(split)
            levels.setdefault(program.path, set()).add(level)
            assert ir.is_file()
    assert all(len(splits) == 1 for splits in split_of.values())
    assert sum(levels[path] == {"0", "2"} for path in levels) >= 0.95 * len(levels)
    assert compiled.compiled_programs == len(levels) and compiled.programs == 200
