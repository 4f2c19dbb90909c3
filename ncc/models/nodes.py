"""A baseline that reads no edges: each node's text (and the root selector) alone."""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from ncc.models.common import (NodeEmbedding, check_int, check_probability, check_readout, from_config,
                               mean_max_readout)


class NodeMLP(nn.Module):
    """An MLP over each node's embedding, blind to the graph's edges.

    What a program graph adds is measured against it: on node-level tasks every node is classified from
    its own text (and, for data-flow queries, whether it is the root), so an analysis whose answer
    depends on where a node lies (reachability, dominance) is out of its reach and the F1 it does get is
    what node text alone explains. Graph readout pools the node states (mean and max, as
    :class:`~ncc.models.RelationalGINE`), a bag of node texts.

    Args:
        num_classes: output logits per graph (or per node).
        vocab_size: rows of a learned embedding table; ignored when ``pretrained_embeddings`` is given.
        embedding_dim: columns of a learned table.
        pretrained_embeddings: a ``[V, D]`` matrix (numpy or torch).
        freeze_embeddings: keep the pretrained matrix fixed.
        hidden_size: width of the hidden layers.
        num_layers: hidden layers of the per-node MLP.
        readout: ``"graph"`` (logits ``[B, C]``) or ``"node"`` (logits ``[N, C]``).
        aux_dim: graph-level auxiliary inputs (graph readout only).
        dropout: dropout after every hidden layer.
        selector: append ProGraML's selector embedding (the batch must carry ``selector`` long ``[N]``).

    Shapes:
        input: a ``Batch`` with ``x`` long ``[N]`` and ``batch`` long ``[N]`` (edges are not read);
        output: logits ``[B, num_classes]`` (graph) or ``[N, num_classes]`` (node).
    """

    def __init__(self, num_classes: int = 2, vocab_size: int | None = None, embedding_dim: int = 64,
                 pretrained_embeddings: Any = None, freeze_embeddings: bool = True, hidden_size: int = 64,
                 num_layers: int = 2, readout: str = "graph", aux_dim: int = 0, dropout: float = 0.1,
                 selector: bool = False):
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes)
        self.readout, self.aux_dim = check_readout(readout, aux_dim)
        h = check_int("hidden_size", hidden_size)
        dropout = check_probability("dropout", dropout)
        self.embedding = NodeEmbedding(vocab_size, embedding_dim, pretrained_embeddings, freeze_embeddings,
                                       selector)
        layers, width = [], self.embedding.out_dim
        for _ in range(check_int("num_layers", num_layers)):
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.mlp = nn.Sequential(*layers)
        features = h if self.readout == "node" else 2 * h + self.aux_dim
        self.head = nn.Linear(features, self.num_classes)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides) -> "NodeMLP":
        """Build from a mapping of constructor arguments (unknown keys are a ValueError)."""
        return from_config(cls, config, **overrides)

    def forward(self, batch: Any) -> Tensor:
        h = self.mlp(self.embedding(batch.x, getattr(batch, "selector", None)))
        if self.readout == "node":
            return self.head(h)
        return self.head(mean_max_readout(h, batch, self.aux_dim))
