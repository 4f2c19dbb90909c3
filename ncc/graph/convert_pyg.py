"""Conversion of a :class:`ProgramGraph` to PyTorch Geometric ``Data`` and ``HeteroData``.

torch and torch_geometric are imported inside the functions only, so importing this module (or
:mod:`ncc.graph.convert`) does not need them. This is the one converter: the models of :mod:`ncc.models`
and the training datasets read its output. Node features come from a feature encoder, anything with
``transform(graph) -> int [N]`` (a fitted ``NodeVocabulary``, inst2vec ``StatementIds``), given as
``encoder``; labels, auxiliary inputs, a root selector and a mask of scored nodes may be attached too.

Homogeneous (``to_pyg(graph)``), a ``Data`` with:
    ``node_type``, ``node_function``, ``node_block``: ``long [N]`` (codes as in ``NODE_TYPES``);
    ``edge_index``: ``long [2, E]``; ``edge_flow`` and its alias ``edge_type``: ``long [E]`` (codes as in
    ``EDGE_FLOWS``, ``edge_type`` being the name relational layers such as ``RGCNConv`` expect);
    ``edge_position``: ``long [E]``; ``num_nodes``; ``text`` and ``full_text``: lists of N str;
    ``function_names``: list of str; ``module_name``: str. Node and edge order are the graph's.
    With ``encoder``, ``x``: ``long [N]`` feature ids; with ``y``, ``aux``, ``selector``, ``mask``, those
    (see :func:`to_pyg`). ``compact=True`` keeps only what the models read (``x``, ``node_type``,
    ``edge_index``, ``edge_flow``, ``edge_position`` and the labels), as the training datasets store it.

Heterogeneous (``to_pyg(graph, hetero=True)``), a ``HeteroData`` with node types ``instruction``,
``variable`` and ``constant`` (the external node is instruction 0) and the five edge types of
:data:`HETERO_EDGE_TYPES`, always all present (possibly empty) so that every graph has the same schema:
    ``('instruction', 'control', 'instruction')``: control flow;
    ``('instruction', 'call', 'instruction')``: call sites to callee entries, callee exits back, and the
    external node's edges;
    ``('instruction', 'data', 'variable')``: an instruction defines a value;
    ``('variable', 'data', 'instruction')``: a value is an operand of an instruction;
    ``('constant', 'data', 'instruction')``: a constant is an operand of an instruction.
Each node store holds ``node_id`` (``long``: the global node id of each local node, ascending, so local
order is global order), ``function`` and ``block`` (``long``), ``text`` and ``full_text`` (lists) and
``num_nodes``. Each edge store holds ``edge_index`` in local node indices, ``edge_position`` and
``edge_id`` (``long``: the edge's index in the graph's edge list, ascending). Hence
``data[src].node_id[data[rel].edge_index[0]]`` gives the global sources of a relation's edges and
``edge_id`` puts them back in the graph's edge order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ncc.errors import GraphBuildError
from ncc.graph.program_graph import EDGE_FLOWS, NODE_TYPES, ProgramGraph

HETERO_EDGE_TYPES: tuple[tuple[str, str, str], ...] = (
    ("instruction", "control", "instruction"),
    ("instruction", "call", "instruction"),
    ("instruction", "data", "variable"),
    ("variable", "data", "instruction"),
    ("constant", "data", "instruction"),
)

__all__ = ["HETERO_EDGE_TYPES", "to_pyg", "from_pyg"]


def _long(array: np.ndarray):
    """A ``torch.long`` tensor of a numpy array (a copy)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64).copy())


def to_pyg(graph: ProgramGraph, encoder: Any = None, *, y: Any = None, aux: Any = None, selector: Any = None,
           mask: Any = None, compact: bool = False, hetero: bool = False) -> Any:
    """Convert a program graph to PyTorch Geometric: what the models of :mod:`ncc.models` take.

    Batching several with ``torch_geometric.data.Batch.from_data_list`` (or a PyG ``DataLoader``) gives a
    model's input.

    Args:
        graph: the program graph.
        encoder: a fitted feature encoder, ``encoder.transform(graph) -> int [N]``; gives ``x``.
        y: a label: a scalar (graph-level class or value, stored as ``[1]``) or one entry per node
            (node-level, ``[N, ...]``). Integer and boolean labels become long, others float.
        aux: graph-level auxiliary inputs, A numbers (stored as float ``[1, A]``).
        selector: ProGraML's root marker for data-flow queries, ``[N]`` of 0 / 1 (stored as long).
        mask: the nodes a node-level label is scored on, ``bool [N]``.
        compact: keep only what the models read (no texts, names, functions or blocks).
        hetero: return a ``HeteroData`` with one node type per node kind instead (no features or labels).

    Returns:
        A ``torch_geometric.data.Data`` (or ``HeteroData``) laid out as the module docstring describes.

    Raises:
        ImportError: torch_geometric is not installed (``pip install ncc[pyg]``).
        ValueError: feature ids, labels, selector or mask of the wrong length or type, or ``hetero`` with them.
        GraphBuildError: (hetero only) an edge joins node kinds no edge type holds.
    """
    if hetero:
        if any(value is not None for value in (encoder, y, aux, selector, mask)):
            raise ValueError("hetero=True converts the graph alone: features and labels go with the Data form")
        return _to_hetero(graph)
    data = _to_homogeneous(graph, compact)
    n = graph.num_nodes
    if encoder is not None:
        ids = np.asarray(encoder.transform(graph))
        if ids.shape != (n,):
            raise ValueError(f"the encoder gave feature ids of shape {ids.shape} for a graph of {n} nodes")
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"feature ids must be integers, got {ids.dtype}")
        data.x = _long(ids)
    if y is not None:
        import torch

        label = np.asarray(y)
        if label.ndim == 0:
            label = label.reshape(1)
        elif label.shape[0] != n:
            raise ValueError(f"y has {label.shape[0]} entries for a graph of {n} nodes: give a scalar for a "
                             f"graph label or one entry per node")
        integral = np.issubdtype(label.dtype, np.integer) or label.dtype == bool
        data.y = torch.as_tensor(label.astype(np.int64 if integral else np.float32))
    if aux is not None:
        import torch

        data.aux = torch.from_numpy(np.asarray(aux, dtype=np.float32).reshape(1, -1).copy())
    for name, value in (("selector", selector), ("mask", mask)):
        if value is not None:
            array = np.asarray(value)
            if array.shape != (n,):
                raise ValueError(f"{name} has shape {array.shape} for a graph of {n} nodes")
            data[name] = _long(array) if name == "selector" else _long(array).bool()
    return data


def _to_homogeneous(graph: ProgramGraph, compact: bool = False) -> Any:
    """The ``Data`` form of :func:`to_pyg`, without features and labels."""
    from torch_geometric.data import Data

    edge_flow = _long(graph.edge_flow)
    if compact:
        return Data(edge_index=_long(graph.edge_index).reshape(2, graph.num_edges), edge_flow=edge_flow,
                    edge_position=_long(graph.edge_position), node_type=_long(graph.node_type),
                    num_nodes=graph.num_nodes)
    return Data(
        edge_index=_long(graph.edge_index).reshape(2, graph.num_edges),
        node_type=_long(graph.node_type),
        node_function=_long(graph.node_function),
        node_block=_long(graph.node_block),
        edge_flow=edge_flow,
        edge_type=edge_flow.clone(),
        edge_position=_long(graph.edge_position),
        num_nodes=graph.num_nodes,
        text=list(graph.node_text),
        full_text=list(graph.node_full_text),
        function_names=list(graph.function_names),
        module_name=graph.module_name,
    )


def _to_hetero(graph: ProgramGraph) -> Any:
    """The ``HeteroData`` form of :func:`to_pyg`."""
    from torch_geometric.data import HeteroData

    data = HeteroData()
    data.function_names = list(graph.function_names)
    data.module_name = graph.module_name
    local = np.full(graph.num_nodes, -1, dtype=np.int64)
    for code, name in enumerate(NODE_TYPES):
        ids = np.flatnonzero(graph.node_type == code)
        local[ids] = np.arange(ids.size)
        store = data[name]
        store.node_id = _long(ids)
        store.function = _long(graph.node_function[ids])
        store.block = _long(graph.node_block[ids])
        store.text = [graph.node_text[i] for i in ids]
        store.full_text = [graph.node_full_text[i] for i in ids]
        store.num_nodes = int(ids.size)

    src, dst = graph.edge_index.astype(np.int64)
    src_type, dst_type = graph.node_type[src], graph.node_type[dst]
    assigned = np.zeros(graph.num_edges, dtype=bool)
    for relation in HETERO_EDGE_TYPES:
        source, flow, target = relation
        mask = ((graph.edge_flow == EDGE_FLOWS.index(flow)) & (src_type == NODE_TYPES.index(source))
                & (dst_type == NODE_TYPES.index(target)))
        assigned |= mask
        store = data[relation]
        store.edge_index = _long(np.stack([local[src[mask]], local[dst[mask]]])).reshape(2, -1)
        store.edge_position = _long(graph.edge_position[mask])
        store.edge_id = _long(np.flatnonzero(mask))
    if not assigned.all():
        e = int(np.flatnonzero(~assigned)[0])
        raise GraphBuildError(
            f"edge {e} ({EDGE_FLOWS[graph.edge_flow[e]]} from a {NODE_TYPES[src_type[e]]} to a "
            f"{NODE_TYPES[dst_type[e]]}) fits no heterogeneous edge type", graph.module_name)
    return data


def from_pyg(data: Any, validate: bool = True) -> ProgramGraph:
    """Convert a homogeneous ``Data`` made by :func:`to_pyg` back to a program graph.

    The graph's metadata is not carried through PyG; the result has empty metadata.

    Args:
        data: a ``torch_geometric.data.Data`` with the attributes :func:`to_pyg` writes.
        validate: check the result with :meth:`ProgramGraph.validate`.

    Returns:
        The program graph.

    Raises:
        GraphBuildError: an attribute is missing, or the result fails validation.
    """
    def array(name: str, dtype) -> np.ndarray:
        value = getattr(data, name, None)
        if value is None:
            raise GraphBuildError(f"the PyG data lacks {name!r}", getattr(data, "module_name", None))
        return value.detach().cpu().numpy().astype(dtype)

    def strings(name: str) -> np.ndarray:
        values = getattr(data, name, None)
        if values is None:
            raise GraphBuildError(f"the PyG data lacks {name!r}", getattr(data, "module_name", None))
        result = np.empty(len(values), dtype=object)
        result[:] = list(values)
        return result

    edge_flow = data.edge_flow if getattr(data, "edge_flow", None) is not None else data.edge_type
    graph = ProgramGraph(
        node_type=array("node_type", np.int8),
        node_text=strings("text"),
        node_full_text=strings("full_text"),
        node_function=array("node_function", np.int32),
        node_block=array("node_block", np.int32),
        edge_index=array("edge_index", np.int32).reshape(2, -1),
        edge_flow=edge_flow.detach().cpu().numpy().astype(np.int8),
        edge_position=array("edge_position", np.int32),
        function_names=tuple(getattr(data, "function_names", ()) or ()),
        module_name=getattr(data, "module_name", None) or "module",
    )
    return graph.validate() if validate else graph

