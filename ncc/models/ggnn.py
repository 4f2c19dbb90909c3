"""ProGraML's gated graph neural network over program graphs."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing, global_add_pool, global_mean_pool

from ncc.models.common import (NUM_EDGE_TYPES, NodeEmbedding, aux_input, bidirectional_edges, check_choice,
                               check_int, check_probability, check_readout, from_config, graph_index, parse_steps,
                               sinusoidal_encoding)

AGGREGATIONS = ("mean", "sum")
POOLINGS = ("sum", "mean")


class GGNNConv(MessagePassing):
    r"""One message-passing step of ProGraML's GGNN over typed, position-gated edges.

    ProGraML (Cummins et al., ICML 2021, https://arxiv.org/abs/2003.10536), after Li et al.'s gated
    graph sequence networks (ICLR 2016, https://arxiv.org/abs/1511.05493). The incoming message of
    node ``v`` is

    .. math::
        m_v = \operatorname{AGG}_{u \to v} \; (W_{t(u,v)} h_u + b_{t(u,v)}) \odot g_{uv}

    with ``AGG`` the mean or the sum over ``v``'s incoming edges, ``t(u, v)`` the edge type and ``g_uv``
    an optional per-edge gate (GGNN: ``2 sigmoid(P PE(position))``). The layer holds no weights: the
    per-type transforms ``W_t h_u + b_t`` of every node arrive precomputed as ``x`` (one ``[N, T * H]``
    matmul per step instead of one per edge), so the GGNN keeps its parameters, and their
    ``state_dict`` names, where they always were. Messages are gathered with ``index_select`` on the
    ``[N * T, H]`` view of ``x`` (row ``source * T + type``) and aggregated in float32 (PyG's ``"sum"``
    or ``"mean"`` aggregation, a ``scatter_add_`` on the targets), whatever the autocast dtype.

    Args:
        aggr: ``"mean"`` or ``"sum"`` of incoming messages.
        num_edge_types: ``T``, the edge types ``x`` holds a transform for (GGNN: 6).

    Shapes:
        input: ``x`` float ``[N, T * H]``, ``edge_index`` long ``[2, E]`` (source, target),
        ``edge_type`` long ``[E]`` in ``[0, T)``, ``gate`` float ``[E, H]`` or None;
        output: float32 ``[N, H]``.
    """

    def __init__(self, aggr: str = "mean", num_edge_types: int = NUM_EDGE_TYPES):
        super().__init__(aggr=check_choice("aggr", aggr, AGGREGATIONS), node_dim=0)
        self.num_edge_types = check_int("num_edge_types", num_edge_types)

    def forward(self, x: Tensor, edge_index: Tensor, edge_type: Tensor, gate: Tensor | None = None) -> Tensor:
        n = x.shape[0]
        if x.ndim != 2 or x.shape[1] % self.num_edge_types:
            raise ValueError(f"x must be [N, {self.num_edge_types} * H], got {tuple(x.shape)}")
        typed = x.reshape(n * self.num_edge_types, x.shape[1] // self.num_edge_types)
        return self.propagate(edge_index, typed=typed, edge_type=edge_type, gate=gate, size=(n, n))

    def message(self, typed: Tensor, edge_index_j: Tensor, edge_type: Tensor, gate: Tensor | None) -> Tensor:
        message = typed.index_select(0, edge_index_j * self.num_edge_types + edge_type)
        if gate is not None:
            message = message * gate
        return message.float()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(aggr={self.aggr!r}, num_edge_types={self.num_edge_types})"


class GGNN(nn.Module):
    r"""The gated graph neural network of ProGraML.

    ProGraML: Graph-based Program Representations for Data Flow Analysis and Compiler Optimizations
    (Cummins et al., ICML 2021, https://arxiv.org/abs/2003.10536), after Li et al.'s gated graph
    sequence networks (ICLR 2016, https://arxiv.org/abs/1511.05493).

    1. Node embedding: ``h_0 = E[x]`` from a learned table over a node vocabulary (ProGraML: 32
       dimensions over node text), or a pretrained matrix such as inst2vec's (frozen by default), with
       ProGraML's optional selector embedding appended for data-flow queries.
    2. Message passing over six edge types: the three flows (control, data, call), each along and
       against its edges, with separate weights and biases per type. A message from ``u`` to ``v`` along
       an edge of type ``t`` and position ``p`` is
       ``m = (W_t h_u + b_t) * 2 sigmoid(P PE(p))``, where ``PE`` is the fixed sinusoidal encoding of the
       edge position (successor index for control, operand index for data) and ``P`` a learned map, so
       the gate is 1 on average at initialisation and lets the model tell operands and branch
       targets apart. Messages into a node are averaged (``aggregation="mean"``) or summed.
       Each step is a :class:`GGNNConv`, a PyG ``MessagePassing`` layer (one per layer group, in
       ``convs``), so PyG's tooling (explainers, ``torch.compile``) sees the message passing.
    3. Update: ``h_{t+1} = GRU(m_t, h_t)``, for ``T`` steps in layer groups: ``steps="2,2,2,2"`` runs
       four groups of two steps, each group with its own message and GRU weights shared by its steps
       (ProGraML's devmap variant); ``steps=6`` is one group of six shared steps. Data-flow analyses
       whose answers lie many hops away need more steps (e.g. ``steps=30``).
    4. Readout, ProGraML's gated form: per node ``r_v = sigmoid(f([h_T, h_0])) * g(h_T)`` with linear
       ``f, g`` to ``num_classes``; node-level logits are ``r_v``, graph-level logits the sum of
       ``r_v`` over each graph's nodes (ProGraML, PyG's ``global_add_pool``) or their mean
       (``pooling="mean"``, ``global_mean_pool``). Summed over hundreds of nodes the logits start large
       (a POJ-104 loss near 20 where chance is ln 20 = 3.0 on 20 classes) and the first epochs are spent
       bringing them down; the mean starts at chance but learns more slowly (20 POJ-104 classes, 30
       epochs: 86.1 % test accuracy summed, 71.8 % averaged).
       With auxiliary graph inputs (devmap's transfer size and work-group size, ``aux_dim=2``) the
       pooled readout is concatenated with them, batch-normalised and passed through
       ``Linear(aux_hidden) - ReLU - Dropout - Linear(num_classes)``.

    Args:
        num_classes: output logits per graph (or per node).
        vocab_size: rows of a learned embedding table (the node vocabulary size); ignored when
            ``pretrained_embeddings`` is given.
        embedding_dim: columns of a learned table (ProGraML: 32).
        pretrained_embeddings: a ``[V, D]`` matrix (numpy or torch), e.g. inst2vec's
            ``Embeddings.feature_matrix()``.
        freeze_embeddings: keep the pretrained matrix fixed (False fine-tunes it).
        hidden_size: node state size; default the embedding size (plus 2 with a selector); another
            value adds a linear map from the embedding.
        steps: message-passing steps, as an int or layer groups (``[2, 2, 2, 2]`` or ``"2,2,2,2"``).
        readout: ``"graph"`` (logits ``[B, C]``) or ``"node"`` (logits ``[N, C]``).
        aux_dim: graph-level auxiliary inputs (0 for none; graph readout only).
        aux_hidden: width of the layer after the auxiliary inputs (ProGraML: 32).
        aggregation: ``"mean"`` or ``"sum"`` of incoming messages.
        pooling: ``"sum"`` (ProGraML) or ``"mean"`` of the gated node readouts per graph.
        position_gating: gate messages by their edge position (False: plain GGNN messages).
        max_position: positions at or above this share the last encoding.
        dropout: dropout on node states after every update (ProGraML's graph-state dropout).
        output_dropout: dropout before the readout (and inside the auxiliary head).
        selector: append ProGraML's selector embedding (the batch must carry ``selector`` long ``[N]``).
        step_slack: in training, the last layer group first runs a per-batch draw of 0 to this many steps
            without gradient, then its own steps with it (0: never). From wherever its own iteration has got
            to, the network must reach the answer and then keep it (the progressive training of Bansal et al.,
            NeurIPS 2022, https://arxiv.org/abs/2202.05826), so that it can be iterated past the steps it was
            trained for without drifting.
        recall: feed the initial state ``h_0`` into every update beside the message, ``GRU([m_t, h_0], h_t)``
            (Bansal et al.'s recall): the input stays in view however long the iteration runs.
        max_eval_steps: in evaluation, the last layer group goes on stepping until no node's prediction has
            changed for ``stable_for`` steps, graph by graph, or this many steps in all (0: the trained steps
            only). With
            ``step_slack`` this runs as far as a test graph needs, past the training graphs' longest paths.
        stable_for: the steps without a changed prediction that end evaluation early.

    Shapes:
        input: a ``Batch`` with ``x`` long ``[N]``, ``edge_index`` long ``[2, E]``, ``edge_flow`` long
        ``[E]``, ``edge_position`` long ``[E]``, ``batch`` long ``[N]``, ``aux`` float ``[B, aux_dim]``
        when ``aux_dim > 0``; output: logits ``[B, num_classes]`` (graph) or ``[N, num_classes]`` (node).
    """

    def __init__(self, num_classes: int = 2, vocab_size: int | None = None, embedding_dim: int = 32,
                 pretrained_embeddings: Any = None, freeze_embeddings: bool = True, hidden_size: int | None = None,
                 steps: int | str | Sequence[int] = (2, 2, 2, 2), readout: str = "graph", aux_dim: int = 0,
                 aux_hidden: int = 32, aggregation: str = "mean", pooling: str = "sum", position_gating: bool = True,
                 max_position: int = 512, dropout: float = 0.2, output_dropout: float = 0.0,
                 selector: bool = False, step_slack: int = 0, recall: bool = False, max_eval_steps: int = 0,
                 stable_for: int = 3):
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes)
        self.readout, self.aux_dim = check_readout(readout, aux_dim)
        self.aggregation = check_choice("aggregation", aggregation, AGGREGATIONS)
        self.pooling = check_choice("pooling", pooling, POOLINGS)
        self.steps = parse_steps(steps)
        self.position_gating = bool(position_gating)
        self.max_position = check_int("max_position", max_position)
        self.step_slack = check_int("step_slack", step_slack, minimum=0)
        self.recall = bool(recall)
        self.max_eval_steps = check_int("max_eval_steps", max_eval_steps, minimum=0)
        self.stable_for = check_int("stable_for", stable_for)
        #: Steps the last forward pass ran (all groups, slack and evaluation steps included).
        self.steps_run = 0
        dropout = check_probability("dropout", dropout)
        output_dropout = check_probability("output_dropout", output_dropout)
        self.embedding = NodeEmbedding(vocab_size, embedding_dim, pretrained_embeddings, freeze_embeddings,
                                       selector)
        embedded = self.embedding.out_dim
        self.hidden_size = embedded if hidden_size is None else check_int("hidden_size", hidden_size)
        self.input_map = nn.Identity() if self.hidden_size == embedded else nn.Linear(embedded, self.hidden_size)
        h = self.hidden_size
        groups = len(self.steps)
        self.messages = nn.ModuleList(nn.Linear(h, NUM_EDGE_TYPES * h) for _ in range(groups))
        self.gates = nn.ModuleList(nn.Linear(h, h) for _ in range(groups)) if self.position_gating else None
        self.updates = nn.ModuleList(nn.GRUCell(2 * h if self.recall else h, h) for _ in range(groups))
        self.convs = nn.ModuleList(GGNNConv(self.aggregation) for _ in range(groups))  # no parameters
        self.register_buffer("position_table", sinusoidal_encoding(self.max_position, h), persistent=False)
        self.state_dropout = nn.Dropout(dropout)
        self.output_dropout = nn.Dropout(output_dropout)
        self.readout_gate = nn.Linear(2 * h, self.num_classes)
        self.readout_value = nn.Linear(h, self.num_classes)
        if self.aux_dim:
            self.aux_head = nn.Sequential(
                nn.BatchNorm1d(self.num_classes + self.aux_dim),
                nn.Linear(self.num_classes + self.aux_dim, check_int("aux_hidden", aux_hidden)), nn.ReLU(),
                nn.Dropout(output_dropout), nn.Linear(aux_hidden, self.num_classes))
        else:
            self.aux_head = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides) -> "GGNN":
        """Build from a mapping of constructor arguments (unknown keys are a ValueError)."""
        return from_config(cls, config, **overrides)

    def node_states(self, batch: Any) -> tuple[Tensor, Tensor]:
        """``(h_0, h_T)``: node states after embedding and after message passing, each ``[N, hidden]``."""
        h0 = self.input_map(self.embedding(batch.x, getattr(batch, "selector", None)))
        source, target, edge_type, position = bidirectional_edges(batch.edge_index, batch.edge_flow,
                                                                  batch.edge_position)
        edge_index = torch.stack([source, target])
        position = position.clamp(0, self.max_position - 1)
        if self.position_gating and position.numel():
            used, position = torch.unique(position, return_inverse=True)
            encodings = self.position_table[used]
        h = h0
        self.steps_run = 0
        for group, repeats in enumerate(self.steps):
            gate = None
            if self.position_gating and position.numel():
                gate = (2 * torch.sigmoid(self.gates[group](encodings))).index_select(0, position)

            def step(h: Tensor) -> Tensor:
                incoming = self.convs[group](self.messages[group](h), edge_index, edge_type, gate).to(h.dtype)
                self.steps_run += 1
                if self.recall:
                    incoming = torch.cat([incoming, h0.to(h.dtype)], dim=-1)
                return self.state_dropout(self.updates[group](incoming, h))

            last = group == len(self.steps) - 1
            if last and self.training and self.step_slack:
                with torch.no_grad():
                    for _ in range(int(torch.randint(0, self.step_slack + 1, ()))):
                        h = step(h)
            for _ in range(repeats):
                h = step(h)
            if last and not self.training and self.max_eval_steps > self.steps_run:
                h = self._until_stable(h, h0, step, batch)
        return h0, h

    def _until_stable(self, h: Tensor, h0: Tensor, step: Any, batch: Any) -> Tensor:
        """Step on until each graph's predictions have not changed for ``stable_for`` steps (a graph that is
        done keeps its states, so a graph's answer does not depend on the batch it came in)."""
        index, num_graphs = graph_index(batch, h.shape[0], h.device)
        predicted = self._nodewise(h, h0).argmax(-1)
        unchanged = torch.zeros(num_graphs, dtype=torch.long, device=h.device)
        active = torch.ones(num_graphs, dtype=torch.bool, device=h.device)
        while bool(active.any()) and self.steps_run < self.max_eval_steps:
            h = torch.where(active.index_select(0, index)[:, None], step(h), h)
            now = self._nodewise(h, h0).argmax(-1)
            changed = torch.zeros(num_graphs, device=h.device).index_add_(0, index, (now != predicted).float())
            unchanged = torch.where(changed > 0, torch.zeros_like(unchanged), unchanged + 1)
            active &= unchanged < self.stable_for
            predicted = now
        return h

    def _nodewise(self, h: Tensor, h0: Tensor) -> Tensor:
        """ProGraML's gated per-node readout ``sigmoid(f([h, h_0])) * g(h)``."""
        return torch.sigmoid(self.readout_gate(torch.cat([h, h0.to(h.dtype)], dim=-1))) * self.readout_value(h)

    def forward(self, batch: Any) -> Tensor:
        h0, h = self.node_states(batch)
        nodewise = self._nodewise(self.output_dropout(h), h0)
        if self.readout == "node":
            return nodewise
        index, num_graphs = graph_index(batch, h.shape[0], h.device)
        pool = global_mean_pool if self.pooling == "mean" else global_add_pool
        graph = pool(nodewise.float(), index, num_graphs)
        if self.aux_head is None:
            return graph
        return self.aux_head(torch.cat([graph, aux_input(batch, self.aux_dim, num_graphs).to(graph.device)], dim=-1))
