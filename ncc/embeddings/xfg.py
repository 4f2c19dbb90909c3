"""Contextual flow graphs (XFGs) and the (target, context) statement pairs that skip-gram trains on.

inst2vec (Ben-Nun, Jakobovits & Hoefler, *Neural Code Comprehension: A Learnable Representation of Code
Semantics*, NeurIPS 2018, https://arxiv.org/abs/1806.07336) defines the *contextual flow graph* of a
program as a directed multigraph whose nodes are values (variables, labels) and whose edges are
statements: a statement is an edge from the values it reads to the value it produces, and a statement
that produces nothing (``store``, ``br``) hangs off the label of its block, so that execution order
links it to its neighbours. Function calls link the call statement to the callee's body and the
callee's returns back to the call. The *context* of a statement is the set of statements within
distance N of it in that graph: two statements are at distance 1 when they share a value node, one
producing it and the other reading it (or when one follows the other in execution), at distance 2
when a third statement sits between them, and so on. Skip-gram then learns from every
(statement, statement in its context) pair.

Our reading, on ncc's program graphs (:mod:`ncc.graph`), works on the *line graph* of that XFG, which
carries the same information with statements as nodes:

- **nodes** are the instruction nodes of the program graph that have a normalised statement (the
  external node, variables and constants are not statements);
- **data**: ``A -> B`` when ``B`` reads a value ``A`` defines (``A -> %x -> B`` through the variable
  node), which is the XFG's "edge A ends where edge B starts";
- **memory**: ``store V, P`` is, in the XFG, an edge into the pointer node ``P`` (the value it writes
  lives there), so ``store -> B`` for every other statement ``B`` that reads ``P`` (a ``load`` of ``P``, a
  ``getelementptr`` on it, ...). Without this, -O0 code, where every local goes through memory, loses
  most of its def-use context; ``memory=False`` turns it off;
- **execution**: ``A -> B`` for each control edge (``B`` follows ``A`` in its block, or ``A`` is a
  terminator and ``B`` starts a successor block), which is what the XFG's label nodes encode;
- **calls**: call site -> callee entry and callee ``ret`` -> call site for functions defined in the
  module; calls that go through the external node (declarations, intrinsics, indirect calls) link
  nothing, since the external node is no statement and linking through it would make every external
  call each other's context.

The context distance is measured with edge directions ignored (skip-gram's context is symmetric: a
statement predicts the statements it depends on and the ones that depend on it), and the context of
a statement never includes the statement itself. Pairs are unique per module: two statements joined
by several paths make one pair. Across modules, pairs repeat as often as they occur, as word pairs do
in word2vec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from ncc.graph.program_graph import CALL, CONTROL, DATA, INSTRUCTION, ProgramGraph

#: Edge kinds of an XFG (``XFG.edge_kind``).
XFG_CONTROL, XFG_DATA, XFG_CALL, XFG_MEMORY = 0, 1, 2, 3
XFG_EDGE_KINDS = ("control", "data", "call", "memory")

#: Operand position of the pointer in ``store <value>, <pointer>``.
_STORE_POINTER_POSITION = 1


@dataclass(frozen=True, eq=False)
class XFG:
    """The statement-level contextual flow graph of one module.

    Attributes:
        nodes: ``int32 [S]``: the program-graph node id of each statement, in node order.
        statements: ``S`` normalised statements, one per node.
        edge_index: ``int32 [2, E]``: directed edges between statement indices (``0..S-1``); no self
            loops, no duplicate (source, target, kind).
        edge_kind: ``int8 [E]``: 0 control, 1 data, 2 call, 3 memory (see the module docstring).

    Shapes:
        S statements, E edges.
    """

    nodes: np.ndarray
    statements: tuple[str, ...]
    edge_index: np.ndarray
    edge_kind: np.ndarray

    @property
    def num_statements(self) -> int:
        return int(self.nodes.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_kind.shape[0])

    def adjacency(self) -> sp.csr_matrix:
        """The undirected adjacency matrix ``[S, S]`` (float32 ones, no diagonal) that contexts are taken on."""
        s = self.num_statements
        src, dst = self.edge_index
        rows = np.concatenate([src, dst])
        cols = np.concatenate([dst, src])
        matrix = sp.csr_matrix((np.ones(rows.shape[0], np.float32), (rows, cols)), shape=(s, s))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix


def build_xfg(graph: ProgramGraph, statements: Sequence[str | None], memory: bool = True) -> XFG:
    """The contextual flow graph of a module, from its program graph and normalised statements.

    Args:
        graph: the module's program graph (:func:`ncc.graph.build`).
        statements: one entry per graph node, the normalised statement of an instruction node and None
            for every other node (as :func:`ncc.embeddings.normalise.module_statements` returns them).
            An instruction whose entry is None is left out of the XFG.
        memory: link a ``store`` to the other readers of the pointer it writes through.

    Returns:
        The XFG (see the module docstring for the edge rules).

    Raises:
        ValueError: ``statements`` does not have one entry per node.
    """
    n = graph.num_nodes
    if len(statements) != n:
        raise ValueError(f"statements has {len(statements)} entries for a graph of {n} nodes")
    is_statement = np.fromiter((s is not None for s in statements), dtype=bool, count=n)
    is_statement &= graph.node_type == INSTRUCTION
    is_statement[0] = False  # the external node
    nodes = np.flatnonzero(is_statement).astype(np.int32)
    local = np.full(n, -1, np.int64)
    local[nodes] = np.arange(nodes.shape[0])

    src, dst = graph.edge_index.astype(np.int64)
    flow, position = graph.edge_flow, graph.edge_position
    parts_src, parts_dst, parts_kind = [], [], []

    def add(a: np.ndarray, b: np.ndarray, kind: int) -> None:
        parts_src.append(a)
        parts_dst.append(b)
        parts_kind.append(np.full(a.shape[0], kind, np.int8))

    for code, kind in ((CONTROL, XFG_CONTROL), (CALL, XFG_CALL)):
        mask = flow == code
        add(src[mask], dst[mask], kind)

    data = flow == DATA
    src_is_instruction = graph.node_type[src] == INSTRUCTION
    defines = data & src_is_instruction  # instruction -> the variable it defines
    reads = data & ~src_is_instruction  # variable / constant -> instruction that reads it
    read_var, read_inst = src[reads], dst[reads]
    add(*_join(src[defines], dst[defines], read_var, read_inst), XFG_DATA)
    if memory:
        is_store = np.zeros(n, bool)
        is_store[1:] = graph.node_text[1:] == "store"
        writes = reads & is_store[dst] & (position == _STORE_POINTER_POSITION)
        add(*_join(dst[writes], src[writes], read_var, read_inst), XFG_MEMORY)

    a = local[np.concatenate(parts_src)]
    b = local[np.concatenate(parts_dst)]
    kind = np.concatenate(parts_kind)
    keep = (a >= 0) & (b >= 0) & (a != b)
    a, b, kind = a[keep], b[keep], kind[keep]
    s = nodes.shape[0]
    key = (a * s + b) * len(XFG_EDGE_KINDS) + kind
    _, first = np.unique(key, return_index=True)
    first.sort()
    edge_index = np.stack([a[first], b[first]]).astype(np.int32)
    return XFG(nodes=nodes, statements=tuple(statements[i] for i in nodes), edge_index=edge_index,
               edge_kind=kind[first])


def _join(def_inst: np.ndarray, def_var: np.ndarray, read_var: np.ndarray,
          read_inst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (definer, reader) pair that meets on the same variable: a relational join on the variable."""
    if def_var.shape[0] == 0 or read_var.shape[0] == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.argsort(read_var, kind="stable")
    read_var, read_inst = read_var[order], read_inst[order]
    start = np.searchsorted(read_var, def_var, side="left")
    stop = np.searchsorted(read_var, def_var, side="right")
    count = stop - start
    total = int(count.sum())
    if total == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    definer = np.repeat(def_inst, count)
    # index of each reader: start of its group plus its rank within the group
    offsets = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    reader = read_inst[np.repeat(start, count) + offsets]
    return definer, reader


def context_pairs(xfg: XFG, context_size: int = 2, ordered: bool = True) -> np.ndarray:
    """The (target, context) pairs of an XFG: statements within ``context_size`` hops of each other.

    Args:
        xfg: the contextual flow graph.
        context_size: N, the largest distance (in edges, directions ignored) between a statement and
            its context; inst2vec uses 2.
        ordered: True gives every pair in both directions, ``(t, c)`` and ``(c, t)``; False gives each
            unordered pair once as ``(t, c)`` with ``t < c`` (the form the gensim backend feeds).

    Returns:
        ``int32 [P, 2]`` statement indices into ``xfg.statements``, sorted by target then context.

    Raises:
        ValueError: ``context_size`` is smaller than 1.
    """
    if context_size < 1:
        raise ValueError(f"context_size must be at least 1, got {context_size}")
    s = xfg.num_statements
    if s == 0 or xfg.num_edges == 0:
        return np.empty((0, 2), np.int32)
    adjacency = xfg.adjacency()
    reach = adjacency.copy()
    frontier = adjacency
    for _ in range(context_size - 1):
        frontier = frontier @ adjacency
        frontier.data[:] = 1.0
        reach = reach + frontier
    reach = sp.triu(reach, k=1) if not ordered else reach.tocoo()
    reach = reach.tocoo()
    keep = reach.row != reach.col
    rows, cols = reach.row[keep], reach.col[keep]
    order = np.lexsort((cols, rows))
    return np.stack([rows[order], cols[order]], axis=1).astype(np.int32)
