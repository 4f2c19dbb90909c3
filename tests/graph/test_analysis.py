"""Loop nesting depth on graphs of real clang output and of a hand-written irreducible loop."""

import numpy as np
import pytest

from ncc.graph import INSTRUCTION, build
from ncc.graph.analysis import loop_depths


@pytest.fixture(scope="module")
def compile_c():
    from ncc.frontend import compile

    def run(source, opt_level=0):
        return build(compile(source, language="c", opt_level=opt_level))
    return run


def depth_of(graph, opcode):
    """The loop depths of every instruction with this opcode."""
    return loop_depths(graph)[graph.node_text == opcode].tolist()


def test_straight_line_code_has_no_loops(compile_c):
    g = compile_c("int f(int a, int b){ return a > b ? a * b : a + b; }\n")
    assert not loop_depths(g).any()


def test_nested_loops_count_their_nesting(compile_c):
    g = compile_c("int f(int n){int s=0; for(int i=0;i<n;i++) for(int j=0;j<i;j++) s+=i*j; return s;}\n")
    depths = loop_depths(g)
    assert depth_of(g, "mul") == [2]
    assert depth_of(g, "ret") == [0]
    assert depths.max() == 2 and not depths[g.node_type != INSTRUCTION].any()


def test_sequential_loops_and_branches_inside_a_loop_stay_at_depth_one(compile_c):
    g = compile_c("int f(int n){int s=0; for(int i=0;i<n;i++){ if(i&1) s+=i; else s-=i; }\n"
                  " for(int k=0;k<n;k++) s*=3; return s;}\n")
    assert loop_depths(g).max() == 1
    assert depth_of(g, "mul") == [1] and set(depth_of(g, "sub")) == {1}


def test_optimised_loops_keep_their_depth(compile_c):
    g = compile_c("void f(float *a, int n, int m){ for(int i=0;i<n;i++) for(int j=0;j<m;j++) a[i*m+j] *= 2.0f; }\n",
                  opt_level=2)
    assert max(depth_of(g, "fmul")) == 2


IRREDUCIBLE = """\
define void @f(i1 %c) {
entry:
  br i1 %c, label %a, label %b
a:
  %x = add i32 0, 1
  br i1 %c, label %b, label %done
b:
  %y = add i32 0, 2
  br i1 %c, label %a, label %done
done:
  ret void
}
"""


def test_an_irreducible_loop_with_two_entries_counts_once():
    g = build(IRREDUCIBLE)
    assert depth_of(g, "add") == [1, 1]
    assert depth_of(g, "ret") == [0] and np.max(loop_depths(g)) == 1


KERNEL = """\
__kernel void stencil(__global float *a, __global const float *b, __local float *tile, int n) {
  int i = get_global_id(0);
  for (int r = 0; r < n; r++) {
    tile[get_local_id(0)] = b[i + r];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int k = 0; k < n; k++)
      a[i] += tile[k] * 0.5f;
  }
}
"""


def test_loop_summary_of_an_opencl_kernel():
    from ncc.frontend import compile
    from ncc.frontend.ir import drop_unused_kernel_copies
    from ncc.graph.features import LOOP_SUMMARY_COLUMNS, loop_summary

    graph = build(drop_unused_kernel_copies(compile(KERNEL, language="opencl", opt_level=2)))
    summary = dict(zip(LOOP_SUMMARY_COLUMNS, loop_summary([graph])[0]))
    assert summary["deepest loop"] == 2 and summary["barriers"] == 1
    assert 0 < summary["instructions in loops"] < graph.num_instructions
    # Inner loop: a load and a store of 16^2 each; outer loop: two loads and a store of 16 each.
    assert summary["memory"] == pytest.approx(np.log1p(2 * 16 ** 2 + 3 * 16))
    assert summary["memory - arithmetic"] == pytest.approx(summary["memory"] - summary["arithmetic"])
    # `tile` is stored in the outer loop and read in the inner one; the other accesses are to global memory.
    assert summary["local memory"] == pytest.approx(np.log1p(16 + 16 ** 2))
    assert summary["global memory"] == pytest.approx(np.log1p(16 ** 2 + 2 * 16))
    assert summary["private memory"] == summary["constant memory"] == 0
    # `a[i] += tile[k] * 0.5f` is one fused multiply-add in the inner loop.
    assert summary["floating"] == pytest.approx(np.log1p(16 ** 2))


def test_loop_summary_counts_constant_and_private_memory():
    from ncc.frontend import compile
    from ncc.frontend.ir import drop_unused_kernel_copies
    from ncc.graph.features import LOOP_SUMMARY_COLUMNS, loop_summary

    kernel = """\
__kernel void scale(__global float *x, __constant float *w, int k) {
  int i = get_global_id(0);
  volatile float scratch[4];
  scratch[i & 3] = x[i];
  x[i] = scratch[k & 3] * w[k];
}
"""
    graph = build(drop_unused_kernel_copies(compile(kernel, language="opencl", opt_level=2)))
    summary = dict(zip(LOOP_SUMMARY_COLUMNS, loop_summary([graph])[0]))
    assert summary["deepest loop"] == 0 and summary["instructions in loops"] == 0
    assert summary["global memory"] == pytest.approx(np.log1p(2))
    assert summary["constant memory"] == pytest.approx(np.log1p(1))
    assert summary["private memory"] == pytest.approx(np.log1p(2))
    assert summary["local memory"] == 0


def test_has_loop_sees_loops_and_not_recursion(compile_c):
    from ncc.graph.analysis import has_loop

    assert has_loop(compile_c("int f(int n){int s=0; while(n>0){s+=n; n--;} return s;}\n"))
    assert not has_loop(compile_c("int f(int n){ return n < 2 ? n : f(n - 1) + f(n - 2); }\n"))


def test_reachability_follows_control_flow_from_the_root(compile_c):
    from ncc.graph.dataflow import Reachability

    g = compile_c("int f(int a){ if (a > 0) { a = a * 3; } else { a = a - 7; } return a; }\n")
    reachability = Reachability(g)
    instructions = np.flatnonzero(g.node_type == INSTRUCTION)
    entry = int(instructions[1])  # the function's first instruction (node 0 is the external node)
    reached, steps = reachability.query(entry)
    assert reached[instructions[1:]].all() and not reached[g.node_type != INSTRUCTION].any()
    assert not reached[0] and steps > 2
    ret = int(np.flatnonzero(g.node_text == "ret")[0])
    only, one_step = reachability.query(ret)
    assert only.sum() == 1 and only[ret] and one_step == 1
    then = int(np.flatnonzero(g.node_text == "mul")[0])  # the then-branch reaches the join, not the else-branch
    from_then, _ = reachability.query(then)
    assert from_then[ret] and not from_then[np.flatnonzero(g.node_text == "sub")].any()
    with pytest.raises(ValueError, match="cannot be a root"):
        reachability.query(int(np.flatnonzero(g.node_type != INSTRUCTION)[0]))


def test_inside_a_loop_everything_after_the_header_is_reachable_again(compile_c):
    from ncc.graph.dataflow import Reachability

    g = compile_c("int f(int n){int s=0; for(int i=0;i<n;i++) s+=i*i; return s;}\n")
    body = int(np.flatnonzero(g.node_text == "mul")[0])
    reached, _ = Reachability(g).query(body)
    assert reached[np.flatnonzero(g.node_text == "icmp")].all()  # the loop test, before the body in text order
    assert reached[np.flatnonzero(g.node_text == "ret")].all()
