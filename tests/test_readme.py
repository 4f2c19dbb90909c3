"""The README's library examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_library_examples_run_and_train_a_ggnn_for_an_epoch(tmp_path, monkeypatch):
    from ncc.models import GGNN

    first, second = python_blocks()[:2]
    monkeypatch.chdir(tmp_path)  # the first example saves sq.json
    exec(compile(first, "README library block 1", "exec"), {})
    assert (tmp_path / "sq.json").is_file()
    scope: dict = {}
    torch.manual_seed(0)
    exec(compile(second, "README library block 2", "exec"), scope)
    torch.manual_seed(0)
    untrained = GGNN(num_classes=2, vocab_size=len(scope["vocabulary"]))
    trained = scope["model"]
    assert all(item.x.shape == (item.num_nodes,) for item in scope["data"])
    assert any(not torch.equal(a, b) for a, b in zip(untrained.parameters(), trained.parameters())), \
        "one epoch of the example changes the model"
    trained.eval()
    from torch_geometric.data import Batch

    assert trained(Batch.from_data_list(scope["data"])).shape == (len(scope["data"]), 2)


def test_the_command_line_section_compiles_and_graphs_as_written(tmp_path):
    """`ncc compile` then `ncc graph` from the README's block, run as written (one format of the choices)."""
    import os
    import shlex
    import subprocess
    import sys

    block = re.search(r"## Command line\n\n```\n(.*?)```", README.read_text(), flags=re.S).group(1)
    lines = {line.split()[1]: line.split("#")[0].strip() for line in block.splitlines() if line.startswith("ncc ")}
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.c").write_text("int a(int x) { return x + 1; }\n")
    (tmp_path / "src" / "sub" / "b.c").write_text("int b(int x) { return x * 2; }\n")
    env = {**os.environ, "NCC_CACHE": str(tmp_path / "cache")}
    for name in ("compile", "graph"):
        arguments = shlex.split(lines[name].replace("json|npz|networkx|pyg|dot", "json"))
        run = subprocess.run([sys.executable, "-m", "ncc.cli", *arguments[1:]], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300, env=env)
        assert run.returncode == 0 and " 0 failed" in run.stdout, (lines[name], run.stdout, run.stderr)
    found = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("graphs/**/*.json"))
    assert found == ["graphs/ir/src/a.json", "graphs/ir/src/sub/b.json", "graphs/src/a.json", "graphs/src/sub/b.json"]
