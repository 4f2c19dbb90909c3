"""ncc.graph.to_pyg as the models read it, and the batch contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from ncc.graph import to_pyg
from ncc.graph.dataflow import Reachability
from ncc.models import GGNN


def test_model_form_of_to_pyg(graphs, vocabulary):
    graph = graphs[0]
    data = to_pyg(graph, vocabulary, y=3, aux=[1.5, 2], compact=True)
    assert data.num_nodes == graph.num_nodes
    assert torch.equal(data.x, torch.from_numpy(vocabulary.transform(graph).astype(np.int64)))
    assert torch.equal(data.edge_index, torch.from_numpy(graph.edge_index.astype(np.int64)))
    assert torch.equal(data.edge_flow, torch.from_numpy(graph.edge_flow.astype(np.int64)))
    assert torch.equal(data.edge_position, torch.from_numpy(graph.edge_position.astype(np.int64)))
    assert torch.equal(data.node_type, torch.from_numpy(graph.node_type.astype(np.int64)))
    assert data.y.tolist() == [3] and data.y.dtype == torch.long
    assert data.aux.shape == (1, 2) and data.aux.dtype == torch.float32
    assert set(data.keys()) == {"x", "edge_index", "edge_flow", "edge_position", "node_type", "num_nodes", "y", "aux"}
    full = to_pyg(graph, vocabulary)
    assert full.text == list(graph.node_text) and torch.equal(full.x, data.x)


def test_batch_contract(make_batch, graphs):
    batch = make_batch(aux_dim=2)
    assert batch.num_graphs == len(graphs)
    assert batch.aux.shape == (len(graphs), 2)
    assert batch.y.shape == (len(graphs),)
    assert batch.batch.shape == batch.x.shape
    node_batch = make_batch(node_labels=True)
    assert node_batch.y.shape == (sum(g.num_nodes for g in graphs),)


def test_a_root_node_query_reaches_the_model(graphs, vocabulary):
    """Selector, per-node labels and mask go through batching to a GGNN built with a selector."""
    items = []
    for graph in graphs:
        root = int(np.flatnonzero(graph.node_type == 0)[1])
        labels, _ = Reachability(graph).query(root)
        selector = np.zeros(graph.num_nodes, dtype=np.int64)
        selector[root] = 1
        items.append(to_pyg(graph, vocabulary, y=labels, selector=selector, mask=graph.node_type == 0, compact=True))
    batch = Batch.from_data_list(items)
    assert int(batch.selector.sum()) == len(graphs)
    assert batch.mask.dtype == torch.bool and int(batch.mask.sum()) == sum(int((g.node_type == 0).sum()) for g in graphs)
    torch.manual_seed(0)
    model = GGNN(num_classes=2, vocab_size=len(vocabulary), readout="node", selector=True)
    logits = model(batch)
    assert logits.shape == (batch.num_nodes, 2)
    moved = batch.clone()
    moved.selector = torch.roll(batch.selector, 1)
    assert not torch.equal(model(moved), logits), "the model must read the selector"


def test_to_pyg_errors(graphs, vocabulary):
    graph = graphs[0]

    class Wrong:
        def transform(self, graph):
            return np.zeros(graph.num_nodes + 1, dtype=np.int64)

    class Floats:
        def transform(self, graph):
            return np.zeros(graph.num_nodes)

    with pytest.raises(ValueError, match="feature ids of shape"):
        to_pyg(graph, Wrong())
    with pytest.raises(ValueError, match="integers"):
        to_pyg(graph, Floats())
    with pytest.raises(ValueError, match="y has"):
        to_pyg(graph, vocabulary, y=[1, 2])
    with pytest.raises(ValueError, match="selector has shape"):
        to_pyg(graph, vocabulary, selector=[1])
    with pytest.raises(ValueError, match="hetero"):
        to_pyg(graph, vocabulary, hetero=True)
