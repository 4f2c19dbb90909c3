"""The trainer: learning the loops task, determinism, checkpoint / kill / resume, DDP on 2 CPU processes."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch

from ncc.training import load_config, train
from ncc.training.config import ConfigError
from ncc.training.trainer import evaluate, load_checkpoint

from loops_helpers import loops_overrides, tiny_factory

TINY = {"model.name": "tiny", "model.hidden": 16, "optimizer.lr": 0.01, "data.batch_size": 16, "seed": 3}


def _tiny(cache, output, **more):
    return load_config(None, loops_overrides(cache, output, **{**TINY, **more}))


def _weights(path):
    return load_checkpoint(path)["model"]


@pytest.mark.training
@pytest.mark.slow
def test_ggnn_learns_loops_above_95_percent_on_held_out_graphs(loops_cache, tmp_path):
    config = load_config(None, loops_overrides(loops_cache, tmp_path / "run", **{
        "model.name": "ggnn", "model.steps": 8, "model.dropout": 0.0, "optimizer.lr": 0.003,
        "data.batch_size": 16, "epochs": 30, "patience": 8, "seed": 0}))
    result = train(config)
    report = result.report
    assert report["metrics"]["test"]["accuracy"] > 0.95, report["metrics"]
    assert report["train_graphs_per_s"] > 0 and report["wall_time_s"] > 0
    on_disk = json.loads((tmp_path / "run" / "report.json").read_text())
    assert on_disk["metrics"]["test"] == pytest.approx(report["metrics"]["test"])
    assert on_disk["versions"]["torch"] == torch.__version__ and "commit" in on_disk["git"]
    assert on_disk["config"]["model"]["steps"] == 8
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    # evaluate() reloads the best checkpoint and reproduces the test metrics.
    again = evaluate(tmp_path / "run", "test", progress=False)
    assert again["metrics"]["accuracy"] == pytest.approx(report["metrics"]["test"]["accuracy"])


def test_cpu_runs_are_deterministic(loops_cache, tmp_path):
    first = train(_tiny(loops_cache, tmp_path / "a", epochs=1, **{"model.dropout": 0.3}), model_factory=tiny_factory)
    second = train(_tiny(loops_cache, tmp_path / "b", epochs=1, **{"model.dropout": 0.3}), model_factory=tiny_factory)
    assert [h["train_loss"] for h in first.history] == [h["train_loss"] for h in second.history]
    for key, value in _weights(tmp_path / "a" / "checkpoint.pt").items():
        assert torch.equal(value, _weights(tmp_path / "b" / "checkpoint.pt")[key])


def test_interrupted_run_resumes_to_the_same_result(loops_cache, tmp_path):
    settings = {"epochs": 4, "model.dropout": 0.3, "optimizer.scheduler": "cosine"}
    whole = train(_tiny(loops_cache, tmp_path / "whole", **settings), model_factory=tiny_factory)

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_tiny(loops_cache, tmp_path / "cut", **settings), callbacks=[stop_after_two], model_factory=tiny_factory)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["epoch"] == 2
    with pytest.raises(ConfigError, match="already holds a run"):
        train(_tiny(loops_cache, tmp_path / "cut", **settings), model_factory=tiny_factory)
    with pytest.raises(ConfigError, match=r"other settings \(seed\)"):
        train(_tiny(loops_cache, tmp_path / "cut", resume=True, seed=4, **settings), model_factory=tiny_factory)
    resumed = train(_tiny(loops_cache, tmp_path / "cut", resume=True, **settings), model_factory=tiny_factory)
    assert resumed.report["resumed_from_epoch"] == 2
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in whole.history]
    assert resumed.report["metrics"]["test"] == whole.report["metrics"]["test"]
    cut, full = _weights(tmp_path / "cut" / "checkpoint.pt"), _weights(tmp_path / "whole" / "checkpoint.pt")
    assert all(torch.equal(cut[k], full[k]) for k in full)


def test_run_stopped_inside_an_epoch_resumes_from_its_last_step(loops_cache, tmp_path):
    """A checkpoint inside an epoch (here after every step) holds the steps done: the resumed run skips
    them and ends with the same losses and weights as a run that never stopped."""
    settings = {"epochs": 2, "model.dropout": 0.3, "checkpoint_minutes": 1e-9}
    whole = train(_tiny(loops_cache, tmp_path / "whole", **settings), model_factory=tiny_factory)
    steps_per_epoch = whole.history[0]["steps"]
    calls = {"train": 0}

    def stopping_factory(name, **kwargs):
        model = tiny_factory(name, **kwargs)
        forward = model.forward

        def counted(batch):
            if model.training:
                calls["train"] += 1
                if calls["train"] == steps_per_epoch + 4:  # the fourth step of the second epoch
                    raise KeyboardInterrupt
            return forward(batch)

        model.forward = counted
        return model

    with pytest.raises(KeyboardInterrupt):
        train(_tiny(loops_cache, tmp_path / "cut", **settings), model_factory=stopping_factory)
    saved = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert saved["epoch"] == 1 and saved["state"]["epoch_progress"]["steps"] == 3
    resumed = train(_tiny(loops_cache, tmp_path / "cut", resume=True, **settings), model_factory=tiny_factory)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in whole.history]
    assert resumed.history[-1]["steps"] == steps_per_epoch
    cut, full = _weights(tmp_path / "cut" / "checkpoint.pt"), _weights(tmp_path / "whole" / "checkpoint.pt")
    assert all(torch.equal(cut[k], full[k]) for k in full)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, cache: str, output: str, queue) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    config = load_config(None, loops_overrides(cache, output, **{**TINY, "data.batch_size": 8, "epochs": 3,
                                                                 "device": "cpu"}))
    result = train(config, model_factory=tiny_factory)
    queue.put((rank, [h["train_loss"] for h in result.history], result.report["metrics"]["val"]))


@pytest.mark.training
def test_ddp_on_two_cpu_processes_follows_the_single_process_curve(loops_cache, tmp_path):
    single = train(_tiny(loops_cache, tmp_path / "single", epochs=3, device="cpu"), model_factory=tiny_factory)
    context = torch.multiprocessing.get_context("spawn")
    queue = context.SimpleQueue()
    torch.multiprocessing.start_processes(_ddp_worker, args=(2, _free_port(), str(loops_cache),
                                                             str(tmp_path / "ddp"), queue),
                                          nprocs=2, join=True, start_method="spawn")
    results = sorted(queue.get() for _ in range(2))
    curves = [losses for _, losses, _ in results]
    assert curves[0] == curves[1]  # every rank reports the global loss
    expected = [h["train_loss"] for h in single.history]
    assert curves[0] == pytest.approx(expected, rel=1e-4), (curves[0], expected)
    assert results[0][2]["accuracy"] == pytest.approx(single.report["metrics"]["val"]["accuracy"], abs=1e-6)
    report = json.loads((tmp_path / "ddp" / "report.json").read_text())
    assert report["world_size"] == 2


def test_node_budget_training_and_evaluate_on_files(loops_cache, tmp_path):
    result = train(_tiny(loops_cache, tmp_path / "run", epochs=1, **{"data.node_budget": 1500, "data.batch_size": 1}),
                   model_factory=tiny_factory)
    assert result.history[0]["train_graphs"] == 280
    sources = tmp_path / "src"
    sources.mkdir()
    (sources / "loop.c").write_text("int f(int n) { int s = 0; while (n > 0) { s += n; n--; } return s; }\n")
    (sources / "flat.c").write_text("int g(int a) { if (a > 2) return a * 3; return a - 1; }\n")
    outcome = evaluate(tmp_path / "run" / "best.pt", str(sources), progress=False, model_factory=tiny_factory)
    assert outcome["graphs"] == 2 and 0.0 <= outcome["metrics"]["accuracy"] <= 1.0
