"""Pieces the models share: argument checks, node embeddings, sinusoidal position encodings, edge types.

Edge types: a program graph has three flows (0 control, 1 data, 2 call). Message passing runs along
each edge and against it, so every model sees six edge types: ``flow`` for the forward direction and
``flow + 3`` for the backward one (:func:`bidirectional_edges`).
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

NUM_FLOWS = 3
NUM_EDGE_TYPES = 2 * NUM_FLOWS
READOUTS = ("graph", "node")


# -- argument checks --------------------------------------------------------------------------------
def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int at least ``minimum``, else ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_readout(readout: Any, aux_dim: Any) -> tuple[str, int]:
    """``(readout, aux_dim)`` checked: ``"graph"`` or ``"node"``, and auxiliary inputs only with graph readout."""
    readout = check_choice("readout", readout, READOUTS)
    aux_dim = check_int("aux_dim", aux_dim, minimum=0)
    if aux_dim and readout == "node":
        raise ValueError("aux_dim > 0 needs readout='graph': auxiliary inputs are per graph")
    return readout, aux_dim


def check_probability(name: str, value: Any) -> float:
    """``value`` as a float in [0, 1), else ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def from_config(cls, config: Mapping[str, Any], **overrides):
    """Build ``cls`` from a mapping of constructor arguments; unknown keys are a ValueError naming them."""
    arguments = {**dict(config), **overrides}
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(arguments) - set(allowed))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown argument(s) {', '.join(unknown)}; "
                         f"expected some of {', '.join(allowed)}")
    return cls(**arguments)


# -- node features ----------------------------------------------------------------------------------
class NodeEmbedding(nn.Module):
    """Node feature ids to vectors: a learned table, or a pretrained matrix (frozen or fine-tuned).

    Optionally appends ProGraML's selector embedding: a fixed two-dimensional vector per node,
    ``[value, 0]`` for unselected and ``[0, value]`` for selected nodes, that marks the root node of a
    data-flow query (ProGraML used ``value = 50``).

    Args:
        vocab_size: rows of a learned table (ignored when ``pretrained`` is given).
        embedding_dim: columns of a learned table.
        pretrained: ``[V, D]`` matrix (numpy or torch), e.g. ``Embeddings.feature_matrix()``.
        freeze: keep the pretrained matrix fixed.
        selector: append the selector embedding (the batch must then carry ``selector`` long ``[N]``).
        selector_value: the magnitude of the selector embedding.

    Shapes:
        input ``x`` long ``[N]`` (and ``selector`` long ``[N]``); output float ``[N, out_dim]``.
    """

    def __init__(self, vocab_size: int | None, embedding_dim: int, pretrained: Any = None, freeze: bool = True,
                 selector: bool = False, selector_value: float = 50.0):
        super().__init__()
        if pretrained is not None:
            matrix = torch.as_tensor(np.asarray(pretrained) if not isinstance(pretrained, Tensor) else pretrained,
                                     dtype=torch.float32)
            if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < 1:
                raise ValueError(f"pretrained_embeddings must be a [V, D] matrix, got shape {tuple(matrix.shape)}")
            if not torch.isfinite(matrix).all():
                raise ValueError("pretrained_embeddings holds NaN or infinite values")
            self.table = nn.Embedding.from_pretrained(matrix.clone(), freeze=bool(freeze))
        else:
            if vocab_size is None:
                raise ValueError("give vocab_size (a learned embedding table) or pretrained_embeddings")
            self.table = nn.Embedding(check_int("vocab_size", vocab_size), check_int("embedding_dim", embedding_dim))
        self.selector = bool(selector)
        self.register_buffer("selector_table", torch.tensor([[selector_value, 0.0], [0.0, selector_value]]),
                             persistent=False)

    @property
    def num_embeddings(self) -> int:
        return int(self.table.num_embeddings)

    @property
    def out_dim(self) -> int:
        return int(self.table.embedding_dim) + (2 if self.selector else 0)

    def forward(self, x: Tensor, selector: Tensor | None = None) -> Tensor:
        if x.dtype != torch.long or x.ndim != 1:
            raise ValueError(f"x must be long [N] feature ids, got {x.dtype} {tuple(x.shape)}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.num_embeddings):
            raise ValueError(f"feature ids must lie in [0, {self.num_embeddings}), got "
                             f"[{int(x.min())}, {int(x.max())}]: is the vocabulary the model was built for?")
        h = self.table(x)
        if self.selector:
            if selector is None:
                raise ValueError("this model was built with selector=True: the batch needs 'selector' long [N]")
            h = torch.cat([h, self.selector_table[selector.long().clamp(0, 1)]], dim=-1)
        return h


# -- edges ------------------------------------------------------------------------------------------
def sinusoidal_encoding(num_positions: int, dim: int) -> Tensor:
    """The fixed sinusoidal encodings of positions ``0 .. num_positions - 1`` (Vaswani et al. 2017).

    ``PE[p, 2i] = sin(p / 10000^(2i/dim))``, ``PE[p, 2i+1] = cos(p / 10000^(2i/dim))``.

    Shapes:
        output float ``[num_positions, dim]``.
    """
    position = torch.arange(num_positions, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(num_positions, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return table


def bidirectional_edges(edge_index: Tensor, edge_flow: Tensor, edge_position: Tensor
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Every edge forward and backward: ``(source, target, edge_type, position)``, each ``[2E]``.

    ``edge_type`` is the flow for the forward copy and ``flow + 3`` for the backward one; both copies
    keep the edge's position.
    """
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must be [2, E], got {tuple(edge_index.shape)}")
    if edge_flow.shape != edge_index.shape[1:] or edge_position.shape != edge_index.shape[1:]:
        raise ValueError(f"edge_flow {tuple(edge_flow.shape)} and edge_position {tuple(edge_position.shape)} "
                         f"must be [E] for edge_index {tuple(edge_index.shape)}")
    if edge_flow.numel() and (int(edge_flow.min()) < 0 or int(edge_flow.max()) >= NUM_FLOWS):
        raise ValueError("edge_flow must be 0 (control), 1 (data) or 2 (call)")
    source = torch.cat([edge_index[0], edge_index[1]])
    target = torch.cat([edge_index[1], edge_index[0]])
    edge_type = torch.cat([edge_flow, edge_flow + NUM_FLOWS])
    position = torch.cat([edge_position, edge_position])
    return source, target, edge_type, position


def graph_index(batch: Any, num_nodes: int, device: torch.device) -> tuple[Tensor, int]:
    """The ``batch`` vector of a Batch (zeros for a single Data) and the number of graphs."""
    index = getattr(batch, "batch", None)
    if index is None:
        return torch.zeros(num_nodes, dtype=torch.long, device=device), 1
    num_graphs = getattr(batch, "num_graphs", None)
    if num_graphs is None:
        num_graphs = int(index.max()) + 1 if index.numel() else 0
    return index, int(num_graphs)


def aux_input(batch: Any, aux_dim: int, num_graphs: int) -> Tensor | None:
    """The batch's ``aux`` as float ``[B, aux_dim]``, checked; None when the model takes none."""
    aux = getattr(batch, "aux", None)
    if aux_dim == 0:
        return None
    if aux is None:
        raise ValueError(f"this model was built with aux_dim={aux_dim}: the batch needs 'aux' float [B, {aux_dim}]")
    aux = aux.float().reshape(num_graphs, -1)
    if aux.shape[1] != aux_dim:
        raise ValueError(f"aux has {aux.shape[1]} columns, the model expects aux_dim={aux_dim}")
    return aux


def parse_steps(steps: Any) -> tuple[int, ...]:
    """GGNN layer groups: an int ``T`` (one group), a sequence, or a string such as ``"2,2,2,2"``."""
    if isinstance(steps, str):
        try:
            steps = [int(s) for s in steps.replace(" ", "").split(",") if s]
        except ValueError:
            raise ValueError(f"steps must be an int, a list of ints or a string like '2,2,2,2', got {steps!r}") from None
    elif isinstance(steps, (int, np.integer)) and not isinstance(steps, bool):
        steps = [int(steps)]
    if not isinstance(steps, (list, tuple)) or not steps or any(
            isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in steps):
        raise ValueError(f"steps must be positive ints (e.g. 6 or '2,2,2,2'), got {steps!r}")
    return tuple(int(s) for s in steps)


def mean_max_readout(h: Tensor, batch: Any, aux_dim: int) -> Tensor:
    """Per graph, the mean and the max of its node states, then its auxiliary inputs: ``[B, 2H + aux_dim]``."""
    from torch_geometric.nn import global_max_pool, global_mean_pool

    index, num_graphs = graph_index(batch, h.shape[0], h.device)
    pooled = [global_mean_pool(h, index, num_graphs), global_max_pool(h, index, num_graphs)]
    aux = aux_input(batch, aux_dim, num_graphs)
    if aux is not None:
        pooled.append(aux.to(h.dtype))
    return torch.cat(pooled, dim=-1)
