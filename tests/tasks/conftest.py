"""Shared inputs of the task tests: the loops task's data, built once per session, and a small test model."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_geometric.nn import GCNConv, global_mean_pool

#: Small loops data: quick to compile (about 10 s on two cores, then cached for the session).
LOOPS_OPTIONS = {"programs": 400, "max_functions": 2, "max_statements": 3}


class TinyGCN(nn.Module):
    """Two GCN layers over node-text embeddings and edge-flow-typed self information, mean-pooled.

    A real torch_geometric model for exercising the trainer independently of :mod:`ncc.models`.
    """

    def __init__(self, num_classes: int = 2, vocab_size: int = 10, hidden: int = 16, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden)
        self.conv1 = GCNConv(hidden, hidden)
        self.conv2 = GCNConv(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, batch):
        h = self.embedding(batch.x)
        h = torch.relu(self.conv1(h, batch.edge_index))
        h = self.dropout(h)
        h = torch.relu(self.conv2(h, batch.edge_index))
        return self.head(global_mean_pool(h, batch.batch))


def tiny_factory(name: str, **kwargs):
    """A model factory for the trainer: ``tiny`` is :class:`TinyGCN`."""
    if name != "tiny":
        raise ValueError(f"unknown model {name!r}")
    return TinyGCN(**kwargs)


@pytest.fixture(scope="session")
def loops_cache(tmp_path_factory):
    """A cache folder holding the compiled loops programs and processed datasets for LOOPS_OPTIONS."""
    from ncc.tasks import get_task, load_config

    cache = tmp_path_factory.mktemp("ncc-cache")
    config = load_config(None, {"task": "loops", "data.cache_dir": str(cache), "progress": False,
                                **{f"task.{k}": v for k, v in LOOPS_OPTIONS.items()}})
    get_task("loops").prepare(config, progress=False)
    return cache


def loops_overrides(cache, output, **more):
    """Config overrides for a small, fast loops run in ``output``."""
    values = {"task": "loops", "data.cache_dir": str(cache), "output": str(output), "progress": False,
              **{f"task.{k}": v for k, v in LOOPS_OPTIONS.items()}}
    values.update(more)
    return values
