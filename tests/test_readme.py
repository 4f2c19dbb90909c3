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
