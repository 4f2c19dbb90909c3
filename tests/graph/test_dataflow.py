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


# ---------------------------------------------------------------------------------------------------------------
# Steps: the solvers answer from distances; these are the round-based solvers that define the steps (synchronous
# rounds until the root's labels stop changing, round 1 the initial state), as the analyses were first written.


def rounds_forward(successors, root, found):
    """Breadth-first rounds from the root (reachability: successors, the root found; datadep: operands, not)."""
    frontier, steps = [root], 1
    while True:
        frontier = list(dict.fromkeys(s for n in frontier for s in successors(n) if s not in found))
        if not frontier:
            return found, steps
        found.update(frontier)
        steps += 1


def rounds_dominance(a, function):
    """Dom sets (bitsets over the function's instructions) from "everything", synchronous rounds: the final sets
    and, per instruction, the last round its bit changed in any of them."""
    import networkx as nx

    g = a.graph
    members = np.flatnonzero((g.node_function == function) & (g.node_type == INSTRUCTION)).tolist()
    entry, bit = members[0], {n: 1 << i for i, n in enumerate(members)}
    reachable = nx.descendants(a.control, entry) | {entry}
    everything = sum(bit[n] for n in reachable)
    dom = {n: everything for n in reachable}
    dom[entry] = bit[entry]
    last = {n: 1 for n in members}
    round_ = 1
    while True:
        round_ += 1
        new = {}
        for n in reachable:
            value = everything
            for p in a.control.predecessors(n):
                value &= dom.get(p, everything)
            new[n] = dom[n] if n == entry else value | bit[n]
        changes = 0
        for n in reachable:
            changes |= new[n] ^ dom[n]
        if not changes:
            return reachable, dom, bit, last
        for n in members:
            if changes & bit[n]:
                last[n] = round_
        dom = new


def rounds_liveness(a):
    """LiveOut of every instruction by synchronous rounds from empty sets, and the round each last changed."""
    g = a.graph
    variables = set(np.flatnonzero(a.mask()).tolist())
    uses = {n: set() for n in a.control.nodes}
    defs = {n: set() for n in a.control.nodes}
    for s, t in g.edges("data").T.tolist():
        if s in variables and t in uses:
            uses[t].add(s)
        elif t in variables and s in defs:
            defs[s].add(t)
    live = {n: set() for n in a.control.nodes}
    changed = {n: 1 for n in a.control.nodes}
    round_ = 1
    while True:
        round_ += 1
        new = {n: set().union(*[uses[s] | (live[s] - defs[s]) for s in a.control.successors(n)]) for n in live}
        moved = [n for n in live if new[n] != live[n]]
        if not moved:
            return live, changed
        for n in moved:
            changed[n] = round_
        live = new


def by_rounds(a, root, memo):
    """Labels (as a node set) and steps of one root by the round-based solvers."""
    g = a.graph
    if a.name == "reachability":
        return rounds_forward(a.control.successors, root, {root})
    if a.name == "datadep":
        mask = a.mask()
        return rounds_forward(lambda n: [p for p in a.data.predecessors(n) if mask[p]], root, set())
    if a.name == "dominance":
        function = int(g.node_function[root])
        if (g, function) not in memo:
            memo[g, function] = rounds_dominance(a, function)
        reachable, dom, bit, last = memo[g, function]
        if root not in reachable:
            return set(), 1
        return {n for n in reachable if dom[n] & bit[root]}, last[root]
    if a.name == "liveness":
        if g not in memo:
            memo[g] = rounds_liveness(a)
        live, changed = memo[g]
        return live[root], changed[root]
    return labelled(a.query(root)[0]), a.query(root)[1]


def large_source(loops: int) -> str:
    """One function with nested loops, branches and values live across them: long chains at -O0, loops at -O2."""
    return "int big(int *a, int n) {\n  int s = 0, t = 1, u = 2;\n" + "".join(
    f"  for (int i{k} = 0; i{k} < n; i{k}++) {{\n    if (a[i{k}] > {k}) s += a[i{k}] * {k + 1}; else t ^= s + i{k};\n"
    f"    for (int j = 0; j < {k % 3 + 1}; j++) u += t - a[j];\n  }}\n  if (s > t) u = u * {k} + s; else s = s - u;\n"
        for k in range(loops)) + "  return s + t + u;\n}\n"


@pytest.fixture(scope="module")
def large():
    """A large function at -O0 and -O2 (60 loops: thousands of instructions in one function)."""
    return [graph_of(large_source(60), opt_level=level) for level in (0, 2)]


@pytest.fixture(scope="module")
def medium():
    """A smaller one (8 loops), within reach of the round-based solvers."""
    return [graph_of(large_source(8), opt_level=level) for level in (0, 2)]


@pytest.mark.parametrize("name", ["reachability", "dominance", "datadep", "liveness"])
def test_steps_and_labels_match_the_round_based_solvers(name, corpus, medium):
    memo, checked = {}, 0
    for graph in corpus[::3] + medium:
        instance = analysis(name, graph)
        roots = instance.roots()
        for root in np.random.default_rng(0).choice(roots, min(25, len(roots)), replace=False).tolist():
            labels, steps = instance.query(root)
            expected, expected_steps = by_rounds(instance, root, memo)
            assert labelled(labels) == expected and steps == expected_steps, f"{graph.module_name} root {root}"
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("name", list(ANALYSES))
def test_a_large_function_agrees_with_the_independent_formulation(name, large):
    assert ((large[0].node_function == 0) & (large[0].node_type == INSTRUCTION)).sum() > 2000
    for graph in large:
        instance = analysis(name, graph)
        roots = instance.roots()
        for root in np.random.default_rng(1).choice(roots, min(40, len(roots)), replace=False).tolist():
            np.testing.assert_array_equal(instance.query(root)[0], instance.reference(root), err_msg=f"root {root}")
