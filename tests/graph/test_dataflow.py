"""The five root-node data-flow analyses: exact answers on small programs, and agreement with their
independent formulations on real kernels and generated programs at -O0 and -O2."""

from __future__ import annotations

import numpy as np
import pytest

from ncc.frontend import compile
from ncc.frontend.generator import generate_program
from ncc.graph import build
from ncc.graph.dataflow import ANALYSES, analysis
from ncc.graph.program_graph import INSTRUCTION, VARIABLE


def graph_of(source: str, opt_level: int = 0):
    return build(compile(source, language="c", opt_level=opt_level))


def nodes(graph, opcode: str) -> list[int]:
    return np.flatnonzero((graph.node_text == opcode) & (graph.node_type == INSTRUCTION)).tolist()


def labelled(labels) -> set[int]:
    return set(np.flatnonzero(labels).tolist())


BRANCH = "int f(int a){ int r; if (a > 0) { r = a * 3; } else { r = a - 7; } return r + 1; }\n"


def test_dominance_of_a_branch_excludes_the_other_arm_and_the_join():
    g = graph_of(BRANCH)
    dominance = analysis("dominance", g)
    (mul,), (sub,), (ret,) = nodes(g, "mul"), nodes(g, "sub"), nodes(g, "ret")
    from_then, _ = dominance.query(mul)
    assert mul in labelled(from_then) and ret not in labelled(from_then) and sub not in labelled(from_then)
    entry = int(np.flatnonzero((g.node_function == 0) & (g.node_type == INSTRUCTION))[0])
    from_entry, steps = dominance.query(entry)
    assert labelled(from_entry) == set(np.flatnonzero((g.node_function == 0) & (g.node_type == INSTRUCTION)).tolist())
    assert steps >= 1


def ir_graph(tmp_path, text: str):
    from ncc.frontend import load

    path = tmp_path / "f.ll"
    path.write_text(text)
    return build(load(path))


def test_datadep_follows_operands_back_to_their_definitions(tmp_path):
    g = ir_graph(tmp_path, "define i32 @f(i32 %a, i32 %b) {\n  %c = add i32 %a, %b\n  %d = mul i32 %c, %a\n"
                           "  %e = sub i32 %d, 1\n  ret i32 %e\n}\n")
    (add,), (mul,), (sub,) = nodes(g, "add"), nodes(g, "mul"), nodes(g, "sub")
    labels, steps = analysis("datadep", g).query(sub)
    found = labelled(labels)
    variables = {n for n in found if g.node_type[n] == VARIABLE}
    assert {add, mul} == found - variables  # the root itself only through a cycle; constants never
    assert len(variables) == 4  # %d, %c and the arguments %a, %b
    assert steps == 6  # sub <- %d <- mul <- %c, %a <- add <- %b


def test_liveness_of_a_value_ends_at_its_last_use():
    g = graph_of("int f(int a, int b){ int c = a + b; int d = c * 2; return d - a; }\n", opt_level=2)
    liveness = analysis("liveness", g)
    (add,), (mul,) = nodes(g, "add"), nodes(g, "shl") or nodes(g, "mul")
    after_add = labelled(liveness.query(add)[0])
    after_mul = labelled(liveness.query(mul)[0])
    defined = {int(t) for s, t in g.edges("data").T.tolist() if s == add}
    assert defined <= after_add  # c is used by the multiplication
    assert not defined & after_mul  # ... and by nothing after it
    argument_a = [v for v in after_mul if g.node_type[v] == VARIABLE and v not in defined]
    assert argument_a  # a is still used by the subtraction


CSE_IR = """define i32 @f(i32 %a, i32 %b) {
  %1 = add i32 %a, %b
  %2 = add i32 %b, %a
  %3 = sub i32 %a, %b
  %4 = sub i32 %b, %a
  %5 = sub i32 %a, %b
  %6 = mul i32 %1, %2
  %7 = mul i32 %3, %4
  %8 = add i32 %6, %7
  %9 = add i32 %8, %5
  ret i32 %9
}
"""


def test_subexpressions_match_commuted_operands_only_where_the_operation_commutes(tmp_path):
    g = ir_graph(tmp_path, CSE_IR)
    subexpressions = analysis("subexpressions", g)
    adds, subs = nodes(g, "add"), nodes(g, "sub")
    assert labelled(subexpressions.query(adds[0])[0]) == {adds[1]}  # b + a is a + b
    assert labelled(subexpressions.query(subs[0])[0]) == {subs[2]}  # b - a is not a - b
    assert not subexpressions.query(subs[1])[0].any()
    assert not subexpressions.query(adds[2])[0].any()  # same operation, other operands


def test_unknown_analyses_and_roots_are_refused():
    g = graph_of(BRANCH)
    with pytest.raises(ValueError, match="unknown analysis 'nosuch'; choose one of reachability"):
        analysis("nosuch", g)
    with pytest.raises(ValueError, match="cannot be a root"):
        analysis("reachability", g).query(0)


@pytest.fixture(scope="module")
def corpus():
    """The 17 thread-coarsening kernels (real OpenCL, -O2) and generated C programs at -O0, -O1 and -O2."""
    from ncc.graph.features import unique_graphs
    from ncc.tasks.threadcoarsening import coarsening_modules, load_threadcoarsening

    modules, failures = coarsening_modules(load_threadcoarsening(), progress=False)
    assert not failures
    kernels = unique_graphs([m for m in modules if m is not None])
    return kernels + [graph_of(generate_program(seed, seed % 2 == 1), opt_level=seed % 3) for seed in range(12)]


@pytest.mark.parametrize("name", list(ANALYSES))
def test_every_root_agrees_with_the_independent_formulation(name, corpus):
    checked = 0
    for graph in corpus:
        instance = analysis(name, graph)
        for root in instance.roots().tolist():
            labels, steps = instance.query(root)
            np.testing.assert_array_equal(labels, instance.reference(root), err_msg=f"{graph.module_name} root {root}")
            assert steps >= 1 and not (labels & ~instance.mask()).any()
            checked += 1
    assert checked > 100
