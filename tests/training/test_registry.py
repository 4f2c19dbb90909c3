"""The task registry and the one interface ``ncc train`` and ``ncc reproduce`` dispatch through."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ncc.cli import main
from ncc.errors import NccError
from ncc.training import SupervisedTask, TableResult, Task, get_task, register_task, task_names
from ncc.training.registry import TASKS


def test_every_task_of_the_package_loads_and_declares_its_table():
    assert {"loops", "dataflow", "devmap", "threadcoarsening", "classifyapp"} <= set(task_names())
    for name in task_names():
        task = get_task(name)
        assert isinstance(task, Task) and task.name == name
        assert task.level in ("graph", "node") and task.monitor in task.metric_names
        assert set(task.fast_rows) <= set(task.rows), name
        assert dataclasses.is_dataclass(task.options_class)
    assert isinstance(get_task("dataflow"), SupervisedTask) and get_task("dataflow").level == "node"
    assert get_task("devmap").platforms == ("amd", "nvidia") and get_task("devmap").protocols == ("published", "grouped")


def test_an_unknown_task_names_the_tasks_there_are():
    with pytest.raises(NccError, match="unknown task 'nosuch'; choose one of classifyapp, dataflow, devmap"):
        get_task("nosuch")


@dataclasses.dataclass(frozen=True)
class EchoOptions:
    platform: str = "p1"


class EchoTask(Task):
    """A task the command line has never heard of: it answers with what it was asked."""

    name = "echo-test"
    options_class = EchoOptions
    rows = {"a": "nothing", "b": "nothing either"}
    fast_rows = ("a",)
    platforms = ("p1", "p2")
    table_options = ("source",)

    def train(self, config):
        return {"output": f"runs/{config.model.name}", "accuracy": 0.25, "rows": 3}

    def reproduce(self, output, request):
        self.check_request(request)
        output.mkdir(parents=True, exist_ok=True)
        rows = [{"row": row, "platforms": list(request.platforms), "seeds": list(request.seeds),
                 "options": dict(request.options)} for row in request.rows]
        (output / "echo.md").write_text(json.dumps(rows) + "\n")
        (output / "echo.csv").write_text("")
        return TableResult(rows, output / "echo.md", output / "echo.csv", ["a note"])


@pytest.fixture()
def echo():
    register_task(EchoTask())
    yield
    TASKS.pop("echo-test")


def test_train_dispatches_to_any_registered_task(echo, capsys):
    main(["train", "echo-test", "--model", "ggnn", "--platform", "p2"])
    assert capsys.readouterr().out.strip() == "runs/ggnn: accuracy 0.2500, rows 3"


def test_reproduce_passes_the_declared_request_and_prints_the_table(echo, tmp_path, capsys):
    main(["reproduce", "echo-test", "--models", "b", "--platform", "p2", "--seeds", "2", "--source", "ncc-ir",
          "-o", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert json.loads(out[0]) == [{"row": "b", "platforms": ["p2"], "seeds": [0, 1], "options": {"source": "ncc-ir"}}]
    assert out[1] == "a note" and out[2].startswith("saved: ")
    main(["reproduce", "echo-test", "-o", str(tmp_path)])
    assert json.loads(capsys.readouterr().out.splitlines()[0])[0]["row"] == "a"  # the fast rows by default


@pytest.mark.parametrize("arguments, message", [
    (["--platform", "p9"], "echo-test has no platform 'p9'; choose from p1, p2"),
    (["--protocol", "grouped"], "echo-test has no protocol 'grouped'; it has none"),
    (["--transfer", "merged"], "echo-test has no option 'transfer'; choose from source"),
    (["--models", "c"], "unknown echo-test row 'c'; choose from a, b or all"),
])
def test_reproduce_refuses_what_the_task_does_not_declare(echo, tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as stop:
        main(["reproduce", "echo-test", "-o", str(tmp_path), *arguments])
    assert stop.value.code == 1
    assert capsys.readouterr().err.strip() == f"error: {message}"


def test_a_task_without_a_table_says_so(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["reproduce", "loops", "-o", str(tmp_path)])
    assert capsys.readouterr().err.strip() == "error: task 'loops' has no table to reproduce"


def test_help_lists_the_tasks_with_their_models_and_rows():
    from click.testing import CliRunner

    from ncc.cli import cli

    train = " ".join(CliRunner().invoke(cli, ["train", "--help"]).output.split())
    reproduce = " ".join(CliRunner().invoke(cli, ["reproduce", "--help"]).output.split())
    for name in task_names():
        assert f" {name} " in train.split("Tasks:")[1] and f" {name} " in reproduce.split("Tasks:")[1]
    assert "models: ggnn, lstm, mlp, rgine" in train
    assert "devmap rows static, aux, random, grewe, graph-gbt, ncc-trees, lstm, ggnn, rgine (default: static, aux, " \
           "random, grewe, graph-gbt, ncc-trees); platforms amd, nvidia; protocols published, grouped" in reproduce
    assert "loops no table" in reproduce and "dataflow rows ggnn, ggnn-stable, rgine, mlp (default: ggnn); " \
        "platforms reachability, dominance, datadep, liveness, subexpressions; protocols quick, corpus" in reproduce
