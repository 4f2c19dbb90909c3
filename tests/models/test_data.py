"""graph_to_data and the batch contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncc.models import graph_to_data


def test_graph_to_data_fields(graphs, vocabulary):
    graph = graphs[0]
    data = graph_to_data(graph, vocabulary.transform(graph), y=3, aux=[1.5, 2])
    assert data.num_nodes == graph.num_nodes
    assert data.x.dtype == torch.long and data.x.shape == (graph.num_nodes,)
    assert torch.equal(data.edge_index, torch.from_numpy(graph.edge_index.astype(np.int64)))
    assert torch.equal(data.edge_flow, torch.from_numpy(graph.edge_flow.astype(np.int64)))
    assert torch.equal(data.edge_position, torch.from_numpy(graph.edge_position.astype(np.int64)))
    assert torch.equal(data.node_type, torch.from_numpy(graph.node_type.astype(np.int64)))
    assert data.y.tolist() == [3] and data.y.dtype == torch.long
    assert data.aux.shape == (1, 2) and data.aux.dtype == torch.float32


def test_batch_contract(make_batch, graphs):
    batch = make_batch(aux_dim=2)
    assert batch.num_graphs == len(graphs)
    assert batch.aux.shape == (len(graphs), 2)
    assert batch.y.shape == (len(graphs),)
    assert batch.batch.shape == batch.x.shape
    node_batch = make_batch(node_labels=True)
    assert node_batch.y.shape == (sum(g.num_nodes for g in graphs),)


def test_graph_to_data_errors(graphs):
    graph = graphs[0]
    with pytest.raises(ValueError, match="feature_ids"):
        graph_to_data(graph, np.zeros(graph.num_nodes + 1, dtype=np.int64))
    with pytest.raises(ValueError, match="integers"):
        graph_to_data(graph, np.zeros(graph.num_nodes))
    with pytest.raises(ValueError, match="y has"):
        graph_to_data(graph, np.zeros(graph.num_nodes, dtype=np.int64), y=[1, 2])
