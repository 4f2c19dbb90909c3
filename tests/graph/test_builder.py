"""The graph builder on hand-written IR (checked exactly) and on IR from real clang."""

import numpy as np
import pytest

from ncc.errors import IRParseError
from ncc.graph import CALL, CONSTANT, CONTROL, DATA, INSTRUCTION, VARIABLE, build


def edges_of(graph, flow):
    """The edges of one flow as (source, target, position) triples, in graph order."""
    mask = graph.edge_flow == flow
    src, dst = graph.edge_index[:, mask]
    return list(zip(src.tolist(), dst.tolist(), graph.edge_position[mask].tolist()))


def node_id(graph, full_text):
    hits = [i for i, t in enumerate(graph.node_full_text) if t == full_text]
    assert len(hits) == 1, (full_text, hits)
    return hits[0]


STRAIGHT = """\
define i32 @add1(i32 %a) {
  %b = add nsw i32 %a, 1
  ret i32 %b
}
"""


def test_straight_line_exact():
    g = build(STRAIGHT, name="straight")
    assert g.node_type.tolist() == [INSTRUCTION, INSTRUCTION, INSTRUCTION, VARIABLE, VARIABLE, CONSTANT]
    assert g.node_text.tolist() == ["[external]", "add", "ret", "i32", "i32", "i32"]
    assert g.node_full_text.tolist() == ["[external]", "%b = add nsw i32 %a, 1", "ret i32 %b", "i32 %a",
                                         "i32 %b", "i32 1"]
    assert g.node_function.tolist() == [-1, 0, 0, 0, 0, 0]
    assert g.node_block.tolist() == [-1, 0, 0, -1, -1, -1]
    assert edges_of(g, CONTROL) == [(1, 2, 0)]
    assert edges_of(g, DATA) == [(3, 1, 0), (5, 1, 1), (1, 4, 0), (4, 2, 0)]
    assert edges_of(g, CALL) == [(0, 1, 0), (2, 0, 0)]
    assert g.function_names == ("@add1",) and g.module_name == "straight"


BRANCHES = """\
define i32 @pick(i32 %x) {
entry:
  %c = icmp sgt i32 %x, 0
  br i1 %c, label %then, label %else

then:
  br label %join

else:                                   ; preds = %entry
  br label %join

join:
  %r = phi i32 [ 1, %then ], [ %x, %else ]
  switch i32 %r, label %out [
    i32 1, label %one
    i32 7, label %out
  ]

one:
  br label %loop

loop:
  %i = phi i32 [ 0, %one ], [ %next, %loop ]
  %next = add i32 %i, 1
  %done = icmp eq i32 %next, 10
  br i1 %done, label %out, label %loop

out:
  ret i32 %r

dead:                                   ; No predecessors!
  unreachable
}
"""


def test_if_else_phi_switch_loop_exact():
    g = build(BRANCHES)
    icmp, br_entry, br_then, br_else, phi, switch, br_one = range(1, 8)
    phi_i, add, icmp2, br_loop, ret, unreachable = range(8, 14)
    assert g.node_text[1:14].tolist() == ["icmp", "br", "br", "br", "phi", "switch", "br", "phi", "add", "icmp",
                                          "br", "ret", "unreachable"]
    assert g.node_block[1:14].tolist() == [0, 0, 1, 2, 3, 3, 4, 5, 5, 5, 5, 6, 7]
    assert edges_of(g, CONTROL) == [
        (icmp, br_entry, 0), (br_entry, br_then, 0), (br_entry, br_else, 1),
        (br_then, phi, 0), (br_else, phi, 0),
        (phi, switch, 0), (switch, ret, 0), (switch, br_one, 1), (switch, ret, 2),
        (br_one, phi_i, 0), (phi_i, add, 0), (add, icmp2, 0), (icmp2, br_loop, 0),
        (br_loop, ret, 0), (br_loop, phi_i, 1)]
    # phi operands are the incoming values, in order; switch case values are operands after the condition
    x, r, nxt = node_id(g, "i32 %x"), node_id(g, "i32 %r"), node_id(g, "i32 %next")
    one = node_id(g, "i32 1")
    data = edges_of(g, DATA)
    assert (one, phi, 0) in data and (x, phi, 1) in data
    assert (r, switch, 0) in data and (one, switch, 1) in data and (node_id(g, "i32 7"), switch, 2) in data
    assert (nxt, phi_i, 1) in data  # a forward reference inside the loop
    assert g.node_text[node_id(g, "i1 %c")] == "i1"
    # the unreachable block has no edges but still belongs to the function
    assert not any(unreachable in (s, t) for s, t, _ in edges_of(g, CONTROL) + data + edges_of(g, CALL))
    assert g.node_function[unreachable] == 0


RECURSION = """\
@counter = internal global i32 0, align 4

define internal i32 @fact(i32 %n) {
  %small = icmp slt i32 %n, 2
  br i1 %small, label %base, label %rec

base:
  ret i32 1

rec:
  %m = sub i32 %n, 1
  %f = call i32 @fact(i32 %m)
  %p = mul i32 %n, %f
  ret i32 %p
}

define i32 @main() {
  %v = load i32, ptr @counter, align 4
  %r = call i32 @fact(i32 %v)
  %s = call i32 @puts(ptr null)
  ret i32 %r
}

declare i32 @puts(ptr)
"""


def test_recursion_calls_and_globals_exact():
    g = build(RECURSION)
    fact_entry, ret_base, rec_call, ret_rec = (node_id(g, "%small = icmp slt i32 %n, 2"), node_id(g, "ret i32 1"),
                                              node_id(g, "%f = call i32 @fact(i32 %m)"), node_id(g, "ret i32 %p"))
    main_entry, main_call, puts_call, main_ret = (node_id(g, "%v = load i32, ptr @counter, align 4"),
                                                  node_id(g, "%r = call i32 @fact(i32 %v)"),
                                                  node_id(g, "%s = call i32 @puts(ptr null)"),
                                                  node_id(g, "ret i32 %r"))
    assert edges_of(g, CALL) == [
        (rec_call, fact_entry, 0), (ret_base, rec_call, 0), (ret_rec, rec_call, 0),
        (main_call, fact_entry, 0), (ret_base, main_call, 0), (ret_rec, main_call, 0),
        (puts_call, 0, 0), (0, puts_call, 0),
        (0, main_entry, 0), (main_ret, 0, 0)]  # @fact is internal and called: not an entry from outside
    counter = node_id(g, "ptr @counter")
    assert g.node_type[counter] == VARIABLE and g.node_function[counter] == -1
    assert (counter, main_entry, 0) in edges_of(g, DATA)
    assert g.function_names == ("@fact", "@main")
    # variables come right after the instructions: the global first, then per function
    first_variable = g.num_instructions
    assert g.node_full_text[first_variable] == "ptr @counter"


INDIRECT = """\
define internal i32 @twice(i32 %x) {
  %y = shl i32 %x, 1
  ret i32 %y
}

define i32 @apply(ptr %fp, i32 %v) {
  %r = call i32 %fp(i32 %v)
  %q = call i32 @apply(ptr @twice, i32 %r)
  ret i32 %q
}
"""


def test_indirect_call_goes_through_external_node():
    g = build(INDIRECT)
    call = node_id(g, "%r = call i32 %fp(i32 %v)")
    assert (call, 0, 0) in edges_of(g, CALL) and (0, call, 0) in edges_of(g, CALL)
    data = edges_of(g, DATA)
    assert (node_id(g, "i32 %v"), call, 0) in data
    assert (node_id(g, "ptr %fp"), call, 1) in data  # the callee is the last operand
    # @twice has its address taken, so code outside may call it
    twice_entry = node_id(g, "%y = shl i32 %x, 1")
    assert (0, twice_entry, 0) in edges_of(g, CALL)
    assert g.node_text[node_id(g, "ptr @twice")] == "ptr"


TYPED = """\
%struct.pair = type { i32, [4 x double] }

@.str = private unnamed_addr constant [4 x i8] c"%d\\0A\\00", align 1
@table = addrspace(1) global [8 x float] zeroinitializer

define spir_kernel void @k(%struct.pair* nocapture, i32) {
  %3 = getelementptr inbounds %struct.pair, %struct.pair* %0, i64 0, i32 1, i64 2
  %4 = load double, double* %3, align 8
  %5 = call i32 (i8*, ...) @printf(i8* getelementptr inbounds ([4 x i8], [4 x i8]* @.str, i64 0, i64 0), i32 %1)
  %6 = getelementptr [8 x float], [8 x float] addrspace(1)* @table, i64 0, i32 %1
  br label %7

; <label>:7:                                      ; preds = %2
  ret void
}

declare i32 @printf(i8*, ...)
"""


def test_typed_pointer_ir_types_and_constant_expressions():
    g = build(TYPED)
    assert g.node_text[node_id(g, "double* %3")] == "double*"
    assert g.node_text[node_id(g, "float addrspace(1)* %6")] == "float addrspace(1)*"
    assert g.node_text[node_id(g, "[4 x i8]* @.str")] == "[4 x i8]*"
    assert g.node_text[node_id(g, "[8 x float] addrspace(1)* @table")] == "[8 x float] addrspace(1)*"
    assert g.node_text[node_id(g, "%struct.pair* %0")] == "%struct.pair*"  # an unnamed argument
    call = node_id(g, "%5 = call i32 (i8*, ...) @printf(i8* getelementptr inbounds ([4 x i8], [4 x i8]* @.str, "
                      "i64 0, i64 0), i32 %1)")
    gep_constant = node_id(g, "i8* getelementptr inbounds ([4 x i8], [4 x i8]* @.str, i64 0, i64 0)")
    data = edges_of(g, DATA)
    assert (gep_constant, call, 0) in data
    assert (node_id(g, "[4 x i8]* @.str"), call, 0) in data  # the global inside the expression
    assert (node_id(g, "i32 %1"), call, 1) in data
    # the old "; <label>:7:" comment labels a block
    assert g.node_block[node_id(g, "ret void")] == 1


def test_empty_module_is_the_external_node_only():
    g = build("declare i32 @f(i32)\n")
    assert g.num_nodes == 1 and g.num_edges == 0 and g.function_names == ()


def test_same_ir_gives_identical_arrays():
    for text in (STRAIGHT, BRANCHES, RECURSION, INDIRECT, TYPED):
        a, b = build(text), build(text)
        assert a.equals(b)
        for name in a.ARRAYS:
            assert np.array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("text, line, reason", [
    ("define void @f() {\n  %x = frobnicate i32 1\n  ret void\n}\n", 2, "unknown instruction 'frobnicate'"),
    ("define i32 @f() {\n  ret i32 %nope\n}\n", 2, "undefined value %nope"),
    ("define void @f() {\n  br label %missing\n}\n", 2, "undefined label %missing"),
    ("define void @f() {\n  %a = add i32 1, 2\n}\n", 2, "does not end with a terminator"),
    ("define void @f() {\n  ret void\n", 1, "not closed"),
    ("this is not IR\n", 1, "unexpected text"),
    ("define void @f() {\n  call void @g()\n  ret void\n}\n", 2, "undefined function @g"),
])
def test_malformed_ir_names_file_and_line(text, line, reason):
    with pytest.raises(IRParseError) as info:
        build(text, path="bad.ll")
    assert info.value.line == line
    assert reason in str(info.value)
    assert str(info.value).startswith(f"bad.ll:{line}: ")


# Real clang (ziglang's clang 22) on tiny programs: the properties a user relies on.

@pytest.fixture(scope="module")
def compile_c():
    from ncc.frontend import compile

    def run(source, language="c", opt_level=0):
        return build(compile(source, language=language, opt_level=opt_level))
    return run


def test_loop_has_a_back_edge(compile_c):
    g = compile_c("int f(int n){int s=0; for(int i=0;i<n;i++) s+=i; return s;}\n")
    control = edges_of(g, CONTROL)
    assert any(g.node_block[t] < g.node_block[s] for s, t, _ in control)


def test_switch_successors_are_numbered(compile_c):
    g = compile_c("int f(int x){switch(x){case 1: return 3; case 4: return 5; default: return 0;}}\n")
    switch = [i for i, t in enumerate(g.node_text) if t == "switch"]
    assert len(switch) == 1
    assert sorted(p for s, _, p in edges_of(g, CONTROL) if s == switch[0]) == [0, 1, 2]


def test_phi_after_optimisation(compile_c):
    g = compile_c("int f(int n){int s=0; for(int i=0;i<n;i++) s+=i*i; return s;}\n", opt_level=2)
    assert "phi" in g.node_text.tolist()
    phi = g.node_text.tolist().index("phi")
    assert sum(1 for _, t, _ in edges_of(g, DATA) if t == phi) >= 2


def test_cpp_invoke_has_normal_and_unwind_successors(compile_c):
    g = compile_c("#include <stdexcept>\nint g(int x){ if(x<0) throw std::runtime_error(\"neg\"); return x; }\n"
                  "int f(int x){ try { return g(x); } catch (...) { return -1; } }\n", language="c++")
    invokes = [i for i, t in enumerate(g.node_text) if t == "invoke"]
    assert invokes
    for inv in invokes:
        successors = sorted((p, t) for s, t, p in edges_of(g, CONTROL) if s == inv)
        assert [p for p, _ in successors] == [0, 1]
        assert g.node_text[successors[1][1]] == "landingpad"
        assert any(s == inv for s, _, _ in edges_of(g, CALL))
