"""Helpers of the task tests: the loops task's options and overrides, and a small test model.

A module of its own (not conftest.py) so that test modules, and the processes the DDP test spawns, import it
by a name no other test folder uses.
"""

from __future__ import annotations

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


def loops_overrides(cache, output, **more):
    """Config overrides for a small, fast loops run in ``output``."""
    values = {"task": "loops", "data.cache_dir": str(cache), "output": str(output), "progress": False,
              **{f"task.{k}": v for k, v in LOOPS_OPTIONS.items()}}
    values.update(more)
    return values
