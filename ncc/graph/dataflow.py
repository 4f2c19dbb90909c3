"""ProGraML's five data-flow analyses as root-node queries over a program graph: the labels of learning tasks.

Each analysis answers, for a root node, a binary label on every node, and the number of *steps* it took:
the synchronous rounds of its iterative solver until the root's labels stopped changing (round 1 is the
initial state), the number of message-passing steps a graph network needs to reproduce the answer.
Each also has a second, independent formulation (:meth:`RootAnalysis.reference`), so that the labels can
be checked against it on whole corpora.

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
  the phi). Reference: per variable, the nodes from which a use is reachable without passing its definition.
* ``subexpressions``: root an instruction that computes an expression (arithmetic, bitwise, comparison,
  cast, ``getelementptr``, ``select``); label every other instruction computing the same one: the same
  operation, predicate and result type on the same operand nodes, by position, or in either order for
  commutative operations. Dominance is not required. Reference: comparing every pair of instructions.

All numpy and networkx, no torch.
"""

from __future__ import annotations

import abc
from functools import cached_property

import networkx as nx
import numpy as np

from ncc.graph.program_graph import CONTROL, DATA, INSTRUCTION, VARIABLE, ProgramGraph

__all__ = ["RootAnalysis", "Reachability", "Dominance", "DataDependencies", "Liveness", "Subexpressions",
           "ANALYSES", "analysis"]


def _meet(sets: list[int], everything: int) -> int:
    """The intersection of bitsets (``everything`` for none)."""
    value = everything
    for item in sets:
        value &= item
    return value


def _bits(mask: int) -> list[int]:
    """The positions of the set bits of a Python int."""
    positions = []
    while mask:
        low = mask & -mask
        positions.append(low.bit_length() - 1)
        mask ^= low
    return positions


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


class Reachability(RootAnalysis):
    """Instructions control reaches from the root (see the module docstring)."""

    name = "reachability"

    def query(self, root: int) -> tuple[np.ndarray, int]:
        self._check_root(root)
        reached, frontier, steps = {root}, [root], 1
        while True:
            frontier = [s for n in frontier for s in self.control.successors(n) if s not in reached]
            if not frontier:
                return self._labels(reached), steps
            reached.update(frontier)
            steps += 1

    def reference(self, root: int) -> np.ndarray:
        return self._labels(nx.descendants(self.control, root) | {root})


class Dominance(RootAnalysis):
    """Instructions the root dominates in its function (see the module docstring)."""

    name = "dominance"

    def _function(self, root: int) -> tuple[int, list[int]]:
        """The entry and the instructions of the root's function."""
        graph = self.graph
        members = np.flatnonzero((graph.node_function == graph.node_function[root])
                                 & (graph.node_type == INSTRUCTION)).tolist()
        return members[0], members

    @cached_property
    def _solved(self) -> dict[int, tuple[list[int], dict[int, int], list[int]]]:
        """Per function: its instructions, the final Dom bitsets, and per round of the solver the bitset of the
        roots whose membership of some Dom set changed in that round."""
        solved = {}
        for function in np.unique(self.graph.node_function[self.graph.node_type == INSTRUCTION]):
            if function < 0:
                continue
            members = np.flatnonzero((self.graph.node_function == function)
                                     & (self.graph.node_type == INSTRUCTION)).tolist()
            entry = members[0]
            index = {node: i for i, node in enumerate(members)}
            reachable = sorted(nx.descendants(self.control, entry) | {entry})
            everything = sum(1 << index[n] for n in reachable)
            dom = {n: everything for n in reachable}
            dom[entry] = 1 << index[entry]
            changed_roots = [everything]  # round 1: the initial state
            while True:
                new = {n: (dom[n] if n == entry else
                           _meet([dom[p] for p in self.control.predecessors(n) if p in dom], everything)
                           | (1 << index[n]))
                       for n in reachable}
                changes = 0
                for n in reachable:
                    changes |= new[n] ^ dom[n]
                if not changes:
                    break
                changed_roots.append(changes)
                dom = new
            solved[int(function)] = (members, dom, changed_roots)
        return solved

    def query(self, root: int) -> tuple[np.ndarray, int]:
        self._check_root(root)
        members, final, changed_roots = self._solved[int(self.graph.node_function[root])]
        if root not in final:  # unreachable from the entry: dominates nothing, not even itself
            return self._labels([]), 1
        bit = 1 << members.index(root)
        steps = max(k + 1 for k, changes in enumerate(changed_roots) if changes & bit)
        return self._labels(n for n, dominators in final.items() if dominators & bit), steps

    def reference(self, root: int) -> np.ndarray:
        entry, members = self._function(root)
        cfg = self.control.subgraph(members)
        if root not in nx.descendants(cfg, entry) | {entry}:
            return self._labels([])
        idom = nx.immediate_dominators(cfg, entry)
        tree = nx.DiGraph((parent, child) for child, parent in idom.items() if child != parent)
        tree.add_node(root)
        return self._labels(nx.descendants(tree, root) | {root})


class DataDependencies(RootAnalysis):
    """Instructions and variables the root depends on through data flow (see the module docstring)."""

    name = "datadep"
    labelled = (INSTRUCTION, VARIABLE)

    def query(self, root: int) -> tuple[np.ndarray, int]:
        self._check_root(root)
        labelled = set(self.labelled)
        found, frontier, steps = set(), [root], 1
        while True:
            frontier = [p for n in frontier for p in self.data.predecessors(n)
                        if p not in found and self.graph.node_type[p] in labelled]
            frontier = list(dict.fromkeys(frontier))
            if not frontier:
                return self._labels(found), steps
            found.update(frontier)
            steps += 1

    def reference(self, root: int) -> np.ndarray:
        values = self.data.subgraph(np.flatnonzero(self.mask()).tolist())
        found = set()
        for operand in values.predecessors(root):
            found |= nx.ancestors(values, operand) | {operand}
        return self._labels(found)


class Liveness(RootAnalysis):
    """Variables live on exit from the root (see the module docstring)."""

    name = "liveness"
    labelled = (VARIABLE,)

    def mask(self) -> np.ndarray:
        """Function-local variables (instruction results and arguments; globals are never live or dead)."""
        return (self.graph.node_type == VARIABLE) & (self.graph.node_function >= 0)

    @cached_property
    def _uses_defs(self) -> tuple[dict[int, int], dict[int, int], list[int]]:
        """Per instruction, the bitsets of variables it uses and defines; the variables in bit order."""
        graph = self.graph
        variables = np.flatnonzero(self.mask()).tolist()
        bit = {v: i for i, v in enumerate(variables)}
        uses = {n: 0 for n in self.control.nodes}
        defs = {n: 0 for n in self.control.nodes}
        for source, target in graph.edges(DATA).T.tolist():
            if source in bit and target in uses:
                uses[target] |= 1 << bit[source]
            elif target in bit and source in defs:
                defs[source] |= 1 << bit[target]
        return uses, defs, variables

    @cached_property
    def _solved(self) -> tuple[dict[int, int], dict[int, int]]:
        """LiveOut of every instruction at the fixed point, and the round each last changed."""
        uses, defs, _ = self._uses_defs
        nodes = list(self.control.nodes)
        live_out = {n: 0 for n in nodes}
        changed = {n: 1 for n in nodes}
        round_ = 1
        while True:
            round_ += 1
            new = {}
            for n in nodes:
                value = 0
                for s in self.control.successors(n):
                    value |= uses[s] | (live_out[s] & ~defs[s])
                new[n] = value
            moved = [n for n in nodes if new[n] != live_out[n]]
            if not moved:
                return live_out, changed
            for n in moved:
                changed[n] = round_
            live_out = new

    def query(self, root: int) -> tuple[np.ndarray, int]:
        self._check_root(root)
        live_out, changed = self._solved
        _, _, variables = self._uses_defs
        return self._labels(variables[i] for i in _bits(live_out[root])), changed[root]

    def reference(self, root: int) -> np.ndarray:
        graph = self.graph
        live = set()
        for variable in np.flatnonzero(self.mask()).tolist():
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
            if any(s in live_in for s in self.control.successors(root)):
                live.add(variable)
        return self._labels(live)


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
        operands: dict[int, list[tuple[int, int]]] = {}
        results: dict[int, str] = {}
        data = graph.edge_flow == DATA
        for (source, target), position in zip(graph.edge_index[:, data].T.tolist(),
                                              graph.edge_position[data].tolist()):
            if graph.node_type[target] == INSTRUCTION:
                operands.setdefault(target, []).append((position, source))
            elif graph.node_type[source] == INSTRUCTION:
                results[source] = str(graph.node_text[target])
        keys = {}
        for node in np.flatnonzero(graph.node_type == INSTRUCTION).tolist():
            operation = str(graph.node_text[node])
            if operation not in EXPRESSIONS or node not in results:
                continue
            predicate = _predicate(str(graph.node_full_text[node]), operation)
            ordered = tuple(source for _, source in sorted(operands.get(node, [])))
            if len(ordered) == 2 and (operation in COMMUTATIVE or predicate in _SYMMETRIC_PREDICATES):
                ordered = tuple(sorted(ordered))
            keys[node] = (operation, predicate, results[node], ordered)
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
