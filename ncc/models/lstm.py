"""NCC's inst2vec LSTM over a program's sequence of statement embeddings."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ncc.graph.program_graph import INSTRUCTION
from ncc.models.common import (READOUTS, NodeEmbedding, aux_input, check_choice, check_int, check_probability,
                               from_config, graph_index)


class Inst2vecLSTM(nn.Module):
    """The task model of NCC: two LSTM layers over inst2vec statement embeddings.

    Neural Code Comprehension: A Learnable Representation of Code Semantics (Ben-Nun et al., NeurIPS
    2018, https://arxiv.org/abs/1806.07336). NCC reads a program as the sequence of its normalised LLVM
    IR statements, embeds each with inst2vec (200 dimensions, frozen), and classifies it with
    ``LSTM(200) - LSTM(200)`` (the last state of the second layer), concatenates auxiliary inputs
    (devmap's transfer size and work-group size), then ``BatchNorm - Dense(32, ReLU) - Dense(C)``.

    Here the sequence of a graph is its instruction nodes in node order (textual order), without the
    external node (node 0 of each graph); variables and constants are not statements and are skipped.
    The model returns logits (NCC applied a sigmoid or softmax inside the model). NCC's extra output on
    the LSTM state alone (a loss weight of 0.2 in devmap) is a training trick of the trainer, not part of
    the model's answer, and is left out. Graph-level only: ``readout="node"`` is rejected.

    Args:
        num_classes: output logits per graph.
        vocab_size: rows of a learned embedding table; ignored when ``pretrained_embeddings`` is given.
        embedding_dim: columns of a learned table (inst2vec: 200).
        pretrained_embeddings: a ``[V, D]`` matrix (numpy or torch), e.g. inst2vec's
            ``Embeddings.feature_matrix()``.
        freeze_embeddings: keep the pretrained matrix fixed (NCC: frozen).
        lstm_size: units of each LSTM layer (NCC: 200).
        lstm_layers: stacked LSTM layers (NCC: 2).
        dense_size: units of the dense layer after batch norm (NCC: 32).
        readout: ``"graph"`` only; present so every model takes the same arguments.
        aux_dim: graph-level auxiliary inputs (0 for none).
        max_length: keep each graph's first ``max_length`` statements (None: all of them).
        dropout: dropout before the dense layers (NCC: none).

    Shapes:
        input: a ``Batch`` with ``x`` long ``[N]``, ``node_type`` long ``[N]``, ``batch`` long ``[N]``,
        ``aux`` float ``[B, aux_dim]`` when ``aux_dim > 0``; output: logits ``[B, num_classes]``.
        In training mode the batch norm needs more than one graph per batch.
    """

    def __init__(self, num_classes: int = 2, vocab_size: int | None = None, embedding_dim: int = 200,
                 pretrained_embeddings: Any = None, freeze_embeddings: bool = True, lstm_size: int = 200,
                 lstm_layers: int = 2, dense_size: int = 32, readout: str = "graph", aux_dim: int = 0,
                 max_length: int | None = None, dropout: float = 0.0):
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes)
        if check_choice("readout", readout, READOUTS) != "graph":
            raise ValueError("Inst2vecLSTM supports readout='graph' only: it reads a whole program as one sequence")
        self.readout = readout
        self.aux_dim = check_int("aux_dim", aux_dim, minimum=0)
        self.max_length = None if max_length is None else check_int("max_length", max_length)
        dropout = check_probability("dropout", dropout)
        self.embedding = NodeEmbedding(vocab_size, embedding_dim, pretrained_embeddings, freeze_embeddings)
        self.lstm = nn.LSTM(self.embedding.out_dim, check_int("lstm_size", lstm_size),
                            num_layers=check_int("lstm_layers", lstm_layers), batch_first=True)
        features = lstm_size + self.aux_dim
        self.head = nn.Sequential(nn.BatchNorm1d(features), nn.Dropout(dropout),
                                  nn.Linear(features, check_int("dense_size", dense_size)), nn.ReLU(),
                                  nn.Linear(dense_size, self.num_classes))

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides) -> "Inst2vecLSTM":
        """Build from a mapping of constructor arguments (unknown keys are a ValueError)."""
        return from_config(cls, config, **overrides)

    def sequences(self, batch: Any) -> tuple[Tensor, Tensor]:
        """Padded statement embeddings ``[B, L, D]`` and the length of each sequence ``[B]`` (at least 1)."""
        from torch_geometric.utils import to_dense_batch

        x = batch.x
        index, num_graphs = graph_index(batch, x.shape[0], x.device)
        first = torch.ones_like(index, dtype=torch.bool)
        first[1:] = index[1:] != index[:-1]
        keep = (batch.node_type == INSTRUCTION) & ~first
        embedded = self.embedding(x)[keep]
        padded, mask = to_dense_batch(embedded, index[keep], batch_size=num_graphs, max_num_nodes=self.max_length)
        lengths = mask.sum(dim=1)
        if padded.shape[1] == 0:  # no graph has a statement
            padded = padded.new_zeros(num_graphs, 1, padded.shape[2])
        return padded, lengths.clamp(min=1)

    def _last_state(self, padded: Tensor, lengths: Tensor) -> Tensor:
        # The top layer's output at step length-1 is the state after the real statements (the padding
        # comes later and cannot reach back). On CPU this is 2.5-7x faster than a packed sequence, which
        # runs step by step outside oneDNN's fused kernel.
        output, _ = self.lstm(padded)
        last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, output.shape[2])
        return output.gather(1, last).squeeze(1)

    def forward(self, batch: Any) -> Tensor:
        padded, lengths = self.sequences(batch)
        # oneDNN's CPU LSTM has no bfloat16 kernel: under CPU autocast the LSTM runs in float32.
        if padded.device.type == "cpu":
            with torch.autocast(device_type="cpu", enabled=False):
                state = self._last_state(padded.float(), lengths)
        else:
            state = self._last_state(padded, lengths)
        features = state
        aux = aux_input(batch, self.aux_dim, features.shape[0])
        if aux is not None:
            features = torch.cat([aux.to(features.dtype), features], dim=-1)
        return self.head(features)
