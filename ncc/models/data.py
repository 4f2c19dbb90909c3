"""From a :class:`ProgramGraph` and its feature ids to the ``Data`` every model of :mod:`ncc.models` takes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ncc.graph.program_graph import ProgramGraph


def _long(array: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.int64, copy=True))


def graph_to_data(graph: ProgramGraph, feature_ids: Any, y: Any = None, aux: Any = None,
                  selector: Any = None) -> Any:
    """The model input of one graph: a ``torch_geometric.data.Data`` holding the batch contract's fields.

    Batching several with ``torch_geometric.data.Batch.from_data_list`` gives what the models take:
    ``x``, ``node_type``, ``batch`` ``[N]``; ``edge_index`` ``[2, E]``; ``edge_flow``,
    ``edge_position`` ``[E]``; ``aux`` ``[B, A]``; ``y`` stacked per graph (or concatenated per node).

    Args:
        graph: the program graph.
        feature_ids: ``int [N]``: one feature id per node (``NodeVocabulary.transform(graph)`` or
            ``Embeddings.ids_for_graph(...)``).
        y: the label: a scalar (graph-level class or value, stored as ``[1]``), or an array with one
            entry per node (node-level, stored as ``[N, ...]``), or None. Integer labels become long,
            others float.
        aux: graph-level auxiliary inputs, a sequence of A numbers (stored as float ``[1, A]``), or None.
        selector: ProGraML's data-flow root marker, ``int [N]`` of 0/1 (stored as long ``[N]``), or None.

    Returns:
        The ``Data`` (``num_nodes`` set; no node texts, so batching stays cheap).

    Raises:
        ValueError: an array has the wrong length.
    """
    from torch_geometric.data import Data

    n = graph.num_nodes
    ids = np.asarray(feature_ids)
    if ids.shape != (n,):
        raise ValueError(f"feature_ids has shape {ids.shape} for a graph of {n} nodes")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"feature_ids must be integers, got {ids.dtype}")
    edge_flow = _long(graph.edge_flow)
    data = Data(x=_long(ids), edge_index=_long(graph.edge_index).reshape(2, graph.num_edges),
                edge_flow=edge_flow, edge_position=_long(graph.edge_position),
                node_type=_long(graph.node_type), num_nodes=n)
    if y is not None:
        label = np.asarray(y)
        if label.ndim == 0:
            label = label.reshape(1)
        elif label.shape[0] != n:
            raise ValueError(f"y has {label.shape[0]} entries for a graph of {n} nodes: give a scalar for a "
                             f"graph label or one entry per node")
        dtype = torch.long if np.issubdtype(label.dtype, np.integer) or label.dtype == bool else torch.float32
        data.y = torch.as_tensor(label.astype(np.int64 if dtype == torch.long else np.float32))
    if aux is not None:
        values = np.asarray(aux, dtype=np.float32).reshape(1, -1)
        data.aux = torch.from_numpy(values.copy())
    if selector is not None:
        marks = np.asarray(selector)
        if marks.shape != (n,):
            raise ValueError(f"selector has shape {marks.shape} for a graph of {n} nodes")
        data.selector = _long(marks)
    return data
