"""Analyses over a program graph's control and data flow."""

from __future__ import annotations

import re

import networkx as nx
import numpy as np

from ncc.graph.program_graph import CONSTANT, CONTROL, DATA, INSTRUCTION, ProgramGraph

__all__ = ["loop_depths", "address_strides", "UNIFORM", "UNIT_STRIDE", "SCATTERED"]


def loop_depths(graph: ProgramGraph) -> np.ndarray:
    """``int32 [N]``: how many loops enclose each node (0 outside loops, and for variables and constants).

    Loops are found on the control-flow edges as nested strongly connected components: a component with
    a cycle is a loop; its headers (members entered from outside it) lose their in-edges from inside,
    and what still cycles in its body are the inner loops. Irreducible loops (several headers) count once.
    """
    control = graph.edge_index[:, graph.edge_flow == CONTROL]
    flow = nx.DiGraph()
    flow.add_nodes_from(np.flatnonzero(graph.node_type == INSTRUCTION).tolist())
    flow.add_edges_from(control.T.tolist())
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


#: Classes of :func:`address_strides`: how an address varies between neighbouring work-items.
UNIFORM, UNIT_STRIDE, SCATTERED = 0, 1, 2
_VARIES = "varies"  # a value whose step between neighbouring work-items is not one constant
_PASS_THROUGH = {"trunc", "sext", "zext", "bitcast", "addrspacecast", "freeze", "ptrtoint", "inttoptr"}
_WORK_ITEM_X = re.compile(r"@_Z1[23]get_(?:global|local)_idj\(i32(?: noundef)? 0\)")
_WORK_ITEM_QUERY = re.compile(r"@_Z\d+get_\w+j\(")
_SCALAR_BYTES = {"i1": 1, "i8": 1, "i16": 2, "i32": 4, "i64": 8, "half": 2, "bfloat": 2, "float": 4, "double": 8,
                 "ptr": 8}
_AGGREGATE = re.compile(r"^[<\[](\d+) x (.+)[>\]]$")
_GEP_TYPE = re.compile(r"getelementptr (?:(?:inbounds|nuw|nusw|inrange\(\S+\)) )*(.+?), ptr")
_BLOCK_COPY = re.compile(r"@llvm\.mem(?:cpy|move|set)\.")
_ACCESS_TYPE = re.compile(r"(?:\S+ = )?(?:load|store) (?:atomic )?(?:volatile )?(.+?)(?:, ptr| %| @| [-\d])")


def address_strides(graph: ProgramGraph) -> np.ndarray:
    """``int8 [N]``: for each load, store and block copy (``llvm.memcpy``, ``llvm.memmove``, ``llvm.memset``),
    how its address moves from one work-item to the next (a copy: the worse of its two addresses).

    The step is followed in bytes along the first work-item dimension, from ``get_global_id(0)`` and
    ``get_local_id(0)`` (step 1) through casts, sums, products with constants, phis and
    ``getelementptr`` (scaled by the element size). :data:`UNIFORM`: step 0 (loop counters, arguments,
    the other dimensions' ids); :data:`UNIT_STRIDE`: a step no longer than the accessed element, so
    neighbouring work-items touch neighbouring elements (a coalesced access on a GPU); :data:`SCATTERED`:
    a longer or unknown step (the id scaled by a row length, an address loaded from memory). ``-1`` for
    every other node. A forward data-flow analysis over the data edges, to a fixed point through phis.
    """
    producer: dict[int, int] = {}
    operands: dict[int, list[tuple[int, int]]] = {}
    data = graph.edge_flow == DATA
    for source, target, position in zip(*graph.edge_index[:, data].tolist(), graph.edge_position[data].tolist()):
        if graph.node_type[source] == INSTRUCTION:
            producer[target] = source
        else:
            operands.setdefault(target, []).append((position, source))
    instructions = np.flatnonzero(graph.node_type == INSTRUCTION).tolist()
    inputs = {i: [node for _, node in sorted(operands.get(i, []))] for i in instructions}
    step: dict[int, int | str | None] = dict.fromkeys(instructions)

    def value(node: int) -> int | str | None:
        return step[producer[node]] if node in producer else 0

    changed = True
    while changed:
        changed = False
        for i in instructions:
            new = _step(graph, i, inputs[i], value)
            if new is not None and new != step[i]:
                step[i] = new if step[i] is None else _VARIES  # a step only ever changes to "varies"
                changed = True

    classes = np.full(graph.num_nodes, -1, dtype=np.int8)
    for i in instructions:
        text = str(graph.node_full_text[i])
        pointers = {"load": (0,), "store": (1,)}.get(graph.node_text[i])
        if pointers is None and _BLOCK_COPY.search(text):
            pointers = (0, 1) if "@llvm.memset" not in text else (0,)
        if pointers is None:
            continue
        access = _ACCESS_TYPE.match(text)
        size = (_type_bytes(access.group(1)) if access else None) or 16
        worst = UNIFORM
        for address in (value(inputs[i][p]) for p in pointers if p < len(inputs[i])):
            if address not in (0, None):
                worst = max(worst, UNIT_STRIDE if address != _VARIES and abs(address) <= size else SCATTERED)
        classes[i] = worst
    return classes


def _step(graph: ProgramGraph, node: int, inputs: list[int], value) -> int | str | None:
    """The step of one instruction's result, from its operands' (``None`` while an operand is unknown)."""
    opcode = graph.node_text[node]
    if opcode == "call":
        text = str(graph.node_full_text[node])
        if _WORK_ITEM_X.search(text):
            return 1
        if _WORK_ITEM_QUERY.search(text):
            return 0
    steps = [value(n) for n in inputs]
    if opcode == "phi" or opcode == "select":
        known = [v for v in (steps if opcode == "phi" else steps[1:]) if v is not None]
        return None if not known else known[0] if all(v == known[0] for v in known) else _VARIES
    if any(v is None for v in steps):
        return None
    if _VARIES in steps:
        return _VARIES
    if opcode in _PASS_THROUGH:
        return steps[0]
    if opcode in ("add", "or"):
        return sum(steps)
    if opcode == "sub":
        return steps[0] - steps[1]
    if opcode in ("mul", "shl"):
        constants = [_integer(graph, n) for n in inputs]
        if not any(steps):
            return 0
        moving = 0 if steps[0] else 1
        factor = constants[1 - moving]
        if factor is None or (opcode == "shl" and moving == 1):
            return _VARIES
        return steps[moving] * (factor if opcode == "mul" else 2 ** factor)
    if opcode in ("ashr", "lshr"):  # clang sign-extends an index as (x << 32) >> 32
        shift = _integer(graph, inputs[1])
        if not steps[0] and not steps[1]:
            return 0
        return steps[0] >> shift if shift is not None and not steps[1] and steps[0] % 2 ** shift == 0 else _VARIES
    if opcode == "getelementptr":
        return _address_step(graph, node, steps)
    if opcode == "load":
        return 0 if steps[0] == 0 else _VARIES
    return 0 if not any(steps) else _VARIES


def _address_step(graph: ProgramGraph, node: int, steps: list[int]) -> int | str:
    """A ``getelementptr``'s step in bytes: the base's plus each index's times the size it indexes."""
    total, (base, *indices) = 0, steps
    match = _GEP_TYPE.search(str(graph.node_full_text[node]))
    kind = match.group(1) if match else None
    for position, index in enumerate(indices):
        if position and kind is not None:  # later indices step inside an array or vector; a struct's fields are unknown
            element = _AGGREGATE.match(kind)
            kind = element.group(2) if element else None
        if index:
            size = _type_bytes(kind) if kind is not None else None
            if size is None:
                return _VARIES
            total += index * size
    return base + total


def _type_bytes(kind: str) -> int | None:
    """The size of an LLVM type written as text (scalars, vectors, arrays), ``None`` when unknown."""
    kind = kind.strip()
    if kind in _SCALAR_BYTES or kind.startswith("ptr"):
        return _SCALAR_BYTES.get(kind, 8)
    aggregate = _AGGREGATE.match(kind)
    if aggregate:
        element = _type_bytes(aggregate.group(2))
        return None if element is None else int(aggregate.group(1)) * element
    return None


def _integer(graph: ProgramGraph, node: int) -> int | None:
    """The value of an integer constant operand, ``None`` for anything else."""
    if graph.node_type[node] != CONSTANT:
        return None
    try:
        return int(str(graph.node_full_text[node]).rsplit(" ", 1)[-1])
    except ValueError:
        return None
