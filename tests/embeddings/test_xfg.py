"""XFG construction and context pairs: a hand-built graph checked exactly, and a real module."""

import numpy as np
import pytest

from ncc.embeddings.normalise import module_statements
from ncc.embeddings.xfg import XFG_CALL, XFG_CONTROL, XFG_DATA, XFG_MEMORY, build_xfg, context_pairs
from ncc.graph import build
from ncc.graph.program_graph import CALL, CONTROL, DATA, ProgramGraph


def hand_built_graph() -> ProgramGraph:
    """external; alloca %p; store 1, %p; %v = load %p; %w = add %v, 1; ret  (+ variables %p %v %w, constant 1)."""
    text = ["[external]", "alloca", "store", "load", "add", "ret", "i32*", "i32", "i32", "i32"]
    types = [0, 0, 0, 0, 0, 0, 1, 1, 1, 2]
    edges = [  # (source, target, flow, position)
        (1, 2, CONTROL, 0), (2, 3, CONTROL, 0), (3, 4, CONTROL, 0), (4, 5, CONTROL, 0),
        (1, 6, DATA, 0), (9, 2, DATA, 0), (6, 2, DATA, 1), (6, 3, DATA, 0), (3, 7, DATA, 0),
        (7, 4, DATA, 0), (9, 4, DATA, 1), (4, 8, DATA, 0), (8, 5, DATA, 0),
        (0, 1, CALL, 0), (5, 0, CALL, 0)]
    src, dst, flow, position = zip(*edges)
    return ProgramGraph(
        node_type=np.array(types, np.int8), node_text=np.array(text, object),
        node_full_text=np.array(text, object), node_function=np.array([-1, 0, 0, 0, 0, 0, -1, -1, -1, -1], np.int32),
        node_block=np.array([-1, 0, 0, 0, 0, 0, -1, -1, -1, -1], np.int32),
        edge_index=np.array([src, dst], np.int32), edge_flow=np.array(flow, np.int8),
        edge_position=np.array(position, np.int32), function_names=("f",)).validate()


STATEMENTS = [None, "A", "S", "L", "D", "R", None, None, None, None]


def edge_set(xfg):
    return {(int(a), int(b), int(k)) for (a, b), k in zip(xfg.edge_index.T, xfg.edge_kind)}


def test_xfg_of_a_hand_built_graph():
    xfg = build_xfg(hand_built_graph(), STATEMENTS)
    assert xfg.nodes.tolist() == [1, 2, 3, 4, 5]
    assert xfg.statements == ("A", "S", "L", "D", "R")
    # local ids: A0 S1 L2 D3 R4; the call edges touch the external node and are gone
    assert edge_set(xfg) == {(0, 1, XFG_CONTROL), (1, 2, XFG_CONTROL), (2, 3, XFG_CONTROL), (3, 4, XFG_CONTROL),
                             (0, 1, XFG_DATA), (0, 2, XFG_DATA), (2, 3, XFG_DATA), (3, 4, XFG_DATA),
                             (1, 2, XFG_MEMORY)}
    without_memory = build_xfg(hand_built_graph(), STATEMENTS, memory=False)
    assert edge_set(without_memory) == edge_set(xfg) - {(1, 2, XFG_MEMORY)}


def test_context_pairs_of_sizes_1_and_2_exactly():
    xfg = build_xfg(hand_built_graph(), STATEMENTS)
    one = context_pairs(xfg, 1, ordered=False)
    assert one.tolist() == [[0, 1], [0, 2], [1, 2], [2, 3], [3, 4]]
    two = context_pairs(xfg, 2, ordered=False)
    assert two.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3], [2, 4], [3, 4]]
    ordered = context_pairs(xfg, 1)
    assert ordered.tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1], [2, 3], [3, 2], [3, 4], [4, 3]]
    three = context_pairs(xfg, 3, ordered=False)
    assert {tuple(p) for p in three.tolist()} == {tuple(p) for p in two.tolist()} | {(0, 4), (1, 4)}
    assert ordered.dtype == np.int32
    with pytest.raises(ValueError):
        context_pairs(xfg, 0)


def test_statement_left_out_when_it_has_none():
    statements = list(STATEMENTS)
    statements[3] = None  # the load
    xfg = build_xfg(hand_built_graph(), statements)
    assert xfg.statements == ("A", "S", "D", "R")
    assert context_pairs(xfg, 1, ordered=False).tolist() == [[0, 1], [2, 3]]


IR = """
define i32 @inc(i32 %x) {
entry:
  %y = add nsw i32 %x, 1
  ret i32 %y
}

define i32 @main() {
entry:
  %a = call i32 @inc(i32 41)
  %b = mul nsw i32 %a, 2
  %c = call i32 @puts(i8* null)
  ret i32 %b
}

declare i32 @puts(i8*)
"""


def test_xfg_of_a_real_module_links_calls_and_data():
    graph, statements = module_statements(IR)
    xfg = build_xfg(graph, statements)
    assert xfg.num_statements == 6 and list(xfg.nodes) == [1, 2, 3, 4, 5, 6]
    assert all("<%ID>" in s or s.startswith("ret") for s in xfg.statements)
    add, ret_inc, call_inc, mul, call_puts, ret_main = range(6)
    edges = edge_set(xfg)
    assert (call_inc, add, XFG_CALL) in edges and (ret_inc, call_inc, XFG_CALL) in edges
    assert (add, ret_inc, XFG_DATA) in edges and (call_inc, mul, XFG_DATA) in edges and (mul, ret_main, XFG_DATA) in edges
    assert not any(k == XFG_CALL and call_puts in (a, b) for a, b, k in edges)  # puts is external
    assert all(a != b for a, b, _ in edges)
    pairs = context_pairs(xfg, 2)
    assert (ret_inc, mul) in {tuple(p) for p in pairs.tolist()}  # ret -> call -> mul
