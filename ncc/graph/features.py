"""Fixed-length numeric features of program graphs, for models that are not graph networks (trees, k-NN).

* :class:`GraphFeatures`: counts of node texts and of edges per flow (scikit-learn style ``fit`` / ``transform``).
* :func:`graph_summary`: Grewe et al.'s coarse static counts read off the graph.
* :func:`loop_summary`: how much of the code runs in loops, by loop depth.
* :func:`unique_graphs`: one graph per distinct module object.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from ncc.graph.program_graph import EDGE_FLOWS, ProgramGraph

if TYPE_CHECKING:  # pragma: no cover
    from ncc.frontend.ir import IRModule

__all__ = ["GraphFeatures", "graph_summary", "loop_summary", "LOOP_SUMMARY_COLUMNS", "unique_graphs"]


class GraphFeatures:
    """Counts of node texts and of edges per flow, as a fixed-length vector (scikit-learn style).

    ``fit`` keeps the node texts seen in at least ``min_graphs`` training graphs; ``transform`` gives
    each graph the counts of those texts (instructions by opcode, variables and constants by type), the
    number of nodes of each type and of edges of each flow, and the log of the node count. Intended for
    gradient-boosted trees beside the auxiliary inputs.

    Attributes:
        texts_: the node texts kept, in column order.
        names_: a name per column.
    """

    def __init__(self, min_graphs: int = 2):
        self.min_graphs = min_graphs

    def fit(self, graphs: Iterable[ProgramGraph]) -> "GraphFeatures":
        seen: Counter = Counter()
        for graph in graphs:
            seen.update(set(graph.node_text.tolist()))
        self.texts_ = sorted(text for text, count in seen.items() if count >= self.min_graphs)
        self.names_ = ([f"text:{t}" for t in self.texts_] + [f"nodes:{k}" for k in ("instruction", "variable", "constant")]
                       + [f"edges:{f}" for f in EDGE_FLOWS] + ["log_nodes"])
        return self

    def transform(self, graphs: Sequence[ProgramGraph]) -> np.ndarray:
        """``float32 [len(graphs), len(names_)]``."""
        index = {text: i for i, text in enumerate(self.texts_)}
        width = len(self.texts_)
        rows = np.zeros((len(graphs), len(self.names_)), dtype=np.float32)
        cache: dict[int, np.ndarray] = {}
        for r, graph in enumerate(graphs):
            if id(graph) not in cache:
                row = np.zeros(len(self.names_), dtype=np.float32)
                for text, count in Counter(graph.node_text.tolist()).items():
                    if text in index:
                        row[index[text]] = count
                row[width:width + 3] = np.bincount(graph.node_type.astype(np.int64), minlength=3)[:3]
                row[width + 3:width + 6] = np.bincount(graph.edge_flow.astype(np.int64), minlength=3)[:3]
                row[-1] = np.log1p(graph.num_nodes)
                cache[id(graph)] = row
            rows[r] = cache[id(graph)]
        return rows


_MEMORY = ("load", "store")


_ARITHMETIC = ("fadd", "fsub", "fmul", "fdiv", "fneg", "frem", "call", "add", "sub", "mul", "sdiv", "udiv", "srem",
               "urem", "shl", "lshr", "ashr", "and", "or", "xor")


def graph_summary(graphs: Sequence[ProgramGraph]) -> np.ndarray:
    """``float64 [len(graphs), 5]``: instructions, memory accesses, arithmetic (and calls), branches and phis.

    The coarse static counts of Grewe et al.'s features, read off the program graph instead of a
    source-level tool.
    """
    cache: dict[int, list[float]] = {}
    rows = []
    for graph in graphs:
        if id(graph) not in cache:
            counts = Counter(graph.node_text[graph.node_type == 0].tolist())
            cache[id(graph)] = [sum(counts.values()), sum(counts[k] for k in _MEMORY),
                                sum(counts[k] for k in _ARITHMETIC), counts["br"], counts["phi"]]
        rows.append(cache[id(graph)])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), 5)


_FLOATING = ("fadd", "fsub", "fmul", "fdiv", "frem", "fneg", "fcmp", "fpext", "fptrunc", "fptosi", "fptoui")


#: Weight of an instruction per enclosing loop in :func:`loop_summary` (a guess at a trip count).
LOOP_WEIGHT = 16.0


#: OpenCL's address spaces in SPIR: global, local, constant (private memory has none).
_ADDRESS_SPACES = ("addrspace(1)", "addrspace(3)", "addrspace(2)")


#: Columns of :func:`loop_summary`.
LOOP_SUMMARY_COLUMNS = ("deepest loop", "instructions in loops", "instructions", "memory", "arithmetic", "floating",
                        "barriers", "memory - arithmetic", "global memory", "local memory", "constant memory",
                        "private memory")


def loop_summary(graphs: Sequence[ProgramGraph]) -> np.ndarray:
    """``float64 [len(graphs), 12]``: how much of the code runs in loops (see :data:`LOOP_SUMMARY_COLUMNS`).

    Columns: deepest loop nesting; instructions inside loops; log(1 + sum of 16^depth) over all
    instructions, memory accesses, arithmetic (and calls) and floating-point instructions (fused
    multiply-adds included); barrier calls; the log weighted memory accesses minus the log weighted
    arithmetic (trees cannot subtract); the log weighted loads and stores of global, local, constant and
    private memory. Depths are :func:`ncc.graph.analysis.loop_depths`.
    """
    from ncc.graph.analysis import loop_depths

    cache: dict[int, list[float]] = {}
    rows = []
    for graph in graphs:
        if id(graph) not in cache:
            instructions = graph.node_type == 0
            depth = loop_depths(graph)[instructions]
            text = graph.node_text[instructions]
            full_text = graph.node_full_text[instructions].astype(str)
            weight = LOOP_WEIGHT ** depth

            def weighted(chosen: np.ndarray | None = None) -> float:
                return float(np.log1p(weight.sum() if chosen is None else weight[chosen].sum()))

            def containing(part: str) -> np.ndarray:
                return np.char.find(full_text, part) >= 0

            memory_access = np.isin(text, _MEMORY)
            spaces = [memory_access & containing(space) for space in _ADDRESS_SPACES]
            private = memory_access & ~np.logical_or.reduce(spaces)
            floating = np.isin(text, _FLOATING) | containing("@llvm.fmuladd") | containing("@llvm.fma.")
            memory, arithmetic = weighted(memory_access), weighted(np.isin(text, _ARITHMETIC))
            barriers = sum("barrier" in t for t in full_text[text == "call"])
            cache[id(graph)] = [depth.max(initial=0), np.count_nonzero(depth), weighted(), memory, arithmetic,
                                weighted(floating), barriers, memory - arithmetic, *map(weighted, spaces),
                                weighted(private)]
        rows.append(cache[id(graph)])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(LOOP_SUMMARY_COLUMNS))


def unique_graphs(modules: Sequence[IRModule]) -> list[ProgramGraph]:
    """One program graph per module, built once per distinct module object (rows that share a kernel share it)."""
    from ncc.graph import build

    graphs: dict[int, ProgramGraph] = {}
    for module in modules:
        if id(module) not in graphs:
            graphs[id(module)] = build(module, name=module.name)
    return [graphs[id(module)] for module in modules]
