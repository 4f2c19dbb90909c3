"""The GGNN and relational GINE layers are PyG ``MessagePassing`` layers that compute what they claim.

The reference computations below are written out by hand (loops over edges, or the explicit
``index_add_`` code the models used before they were ``MessagePassing`` layers), so a change to the
layers' arithmetic, aggregation or summation order fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.nn import MessagePassing

from ncc.models import GGNN, RelationalGINE
from ncc.models.common import NUM_EDGE_TYPES, bidirectional_edges
from ncc.models.ggnn import GGNNConv
from ncc.models.gine import RelationalGINEConv

TINY = "int add(int a, int b) { return a * b + a; }\n"


def _data(graph, feature_ids):
    """A ``Data`` with the model input fields, straight from the ProgramGraph's arrays."""
    from torch_geometric.data import Data

    def long(array):
        return torch.from_numpy(np.array(array, dtype=np.int64, copy=True))

    return Data(x=long(feature_ids), edge_index=long(graph.edge_index).reshape(2, graph.num_edges),
                edge_flow=long(graph.edge_flow), edge_position=long(graph.edge_position), num_nodes=graph.num_nodes)


@pytest.fixture(scope="module")
def tiny():
    """``(num_nodes, edge_index [2, 2E], edge_type [2E])`` of a one-line C function, both directions."""
    from ncc.frontend import compile
    from ncc.graph import build

    graph = build(compile(TINY, language="c", name="tiny"))
    data = _data(graph, np.zeros(graph.num_nodes, dtype=np.int64))
    source, target, edge_type, _ = bidirectional_edges(data.edge_index, data.edge_flow, data.edge_position)
    assert graph.num_nodes > 3 and source.numel() > 4 and len(set(edge_type.tolist())) >= 4
    return graph.num_nodes, torch.stack([source, target]), edge_type


@pytest.fixture()
def batch(graphs, vocabulary):
    from torch_geometric.data import Batch

    return Batch.from_data_list([_data(graph, vocabulary.transform(graph)) for graph in graphs])


def test_layers_are_parameter_free_message_passing(vocabulary):
    ggnn = GGNN(vocab_size=len(vocabulary), steps="2,1,3")
    gine = RelationalGINE(vocab_size=len(vocabulary), num_layers=4)
    assert len(ggnn.convs) == 3 and all(isinstance(conv, GGNNConv) for conv in ggnn.convs)
    assert len(gine.convs) == 4 and all(isinstance(conv, RelationalGINEConv) for conv in gine.convs)
    for model in (ggnn, gine):
        assert all(isinstance(conv, MessagePassing) for conv in model.convs)
        assert sum(isinstance(module, MessagePassing) for module in model.modules()) == len(model.convs)
        # The weights keep their names (old checkpoints load): the layers add no state.
        assert not any(key.startswith("convs.") for key in model.state_dict())
    assert [key for key in ggnn.state_dict() if key.split(".")[0] in ("messages", "gates", "updates")] == [
        f"{name}.{group}.{part}" for name, parts in
        (("messages", ("weight", "bias")), ("gates", ("weight", "bias")),
         ("updates", ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))) for group in range(3) for part in parts]
    assert ggnn.convs[0].aggr == "mean" and GGNN(vocab_size=4, aggregation="sum").convs[0].aggr == "sum"


@pytest.mark.parametrize("aggr", ["mean", "sum"])
@pytest.mark.parametrize("gated", [True, False])
def test_ggnn_conv_matches_a_hand_computed_reference(tiny, aggr, gated):
    n, edge_index, edge_type = tiny
    hidden = 5
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, NUM_EDGE_TYPES * hidden, generator=generator)
    gate = torch.rand(edge_index.shape[1], hidden, generator=generator) * 2 if gated else None
    out = GGNNConv(aggr)(x, edge_index, edge_type, gate)
    expected = torch.zeros(n, hidden)
    degree = [0] * n
    for e, (u, v) in enumerate(edge_index.t().tolist()):
        t = int(edge_type[e])
        message = x[u, t * hidden:(t + 1) * hidden]  # W_t h_u + b_t of the source, for this edge's type
        expected[v] += message * gate[e] if gated else message
        degree[v] += 1
    if aggr == "mean":
        expected = expected / torch.tensor(degree, dtype=torch.float32).clamp(min=1).unsqueeze(1)
    assert out.shape == (n, hidden) and out.dtype == torch.float32
    torch.testing.assert_close(out, expected)
    assert out.abs().sum() > 0


def test_gine_conv_matches_a_hand_computed_reference(tiny):
    n, edge_index, _ = tiny
    hidden = 4
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n, hidden, generator=generator)
    edge_attr = torch.randn(edge_index.shape[1], hidden, generator=generator)
    eps = torch.tensor(0.25)
    out = RelationalGINEConv()(x, edge_index, edge_attr, eps)
    expected = 1.25 * x.clone()
    for e, (u, v) in enumerate(edge_index.t().tolist()):
        expected[v] += torch.clamp(x[u] + edge_attr[e], min=0)
    torch.testing.assert_close(out, expected)
    assert not torch.allclose(out, 1.25 * x)  # the messages contribute


def _reference_ggnn_states(model, batch):
    """GGNN's node states as the model computed them before its layers were MessagePassing layers."""
    h0 = model.input_map(model.embedding(batch.x))
    n = h0.shape[0]
    source, target, edge_type, position = bidirectional_edges(batch.edge_index, batch.edge_flow, batch.edge_position)
    rows = source * NUM_EDGE_TYPES + edge_type
    degree = torch.bincount(target, minlength=n).clamp_(min=1).to(torch.float32).unsqueeze(1)
    used, position = torch.unique(position.clamp(0, model.max_position - 1), return_inverse=True)
    h = h0
    for group, repeats in enumerate(model.steps):
        gate = (2 * torch.sigmoid(model.gates[group](model.position_table[used]))).index_select(0, position)
        for _ in range(repeats):
            message = model.messages[group](h).reshape(n * NUM_EDGE_TYPES, -1).index_select(0, rows) * gate
            incoming = torch.zeros(n, h.shape[1]).index_add_(0, target, message)
            if model.aggregation == "mean":
                incoming = incoming / degree
            h = model.updates[group](incoming, h)
    return h


def _reference_gine_states(model, batch):
    """RelationalGINE's jumping-knowledge states as computed before its layers were MessagePassing layers."""
    h = model.input_map(model.embedding(batch.x))
    n = h.shape[0]
    index, num_graphs = batch.batch, batch.num_graphs
    source, target, edge_type, position = bidirectional_edges(batch.edge_index, batch.edge_flow, batch.edge_position)
    used, position = torch.unique(position.clamp(0, model.max_position - 1), return_inverse=True)
    virtual = model.virtual_init.expand(num_graphs, -1)
    states = [h]
    for layer in range(model.num_layers):
        z = h + virtual.index_select(0, index)
        edge = model.type_embeddings[layer](edge_type) + model.position_maps[layer](
            model.position_table[used]).index_select(0, position)
        incoming = torch.zeros(n, h.shape[1]).index_add_(0, target, torch.relu(z.index_select(0, source) + edge))
        h = h + torch.relu(model.norms[layer](model.mlps[layer]((1 + model.eps[layer]) * z + incoming)))
        if layer < model.num_layers - 1:
            pooled = torch.zeros(num_graphs, h.shape[1]).index_add_(0, index, z)
            virtual = virtual + model.virtual_mlps[layer](pooled + virtual)
        states.append(h)
    return model.jump(torch.cat(states, dim=-1))


@pytest.mark.parametrize("aggregation", ["mean", "sum"])
def test_ggnn_states_equal_the_explicit_index_add_bitwise(batch, vocabulary, aggregation):
    """Same summation order as the pre-MessagePassing code, so seeded runs reproduce their figures."""
    torch.manual_seed(0)
    model = GGNN(vocab_size=len(vocabulary), steps="2,1", aggregation=aggregation).eval()
    with torch.no_grad():
        assert torch.equal(model.node_states(batch)[1], _reference_ggnn_states(model, batch))


def test_gine_states_equal_the_plain_formulation(batch, vocabulary):
    """Edge features once per (type, position) pair, gathered per edge: the per-edge lookups' states."""
    torch.manual_seed(0)
    model = RelationalGINE(vocab_size=len(vocabulary), num_layers=3).eval()
    with torch.no_grad():
        torch.testing.assert_close(model.node_states(batch), _reference_gine_states(model, batch),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["ggnn", "rgine"])
def test_pyg_explain_edge_masks_reach_every_layer(name, batch, vocabulary):
    """PyG's explainers mask messages through MessagePassing: an all-closed mask is a graph without edges."""
    from torch_geometric.explain.algorithm.utils import clear_masks, set_masks

    torch.manual_seed(0)
    model = (GGNN if name == "ggnn" else RelationalGINE)(vocab_size=len(vocabulary), readout="node").eval()
    source, target, _, _ = bidirectional_edges(batch.edge_index, batch.edge_flow, batch.edge_position)
    edge_index = torch.stack([source, target])
    no_edges = batch.clone()
    no_edges.edge_index = batch.edge_index[:, :0]
    no_edges.edge_flow = batch.edge_flow[:0]
    no_edges.edge_position = batch.edge_position[:0]
    with torch.no_grad():
        plain, isolated = model(batch), model(no_edges)
        assert not torch.allclose(plain, isolated)
        set_masks(model, torch.full((edge_index.shape[1],), 1e4), edge_index, apply_sigmoid=True)
        torch.testing.assert_close(model(batch), plain)
        set_masks(model, torch.full((edge_index.shape[1],), -1e4), edge_index, apply_sigmoid=True)
        torch.testing.assert_close(model(batch), isolated)
        clear_masks(model)
        assert torch.equal(model(batch), plain)
