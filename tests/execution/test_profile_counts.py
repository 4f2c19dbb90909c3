"""Counts from instrumented runs: exact on programs whose counts are known, conserved, on the graph."""

from __future__ import annotations

import numpy as np
import pytest

from ncc.execution import ExecutionError, Limits, instrument, profile, profile_arrays
from ncc.frontend import compile
from ncc.graph import build, from_json, from_networkx, load_npz, save_npz, to_json, to_networkx

# classify(i) runs for i = 0, 10, ..., 90: i % 4 is 0, 2, 0, 2, ... (5 times each).
LOOP_AND_SWITCH = r"""
#include <stdio.h>
static int classify(int x) {
  switch (x % 4) { case 0: return 10; case 1: return 20; case 3: return 30; default: return 0; }
}
int main(void) {
  int total = 0;
  for (int i = 0; i < 100; i++) {
    if (i % 10 == 0) total += classify(i);
    else total += 1;
  }
  printf("%d\n", total);
  return 0;
}
"""

# f throws for x > 3 (6 of 10 calls); the label address table jumps to `a` once (argc == 1).
EXCEPTIONS_AND_GOTO = r"""
#include <cstdio>
static int f(int x) { if (x > 3) throw x; return x; }
int main(int argc, char **) {
  int s = 0;
  for (int i = 0; i < 10; i++) { try { s += f(i); } catch (int e) { s += 2 * e; } }
  void *targets[] = {&&a, &&b};
  goto *targets[argc - 1];
a: s++;
b: std::printf("%d\n", s);
  return 0;
}
"""

# Recursion: fib(10) makes 177 calls, 89 of them leaves (n < 2).
RECURSION = r"""
#include <stdio.h>
static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
int main(void) { printf("%d\n", fib(10)); return 0; }
"""


def _function(result, name):
    graph = build(result.module)
    return graph.function_names.index(name), graph


def test_counts_of_a_loop_with_a_branch_and_a_switch_are_exact():
    result = profile(LOOP_AND_SWITCH, language="c", opt_level=0)
    assert result.plain.stdout == result.instrumented.stdout == b"140\n"
    main, graph = _function(result, "@main")
    classify = graph.function_names.index("@classify")
    # main's blocks at -O0: entry, loop header, body (if), then, else, latch, increment, exit
    assert result.block_counts[main].tolist() == [1, 101, 100, 10, 90, 100, 100, 1]
    assert result.successor_counts[(main, 1)].tolist() == [100, 1]  # loop condition: true 100, false once
    assert result.successor_counts[(main, 2)].tolist() == [10, 90]  # i % 10 == 0
    # switch successors: default, then cases 0, 1, 3 as written
    assert result.successor_counts[(classify, 0)].tolist() == [5, 5, 0, 0]
    assert result.block_counts[classify][0] == 10
    assert result.flow_violations() == []


def test_counts_are_exact_at_O2_and_conserved():
    result = profile(LOOP_AND_SWITCH, language="c", opt_level=2)
    assert result.instrumented.stdout == b"140\n"
    assert result.flow_violations() == []
    graph = build(result.module)
    taken, not_taken = result.branch_counts(graph)
    branches = taken >= 0
    # every dynamic branch of the optimised loop: the number of iterations and of i % 10 == 0 tests are fixed
    assert (taken[branches] + not_taken[branches]).sum() > 0
    assert result.block_counts[0][0] == 1


def test_recursive_calls_are_counted_on_the_callee_entry():
    result = profile(RECURSION, language="c", opt_level=0)
    fib, _ = _function(result, "@fib")
    assert result.block_counts[fib][0] == 177
    assert result.successor_counts[(fib, 0)].tolist() == [89, 88]  # n < 2: true for the 89 leaves
    assert result.flow_violations() == []


def test_invoke_and_indirect_branch_counts_in_cxx():
    result = profile(EXCEPTIONS_AND_GOTO, language="c++", opt_level=0)
    assert result.instrumented.stdout == b"85\n"
    main, graph = _function(result, "@main")
    invokes = [counts.tolist() for (f, _), counts in result.successor_counts.items()
               if f == main and graph.node_text[_terminator(graph, f, _)] == "invoke"]
    assert invokes == [[4, 6]]  # normal return 4 times, unwound 6 times
    indirect = [counts.tolist() for (f, b), counts in result.successor_counts.items()
                if graph.node_text[_terminator(graph, f, b)] == "indirectbr"]
    assert indirect == [[1, 0]]
    assert result.flow_violations() == []


def _terminator(graph, function, block):
    nodes = np.flatnonzero((graph.node_function == function) & (graph.node_block == block) & (graph.node_type == 0))
    return int(nodes.max())


def test_flow_check_finds_counts_that_break_conservation():
    result = profile(LOOP_AND_SWITCH, language="c", opt_level=0)
    main, _ = _function(result, "@main")
    result.block_counts[main][4] += 1  # the else block, entered once more than its incoming edge ran
    violations = result.flow_violations()
    assert "@main %16: entered 91 times, its incoming edges ran 90 times" in violations


def test_a_program_leaving_through_exit_breaks_only_the_out_flow():
    source = ("#include <stdlib.h>\nstatic void stop(int i) { if (i == 3) exit(0); }\n"
              "int main(void) { for (int i = 0; ; i++) { stop(i); if (i > 100) break; } return 1; }\n")
    result = profile(source, language="c", opt_level=0)
    violations = result.flow_violations()
    assert len(violations) == 1 and violations[0].startswith("@main") and "entered 4 times, left 3 times" in violations[0]


def test_counts_annotate_the_graph_and_survive_every_exact_format(tmp_path):
    result = profile(LOOP_AND_SWITCH, language="c", opt_level=0)
    graph = result.annotate(build(result.module))
    arrays = profile_arrays(graph)
    main = graph.function_names.index("@main")
    instructions = (graph.node_function == main) & (graph.node_type == 0)
    assert sorted(set(arrays["node_count"][instructions].tolist())) == [1, 10, 90, 100, 101]
    assert (arrays["node_count"][graph.node_type != 0] == -1).all()
    branches = arrays["branch_taken"] >= 0
    assert sorted(zip(arrays["branch_taken"][branches], arrays["branch_not_taken"][branches])) == [(10, 90), (100, 1)]
    control = graph.edge_flow == 0
    assert (arrays["edge_count"][control] >= 0).all() and (arrays["edge_count"][~control] == -1).all()
    for copy in (from_json(to_json(graph)), from_networkx(to_networkx(graph)), load_npz(save_npz(graph, tmp_path / "g.npz"))):
        again = profile_arrays(copy)
        assert all(np.array_equal(again[name], arrays[name]) for name in arrays)


def test_edge_counts_sum_to_the_block_counts():
    result = profile(RECURSION, language="c", opt_level=2)
    graph = build(result.module)
    edges, nodes = result.edge_counts(graph), result.node_counts(graph)
    checked = 0
    for node in np.flatnonzero(graph.node_type == 0)[1:]:  # an entry block's first instruction has no control in-edge
        incoming = (graph.edge_flow == 0) & (graph.edge_index[1] == node)
        if incoming.any():
            assert edges[incoming].sum() == nodes[node]
            checked += 1
    assert checked > 10


@pytest.mark.parametrize("source, stage, words", [
    ("int undefined_function(void);\nint main(void) { return undefined_function(); }\n", "link", "link failed"),
    ("int main(void) { volatile int *p = 0; return *p; }\n", "run", "SIGSEGV"),
    ("int main(void) { for (;;) {} }\n", "run", "timed out"),
    ("#include <stdio.h>\nint main(void) { puts(\"41\"); return 0; }\n", "output", "reference output"),
    ("int main(void) { return 2; }\n", "run", "exit status 2"),
])
def test_failures_carry_a_stage_and_a_one_line_reason(source, stage, words):
    with pytest.raises(ExecutionError) as caught:
        profile(source, language="c", opt_level=0, limits=Limits(time_s=0.5),
                reference=b"42\nexit 0\n" if "41" in source else None)
    assert caught.value.stage == stage and words in str(caught.value) and "\n" not in str(caught.value)


def test_a_reference_output_with_its_exit_status_is_accepted():
    source = "#include <stdio.h>\nint main(void) { puts(\"42\"); return 1; }\n"
    result = profile(source, language="c", opt_level=0, reference=b"42\nexit 1\n")
    assert result.instrumented.exit_code == 1


def test_instrumented_ir_keeps_counters_through_attributes_that_promise_no_side_effects():
    module = compile("static int sq(int x) { return x * x; }\nint main(void) { int s = 0;"
                     " for (int i = 0; i < 5; i++) s += sq(i); return s == 30 ? 0 : 1; }\n", language="c", opt_level=2)
    text = instrument(module).text
    attributes = [line for line in text.splitlines() if line.startswith("attributes #")]
    assert attributes and not any("memory(" in line or "readnone" in line for line in attributes)


# Writes past the end of its own global (undefined behaviour that gcc-torture and csmith programs have): the
# counters must not be what it overwrites.
OUT_OF_BOUNDS = r"""
#include <stdio.h>
int table[2];
int main(void) {
  volatile int *p = table;
  for (int i = 0; i < 40; i++) p[2 + i] = 0;
  printf("%d\n", table[0]);
  return 0;
}
"""


def test_a_program_writing_past_its_global_leaves_the_counts_intact():
    result = profile(OUT_OF_BOUNDS, language="c", opt_level=0)
    assert result.block_counts[0].tolist() == [1, 41, 40, 40, 1]
    assert result.flow_violations() == []


def test_an_attribute_group_left_empty_stays_valid():
    source = ("__attribute__((const)) static int twice(int x) { return 2 * x; }\n"
              "int main(void) { volatile int n = 3; return twice(n) == 6 ? 0 : 1; }\n")
    module = compile(source, language="c", opt_level=0)
    text = module.text.replace("attributes #0 = {", "attributes #9 = { memory(none) }\nattributes #0 = {", 1)
    instrumented = instrument(text).text
    assert 'attributes #9 = { "ncc-instrumented" }' in instrumented
    result = profile(type(module)(text=text, name="twice", flags=module.flags))  # links: LLVM refuses "{ }"
    assert result.instrumented.exit_code == 0


def test_output_that_depends_on_the_binary_is_caught_and_located():
    source = ("#include <stdio.h>\nint main(void) { printf(\"same\\n%p\\n\", (void *)main); return 0; }\n")
    with pytest.raises(ExecutionError) as caught:
        profile(source, language="c", opt_level=0)
    assert caught.value.stage == "output" and "line 2 of stdout" in str(caught.value)
