"""ProGraML's five data-flow analyses as root-node queries over a program graph: the labels of learning tasks.

Each analysis answers, for a root node, a binary label on every node, and the number of *steps* it took:
the synchronous rounds of its iterative solver until the root's labels stopped changing (round 1 is the
initial state), the number of message-passing steps a graph network needs to reproduce the answer.
Each also has a second, independent formulation (:meth:`RootAnalysis.reference`), so that the labels can
be checked against it on whole corpora.

The solvers (:meth:`RootAnalysis.query`) do not run those rounds: each answers from breadth-first distances
over scipy CSR matrices (a node joins the root's labels in round ``1 +`` its distance along the analysis'
edges), with what all roots share built once per graph (or per function). Each class's docstring says why
its distances give exactly the rounds; the tests check labels and steps against the round-based solvers.

Definitions on ncc's graphs (one variable node per value, instruction-level control flow; ProGraML has one
variable node per value and using block, and its own instruction graph):

* ``reachability``: root an instruction; label every instruction that control flow reaches from it, the
  root included. Reference: networkx descendants.
* ``dominance``: root an instruction; label every instruction it dominates in its function, the root
  included (``Dom(m) = {m} ∪ ⋂ Dom(pred(m))`` from the function's entry; instructions unreachable from the
  entry are dominated by nothing). Reference: networkx ``immediate_dominators``; LLVM's own dominator trees
  in ``benchmarks/dataflow_labels.py``.
* ``datadep``: root an instruction; label every instruction and variable it depends on through data flow,
  transitively (``defs(n) ∪ DataDep(defs(n))``); the root itself only when it depends on itself (a cycle
  through a phi). Constants are never labelled. Reference: networkx ancestors.
* ``liveness``: root an instruction; label every function-local variable live on exit from it:
  ``LiveOut(n) = ⋃_{s ∈ succ(n)} uses(s) ∪ (LiveOut(s) − defs(s))``, where ``uses`` are the variables a
  node reads and ``defs`` the one it defines (ProGraML's formulation: a phi's operands count as uses at
  the phi). Reference: per variable of the root's function, the nodes from which a use is reachable without
  passing its definition (computed once per function).
* ``subexpressions``: root an instruction that computes an expression (arithmetic, bitwise, comparison,
  cast, ``getelementptr``, ``select``); label every other instruction computing the same one: the same
  operation, predicate and result type on the same operand nodes, by position, or in either order for
  commutative operations. Dominance is not required. Reference: comparing every pair of instructions.

All numpy, scipy and networkx, no torch.
"""

from __future__ import annotations

import abc
from functools import cached_property

import networkx as nx
import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import dijkstra

from ncc.graph.program_graph import CONTROL, DATA, INSTRUCTION, VARIABLE, ProgramGraph

__all__ = ["RootAnalysis", "Reachability", "Dominance", "DataDependencies", "Liveness", "Subexpressions",
           "ANALYSES", "analysis"]


class RootAnalysis(abc.ABC):
    """A root-node analysis of one graph (built once, then queried per root).

    Attributes:
        name: the analysis' name (:data:`ANALYSES`).
        labelled: the node type(s) the analysis labels (the nodes a task scores).
    """

    name = ""
    labelled: tuple[int, ...] = (INSTRUCTION,)

    def __init__(self, graph: ProgramGraph):
        self.graph = graph

    def roots(self) -> np.ndarray:
        """The nodes that may be a root: instructions other than the external node (0)."""
        candidates = np.flatnonzero(self.graph.node_type == INSTRUCTION)
        return candidates[candidates != 0]

    def mask(self) -> np.ndarray:
        """``bool [N]``: the nodes the analysis labels."""
        return np.isin(self.graph.node_type, self.labelled)

    @abc.abstractmethod
    def query(self, root: int) -> tuple[np.ndarray, int]:
        """``bool [N]`` labels of a root and the steps its solver needed."""

    @abc.abstractmethod
    def reference(self, root: int) -> np.ndarray:
        """The same labels by an independent formulation."""

    @cached_property
    def _root_set(self) -> frozenset[int]:
        return frozenset(self.roots().tolist())

    def _check_root(self, root: int) -> None:
        if root not in self._root_set:
            raise ValueError(f"node {root} cannot be a root of {self.name}")

    def _labels(self, nodes) -> np.ndarray:
        labels = np.zeros(self.graph.num_nodes, dtype=bool)
        labels[list(nodes)] = True
        return labels

    # ---------------------------------------------------------------- sparse matrices of the solvers (query)

    def _matrix(self, sources: np.ndarray, targets: np.ndarray) -> sparse.csr_matrix:
        """``N x N`` adjacency (CSR) of the given edges."""
        n = self.graph.num_nodes
        order = np.argsort(sources, kind="stable")
        pointers = np.concatenate(([0], np.cumsum(np.bincount(sources, minlength=n))))
        return sparse.csr_matrix((np.ones(len(sources)), np.asarray(targets)[order], pointers), shape=(n, n))

    @cached_property
    def _control_matrix(self) -> sparse.csr_matrix:
        """Control flow as a CSR adjacency over all nodes."""
        sources, targets = self.graph.edges(CONTROL)
        return self._matrix(sources, targets)

    # ---------------------------------------------------------------- networkx graphs of the references

    @cached_property
    def control(self) -> nx.DiGraph:
        """Control flow over the instruction nodes."""
        flow = nx.DiGraph()
        flow.add_nodes_from(np.flatnonzero(self.graph.node_type == INSTRUCTION).tolist())
        flow.add_edges_from(self.graph.edges(CONTROL).T.tolist())
        return flow

    @cached_property
    def data(self) -> nx.DiGraph:
        """Data flow: values to their users, instructions to the variables they define."""
        flow = nx.DiGraph()
        flow.add_nodes_from(range(self.graph.num_nodes))
        flow.add_edges_from(self.graph.edges(DATA).T.tolist())
        return flow


def _distances(matrix: sparse.csr_matrix, source: int) -> np.ndarray:
    """Breadth-first distances (edges) from a source over a CSR adjacency; ``inf`` where it does not reach."""
    return dijkstra(matrix, directed=True, indices=source, unweighted=True)


def _without_rows(matrix: sparse.csr_matrix, rows) -> sparse.csr_matrix:
    """The adjacency with the out-edges of some nodes removed (they can be reached, not passed)."""
    keep = np.ones(matrix.nnz, dtype=bool)
    lengths = np.diff(matrix.indptr)
    for row in rows:
        keep[matrix.indptr[row]:matrix.indptr[row + 1]] = False
        lengths[row] = 0
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    return sparse.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)


def _longest(distances: np.ndarray, exclude: int | None = None) -> int:
    """The largest finite distance (0 for none), ignoring one node."""
    finite = np.isfinite(distances)
    if exclude is not None:
        finite[exclude] = False
    return int(distances[finite].max()) if finite.any() else 0


class Reachability(RootAnalysis):
    """Instructions control reaches from the root (see the module docstring).

    Solver: breadth-first distances from the root; a node is reached in round ``1 + distance``, so the steps
    are one more than the farthest reached node's distance.
    """

    name = "reachability"

    def query(self, root: int) -> tuple[np.ndarray, int]:
        self._check_root(root)
        distances = _distances(self._control_matrix, root)
        return np.isfinite(distances), 1 + _longest(distances)

    def reference(self, root: int) -> np.ndarray:
        return self._labels(nx.descendants(self.control, root) | {root})


class Dominance(RootAnalysis):
    """Instructions the root dominates in its function (see the module docstring).

    Solver: ``r`` dominates ``m`` iff every path from the entry to ``m`` passes ``r``, i.e. ``m`` is reachable
    from the entry but not once ``r`` is taken out. The round-based solver (``Dom`` sets from "everything",
    synchronous rounds) drops ``r`` from ``Dom(m)`` in the round equal to the entry's distance to ``m`` avoiding
    ``r``, so the steps are ``1 +`` the largest such distance (round 1 is the initial state).
    """

    name = "dominance"

    def _function(self, root: int) -> tuple[int, list[int]]:
        """The entry and the instructions of the root's function."""
        graph = self.graph
        members = np.flatnonzero((graph.node_function == graph.node_function[root])
                                 & (graph.node_type == INSTRUCTION)).tolist()
        return members[0], members

    @cached_property
    def _functions(self) -> dict[int, tuple]:
        """Per function, built on first use: its instructions, their control CSR (local indices; the entry is 0)
        and which are reachable from the entry."""
        return {}

    def _solver(self, function: int) -> tuple:
        if function not in self._functions:
            graph = self.graph
            members = np.flatnonzero((graph.node_function == function) & (graph.node_type == INSTRUCTION))
            local = np.full(graph.num_nodes, -1, dtype=np.int64)
            local[members] = np.arange(len(members))
            sources, targets = graph.edges(CONTROL)
            inside = (local[sources] >= 0) & (local[targets] >= 0)
            matrix = sparse.csr_matrix((np.ones(int(inside.sum())),
                                        (local[sources[inside]], local[targets[inside]])),
                                       shape=(len(members), len(members)))
            self._functions[function] = (members, local, matrix, np.isfinite(_distances(matrix, 0)))
        return self._functions[function]

    def query(self, root: int) -> tuple[np.ndarray, int]:
        self._check_root(root)
        members, local, matrix, reachable = self._solver(int(self.graph.node_function[root]))
        r = int(local[root])
        labels = np.zeros(self.graph.num_nodes, dtype=bool)
        if not reachable[r]:  # unreachable from the entry: dominates nothing, not even itself
            return labels, 1
        avoiding = _distances(_without_rows(matrix, [r]), 0)
        dominated = reachable & ~np.isfinite(avoiding)
        dominated[r] = True
        labels[members[dominated]] = True
        return labels, 1 + _longest(avoiding, exclude=r)

    @cached_property
    def _trees(self) -> dict[int, tuple[set[int], nx.DiGraph]]:
        """Per function, built on first use by :meth:`reference`: the nodes reachable from its entry and its
        dominator tree from networkx's ``immediate_dominators``."""
        return {}

    def reference(self, root: int) -> np.ndarray:
        function = int(self.graph.node_function[root])
        if function not in self._trees:
            entry, members = self._function(root)
            cfg = self.control.subgraph(members)
            idom = nx.immediate_dominators(cfg, entry)
            tree = nx.DiGraph((parent, child) for child, parent in idom.items() if child != parent)
            self._trees[function] = (nx.descendants(cfg, entry) | {entry}, tree)
        reachable, tree = self._trees[function]
        if root not in reachable:
            return self._labels([])
        return self._labels((nx.descendants(tree, root) if root in tree else set()) | {root})


class DataDependencies(RootAnalysis):
    """Instructions and variables the root depends on through data flow (see the module docstring).

    Solver: breadth-first distances from the root against data flow, over labelled nodes only; the root is
    found again, one edge after the nearest of its users, when it lies on a cycle. Steps: ``1 +`` the
    largest distance at which something is found.
    """

    name = "datadep"
    labelled = (INSTRUCTION, VARIABLE)

    @cached_property
    def _backwards(self) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        """Data flow between labelled nodes: reversed (users to operands) and forwards, as CSR."""
        sources, targets = self.graph.edges(DATA)
        mask = self.mask()
        kept = mask[sources] & mask[targets]
        return self._matrix(targets[kept], sources[kept]), self._matrix(sources[kept], targets[kept])

    def query(self, root: int) -> tuple[np.ndarray, int]:
        self._check_root(root)
        backwards, forwards = self._backwards
        distances = _distances(backwards, root)
        labels = np.isfinite(distances)
        labels[root] = False
        longest = _longest(distances, exclude=root)
        users = forwards.indices[forwards.indptr[root]:forwards.indptr[root + 1]]
        cycle = distances[users].min() + 1 if len(users) else np.inf  # the root depends on itself
        if np.isfinite(cycle):
            labels[root] = True
            longest = max(longest, int(cycle))
        return labels, 1 + longest

    @cached_property
    def _values(self) -> nx.DiGraph:
        return self.data.subgraph(np.flatnonzero(self.mask()).tolist()).copy()

    def reference(self, root: int) -> np.ndarray:
        values = self._values
        found = set()
        for operand in values.predecessors(root):
            found |= nx.ancestors(values, operand) | {operand}
        return self._labels(found)


def _positions(bits: int) -> np.ndarray:
    """The positions of the set bits of a Python int, ascending."""
    if not bits:
        return np.zeros(0, dtype=np.int64)
    raw = np.frombuffer(bits.to_bytes((bits.bit_length() + 7) // 8, "little"), dtype=np.uint8)
    return np.flatnonzero(np.unpackbits(raw, bitorder="little"))


class Liveness(RootAnalysis):
    """Variables live on exit from the root (see the module docstring).

    Solver: the live sets from a bit-vector fixed point over straight-line segments (basic blocks), then the
    root's own set by a backward scan of its block. Steps: the round-based solver (from empty sets) adds ``v``
    to ``LiveOut(n)`` in round ``1 + d``, ``d`` the length of the shortest path from ``n`` to a use of ``v``
    that does not pass a definition of ``v``; the steps are ``1 +`` the largest ``d`` over the live variables
    (breadth-first distances from the root, and again without a definition's out-edges where one lies nearer
    than the nearest use).
    """

    name = "liveness"
    labelled = (VARIABLE,)

    def mask(self) -> np.ndarray:
        """Function-local variables (instruction results and arguments; globals are never live or dead)."""
        return (self.graph.node_type == VARIABLE) & (self.graph.node_function >= 0)

    @cached_property
    def _uses_defs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Variables in bit order; per variable the instructions using it and defining it (CSR over bits:
        pointers, nodes), as ``(variables, use_ptr, use_nodes, def_ptr, def_nodes)``."""
        graph = self.graph
        variables = np.flatnonzero(self.mask())
        bit = np.full(graph.num_nodes, -1, dtype=np.int64)
        bit[variables] = np.arange(len(variables))
        sources, targets = graph.edges(DATA)
        instruction = graph.node_type == INSTRUCTION
        result = []
        for variable, node in ((sources, targets), (targets, sources)):  # uses, then definitions
            keep = (bit[variable] >= 0) & instruction[node]
            bits, nodes = bit[variable[keep]], node[keep]
            order = np.lexsort((nodes, bits))
            result += [np.searchsorted(bits[order], np.arange(len(variables) + 1)), nodes[order]]
        return (variables, *result)

    @cached_property
    def _blocks(self) -> tuple[np.ndarray, np.ndarray, list[int], list[int], list[int]]:
        """Instructions cut into straight-line segments, with every instruction's uses and definitions as
        bitsets: ``(segment of each node, segment starts (node ids), uses, defs, LiveOut of each segment)``.

        A segment is a basic block (consecutive node ids, control only from each to the next) where the graph
        has that shape; anything else is a segment of its own, so the fixed point is exact either way.
        """
        graph = self.graph
        n = graph.num_nodes
        variables, use_ptr, use_nodes, def_ptr, def_nodes = self._uses_defs
        uses, defs = [0] * n, [0] * n
        for table, ptr, nodes in ((uses, use_ptr, use_nodes), (defs, def_ptr, def_nodes)):
            owner = np.repeat(np.arange(len(variables)), np.diff(ptr))
            for node, b in zip(nodes.tolist(), owner.tolist()):
                table[node] |= 1 << b
        instructions = np.flatnonzero(graph.node_type == INSTRUCTION)
        sources, targets = graph.edges(CONTROL)
        key = graph.node_function[instructions].astype(np.int64) * (1 << 32) + graph.node_block[instructions]
        starts = np.r_[True, (key[1:] != key[:-1]) | (np.diff(instructions) != 1)]
        out_degree = np.bincount(sources, minlength=n)
        in_degree = np.bincount(targets, minlength=n)
        ends = np.r_[starts[1:], True]
        sequential = np.zeros(n, dtype=bool)  # an edge node -> node + 1 inside a segment
        inner = np.zeros(n, dtype=bool)
        inner[instructions[~ends]] = True
        sequential[sources[(targets == sources + 1) & inner[sources]]] = True
        # inside a segment: one edge to the next node, and the next node entered from nothing else
        starts |= np.r_[False, ~(sequential[instructions[:-1]] & (out_degree[instructions[:-1]] == 1)
                                 & (in_degree[instructions[1:]] == 1))]
        segment = np.full(n, -1, dtype=np.int64)
        segment[instructions] = np.cumsum(starts) - 1
        first = instructions[starts]
        last = np.r_[instructions[np.flatnonzero(starts)[1:] - 1], instructions[-1:]]
        count = len(first)
        crossing = segment[sources] != segment[targets]
        successors: list[list[int]] = [[] for _ in range(count)]
        for a, b in set(zip(segment[sources[crossing]].tolist(), segment[targets[crossing]].tolist())):
            successors[a].append(b)
        for a in np.unique(segment[sources[~crossing & (targets == first[segment[targets]])]]).tolist():
            successors[a].append(a)  # a block looping to itself
        gen, kill = [0] * count, [0] * count
        for s in range(count):
            g = k = 0
            for node in range(int(last[s]), int(first[s]) - 1, -1):
                g = uses[node] | (g & ~defs[node])
                k |= defs[node]
            gen[s], kill[s] = g, k
        live_out, live_in = [0] * count, list(gen)
        changed = True
        while changed:  # round-robin from the last segment back, until nothing changes
            changed = False
            for s in range(count - 1, -1, -1):
                out = 0
                for t in successors[s]:
                    out |= live_in[t]
                if out != live_out[s]:
                    live_out[s] = out
                    live_in[s] = gen[s] | (out & ~kill[s])
                    changed = True
        return segment, last, uses, defs, live_out

    def _live_out(self, root: int) -> int:
        """LiveOut of an instruction as a bitset over :meth:`_uses_defs`' variables."""
        segment, last, uses, defs, live_out = self._blocks
        s = int(segment[root])
        live = live_out[s]
        for node in range(int(last[s]), root, -1):
            live = uses[node] | (live & ~defs[node])
        return live

    def _nearest_uses(self, root: int, distances: np.ndarray, bits: np.ndarray, blocked=()) -> np.ndarray:
        """Per variable bit, the shortest distance from the root to a use (the root itself: around a cycle)."""
        _, use_ptr, use_nodes, _, _ = self._uses_defs
        predecessors = self._predecessors.indices[self._predecessors.indptr[root]:self._predecessors.indptr[root + 1]]
        predecessors = predecessors[~np.isin(predecessors, list(blocked))]
        around = distances[predecessors].min() + 1 if len(predecessors) else np.inf
        starts, stops = use_ptr[bits], use_ptr[bits + 1]
        nodes = use_nodes[np.concatenate([np.arange(a, b) for a, b in zip(starts.tolist(), stops.tolist())])]
        values = np.where(nodes == root, around, distances[nodes])
        return np.minimum.reduceat(values, np.concatenate(([0], np.cumsum(stops - starts)[:-1])))

    @cached_property
    def _predecessors(self) -> sparse.csr_matrix:
        return self._control_matrix.T.tocsr()

    def query(self, root: int) -> tuple[np.ndarray, int]:
        self._check_root(root)
        variables, _, _, def_ptr, def_nodes = self._uses_defs
        bits = _positions(self._live_out(root))
        labels = np.zeros(self.graph.num_nodes, dtype=bool)
        labels[variables[bits]] = True
        if not len(bits):
            return labels, 1
        distances = _distances(self._control_matrix, root)
        nearest = self._nearest_uses(root, distances, bits)
        longest = 0
        for b, d in zip(bits.tolist(), nearest.tolist()):
            definers = [node for node in def_nodes[def_ptr[b]:def_ptr[b + 1]].tolist() if node != root]
            if any(distances[node] < d for node in definers):  # a definition nearer than the nearest use
                avoiding = _distances(_without_rows(self._control_matrix, definers), root)
                d = float(self._nearest_uses(root, avoiding, np.array([b]), definers)[0])
            if not np.isfinite(d):
                raise AssertionError(f"liveness: variable {variables[b]} live after {root} but no use reached")
            longest = max(longest, int(d))
        return labels, 1 + longest

    @cached_property
    def _live_in(self) -> dict[int, dict[int, set[int]]]:
        """Per function, built on first use by :meth:`reference`: per variable, the nodes it is live on entry to."""
        return {}

    def reference(self, root: int) -> np.ndarray:
        graph = self.graph
        function = int(graph.node_function[root])
        if function not in self._live_in:
            sets = {}
            for variable in np.flatnonzero(self.mask() & (graph.node_function == function)).tolist():
                users = [u for u in self.data.successors(variable) if graph.node_type[u] == INSTRUCTION]
                definers = {d for d in self.data.predecessors(variable) if graph.node_type[d] == INSTRUCTION}
                # LiveIn of the variable: its users, and every node with a path to a user that does not define it.
                live_in, stack = set(users), list(users)
                while stack:
                    node = stack.pop()
                    for p in self.control.predecessors(node):
                        if p not in live_in and p not in definers:
                            live_in.add(p)
                            stack.append(p)
                sets[variable] = live_in
            self._live_in[function] = sets
        successors = set(self.control.successors(root))
        return self._labels(v for v, live_in in self._live_in[function].items() if live_in & successors)


#: Operations that compute an expression of their operands alone.
EXPRESSIONS = frozenset(("add", "sub", "mul", "udiv", "sdiv", "urem", "srem", "shl", "lshr", "ashr", "and", "or",
                         "xor", "fadd", "fsub", "fmul", "fdiv", "frem", "fneg", "icmp", "fcmp", "trunc", "zext",
                         "sext", "fptrunc", "fpext", "fptoui", "fptosi", "uitofp", "sitofp", "ptrtoint",
                         "inttoptr", "bitcast", "addrspacecast", "getelementptr", "select", "extractelement",
                         "insertelement", "shufflevector", "extractvalue", "insertvalue", "freeze"))
#: Operations whose two operands may be swapped (comparisons: equality only).
COMMUTATIVE = frozenset(("add", "mul", "and", "or", "xor", "fadd", "fmul"))
_SYMMETRIC_PREDICATES = frozenset(("eq", "ne", "oeq", "one", "ueq", "une", "ord", "uno", "true", "false"))


class Subexpressions(RootAnalysis):
    """Other instructions computing the root's expression (see the module docstring)."""

    name = "subexpressions"

    @cached_property
    def _keys(self) -> dict[int, tuple]:
        """The expression of every instruction that computes one: (operation, predicate, type, operands)."""
        graph = self.graph
        instruction = graph.node_type == INSTRUCTION
        data = graph.edge_flow == DATA
        sources, targets = graph.edge_index[:, data].astype(np.int64)
        positions = graph.edge_position[data]
        results = dict(zip(sources[~instruction[targets] & instruction[sources]].tolist(),
                           graph.node_text[targets[~instruction[targets] & instruction[sources]]].tolist()))
        into = instruction[targets]
        order = np.lexsort((sources[into], positions[into], targets[into]))  # by user, position, operand
        users, operands = targets[into][order], sources[into][order].tolist()
        text = graph.node_text
        keys = {}
        for node in np.flatnonzero(instruction & np.isin(text, list(EXPRESSIONS))).tolist():
            if node not in results:
                continue
            operation = str(text[node])
            predicate = _predicate(str(graph.node_full_text[node]), operation)
            ordered = tuple(operands[np.searchsorted(users, node):np.searchsorted(users, node, side="right")])
            if len(ordered) == 2 and (operation in COMMUTATIVE or predicate in _SYMMETRIC_PREDICATES):
                ordered = tuple(sorted(ordered))
            keys[node] = (operation, predicate, str(results[node]), ordered)
        return keys

    @cached_property
    def _groups(self) -> dict[tuple, list[int]]:
        """Expression -> the instructions computing it."""
        groups: dict[tuple, list[int]] = {}
        for node, key in self._keys.items():
            groups.setdefault(key, []).append(node)
        return groups

    def roots(self) -> np.ndarray:
        return np.array(sorted(self._keys), dtype=np.int64)

    def query(self, root: int) -> tuple[np.ndarray, int]:
        self._check_root(root)
        same = [n for n in self._groups[self._keys[root]] if n != root]
        return self._labels(same), 3 if same else 1  # root -> shared operand -> other instruction

    def reference(self, root: int) -> np.ndarray:
        graph = self.graph
        mine = self._operands(root)
        same = []
        for node in self._keys:
            if node == root or graph.node_text[node] != graph.node_text[root]:
                continue
            if self._keys[node][1:3] != self._keys[root][1:3]:
                continue
            theirs = self._operands(node)
            swappable = self._keys[root][0] in COMMUTATIVE or self._keys[root][1] in _SYMMETRIC_PREDICATES
            if theirs == mine or (swappable and len(mine) == 2 and theirs == mine[::-1]):
                same.append(node)
        return self._labels(same)

    def _operands(self, node: int) -> list[int]:
        graph = self.graph
        into = (graph.edge_index[1] == node) & (graph.edge_flow == DATA)
        order = np.argsort(graph.edge_position[into], kind="stable")
        return graph.edge_index[0, into][order].tolist()


def _predicate(full_text: str, operation: str) -> str:
    """A comparison's predicate (``slt``, ``oeq`` ...), else ""."""
    if operation not in ("icmp", "fcmp"):
        return ""
    words = full_text.split("=", 1)[-1].split()
    position = words.index(operation) if operation in words else -1
    following = [w for w in words[position + 1:] if w not in ("fast", "nnan", "ninf", "nsz", "arcp", "contract",
                                                              "afn", "reassoc", "samesign")]
    return following[0] if following else ""


#: Analysis name -> class.
ANALYSES: dict[str, type[RootAnalysis]] = {cls.name: cls for cls in (Reachability, Dominance, DataDependencies,
                                                                      Liveness, Subexpressions)}


def analysis(name: str, graph: ProgramGraph) -> RootAnalysis:
    """The analysis of a name over a graph.

    Raises:
        ValueError: an unknown name (the message lists the analyses).
    """
    if name not in ANALYSES:
        raise ValueError(f"unknown analysis {name!r}; choose one of {', '.join(ANALYSES)}")
    return ANALYSES[name](graph)
