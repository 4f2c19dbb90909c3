"""Analyses over a program graph's control flow."""

from __future__ import annotations

import networkx as nx
import numpy as np

from ncc.graph.program_graph import CONTROL, INSTRUCTION, ProgramGraph

__all__ = ["loop_depths", "control_flow_graph", "has_loop"]


def loop_depths(graph: ProgramGraph) -> np.ndarray:
    """``int32 [N]``: how many loops enclose each node (0 outside loops, and for variables and constants).

    Loops are found on the control-flow edges as nested strongly connected components: a component with
    a cycle is a loop; its headers (members entered from outside it) lose their in-edges from inside,
    and what still cycles in its body are the inner loops. Irreducible loops (several headers) count once.
    """
    flow = control_flow_graph(graph)
    depth = np.zeros(graph.num_nodes, dtype=np.int32)
    pending = [flow]
    while pending:
        region = pending.pop()
        for component in nx.strongly_connected_components(region):
            if len(component) == 1 and not region.has_edge(*component, *component):
                continue
            depth[list(component)] += 1
            headers = {v for v in component if any(u not in component for u in region.predecessors(v))}
            headers = headers or {min(component)}
            body = nx.DiGraph(region.subgraph(component))
            body.remove_edges_from([(u, v) for u, v in region.subgraph(component).edges if v in headers])
            pending.append(body)
    return depth


def control_flow_graph(graph: ProgramGraph) -> nx.DiGraph:
    """The control edges of a graph as a networkx ``DiGraph`` over its instruction nodes (by node id)."""
    flow = nx.DiGraph()
    flow.add_nodes_from(np.flatnonzero(graph.node_type == INSTRUCTION).tolist())
    flow.add_edges_from(graph.edges(CONTROL).T.tolist())
    return flow


def has_loop(graph: ProgramGraph) -> bool:
    """True when the graph's control edges form a cycle (a loop at ``-O0``; recursion does not count)."""
    return not nx.is_directed_acyclic_graph(control_flow_graph(graph))

