"""inst2vec statement normalisation: hand-written statements of every kind, typed and opaque pointers."""

from __future__ import annotations

import gzip
import json
import sys

import pytest

from ncc.embeddings.normalise import inline_struct_types, module_statements, normalise
from ncc.graph.ir_parser import struct_types
from ncc.graph.program_graph import INSTRUCTION
from ncc.paths import data_home

VOCABULARY = data_home() / "inst2vec" / "vocabulary.json.gz"


@pytest.fixture(scope="module")
def vocabulary() -> set[str]:
    if not VOCABULARY.exists():
        pytest.skip("the published inst2vec vocabulary is not in $NCC_DATA")
    return set(json.loads(gzip.open(VOCABULARY).read()))


# (statement as written, struct types, normalised) -- every expected string is in the published vocabulary.
IN_VOCABULARY = [
    ("%19 = load i32, i32* %18, align 4, !tbaa !8", None, "<%ID> = load i32, i32* <%ID>, align 4"),
    ("%x = load i32, i32* @counter, align 4", None, "<%ID> = load i32, i32* <@ID>, align 4"),
    ("store i32 %33, i32* %18, align 4, !tbaa !8", None, "store i32 <%ID>, i32* <%ID>, align 4"),
    ("store i32 0, i32* @g, align 4", None, "store i32 <INT>, i32* <@ID>, align 4"),
    ("%7 = alloca i32, align 4", None, "<%ID> = alloca i32, align 4"),
    ("%8 = tail call i64 @_Z13get_global_idj(i32 0) #2", None, "<%ID> = tail call i64 <@ID>(i32 <INT>)"),
    ("%20 = add i64 %15, -4294967296", None, "<%ID> = add i64 <%ID>, <INT>"),
    ("%a.b$c = add nsw i32 %x, 1", None, "<%ID> = add nsw i32 <%ID>, <INT>"),
    ("%x = fmul float %a, 0x3FB99999A0000000", None, "<%ID> = fmul float <%ID>, <FLOAT>"),
    ("%x = fsub float 1.000000e+00, %a", None, "<%ID> = fsub float <FLOAT>, <%ID>"),
    ("%x = fmul double %a, -2.5e-3", None, "<%ID> = fmul double <%ID>, <FLOAT>"),
    ("%c = fcmp olt float %a, 0xBFB89374C0000000", None, "<%ID> = fcmp olt float <%ID>, <FLOAT>"),
    ("br i1 %10, label %11, label %112", None, "br i1 <%ID>, label <%ID>, label <%ID>"),
    ("br label %for.cond", None, "br label <%ID>"),
    ("%26 = phi i32 [ %24, %17 ], [ 0, %11 ]", None, "<%ID> = phi i32 [ <%ID>, <%ID> ], [ 0, <%ID> ]"),
    ("%p = phi float [ 1.0e+00, %a ], [ %x, %b ]", None, "<%ID> = phi float [ <FLOAT>, <%ID> ], [ <%ID>, <%ID> ]"),
    ("%p = phi i1 [ true, %a ], [ false, %b ]", None, "<%ID> = phi i1 [ true, <%ID> ], [ false, <%ID> ]"),
    ("switch i32 %5, label %10 [\n    i32 0, label %6\n    i32 1, label %8\n  ]", None,
     "switch i32 <%ID>, label <%ID> [\n i32 <INT>, label <%ID>\n i32 <INT>, label <%ID>]"),
    ("switch i32 %5, label %10 [ i32 0, label %6 i32 1, label %8 ]", None,  # as the graph builder joins it
     "switch i32 <%ID>, label <%ID> [\n i32 <INT>, label <%ID>\n i32 <INT>, label <%ID>]"),
    ("invoke void @g()\n          to label %d unwind label %lp", None, "invoke void <@ID>()\n to label <%ID> unwind label <%ID>"),
    ("%l = landingpad { i8*, i32 } cleanup", None, "<%ID> = landingpad { i8*, i32 }\n cleanup"),
    ("%l = landingpad { i8*, i32 }\n          catch i8* null", None, "<%ID> = landingpad { i8*, i32 }\n catch i8* null"),
    ("%e = extractvalue { i8*, i32 } %l, 1", None, "<%ID> = extractvalue { i8*, i32 } <%ID>, 1"),
    ("%v = insertvalue { i8*, i32 } undef, i8* %p, 0", None, "<%ID> = insertvalue { i8*, i32 } undef, i8* <%ID>, 0"),
    ("%e = extractelement <4 x float> %v, i32 2", None, "<%ID> = extractelement <4 x float> <%ID>, <TYP> 2"),
    ("%e = insertelement <4 x i32> undef, i32 %x, i32 0", None, "<%ID> = insertelement <4 x i32> undef, <TYP> <%ID>, <TYP> 0"),
    ("%s = shufflevector <4 x i32> %a, <4 x i32> undef, <4 x i32> <i32 0, i32 1, i32 undef, i32 undef>", None,
     "<%ID> = shufflevector <4 x i32> <%ID>, <4 x i32> undef, <4 x i32> <i32 <INT>, i32 <INT>, i32 undef, i32 undef>"),
    ("store <4 x i32> <i32 1, i32 2, i32 3, i32 4>, <4 x i32>* %p, align 4", None,
     "store <4 x i32> <i32 <INT>, i32 <INT>, i32 <INT>, i32 <INT>>, <4 x i32>* <%ID>, align 4"),
    # getelementptr constant expressions, call attributes and attribute groups
    ("call void @llvm.memcpy.p0i8.p0i8.i64(i8* %5, i8* getelementptr inbounds ([11 x i8], [11 x i8]* @.str, "
     "i64 0, i64 0), i64 11, i32 1, i1 false) #3", None,
     "call void <@ID>(i8* <%ID>, i8* getelementptr inbounds ([11 x i8], [11 x i8]* <@ID>, i64 <INT>, i64 <INT>), "
     "i64 <INT>, i32 <INT>, i1 false)"),
    ("%c = tail call noalias i8* @malloc(i64 %n) #4", None, "<%ID> = tail call noalias i8* <@ID>(i64 <%ID>)"),
    ("call void @f(i32* nonnull dereferenceable(4) %a, i32* nonnull dereferenceable(4) %b, "
     "i32* nonnull dereferenceable(4) %c), !dbg !12", None,
     "call void <@ID>(i32* nonnull dereferenceable(4) <%ID>, i32* nonnull dereferenceable(4) <%ID>, "
     "i32* nonnull dereferenceable(4) <%ID>)"),
    ("%r = tail call i32 (i8*, ...) @printf(i8* getelementptr inbounds ([25 x i8], [25 x i8]* @.str.1, i64 0, i64 0), "
     "i8* %s)", None,
     "<%ID> = tail call i32 (i8*, ...) <@ID>(i8* getelementptr inbounds ([25 x i8], [25 x i8]* <@ID>, i64 <INT>, "
     "i64 <INT>), i8* <%ID>)"),
    ("call void @llvm.dbg.value(metadata i32 %5, metadata !12, metadata !DIExpression()), !dbg !15", None,
     "call void <@ID>(metadata i32 <%ID>())"),
    ("#dbg_value(i32 %5, !12, !DIExpression(), !15)", None, "call void <@ID>(metadata i32 <%ID>())"),
    ("%1 = load i32, i32* %0, align 4 ; a comment", None, "<%ID> = load i32, i32* <%ID>, align 4"),
    ("ret void", None, "ret void"),
    ("ret float %x", None, "ret float <%ID>"),
    ("unreachable", None, "unreachable"),
    # struct inlining: nested, recursive, opaque
    ("%5 = alloca %struct.Pair, align 8", {"%struct.Pair": "{ i64, i64 }"}, "<%ID> = alloca { i64, i64 }, align 8"),
    ("%5 = alloca %struct.Outer, align 8",
     {"%struct.Outer": "{ %struct.In, i64, %struct.Str }", "%struct.In": "{ i8* }", "%struct.Str": "{ i64, [8 x i8] }"},
     "<%ID> = alloca { { i8* }, i64, { i64, [8 x i8] } }, align 8"),
    ("call void @free_list(%struct.node* %p)", {"%struct.node": "{ i32, %struct.node* }"},
     "call void <@ID>({ i32, opaque* }* <%ID>)"),
    ("%p = load %struct._IO_FILE*, %struct._IO_FILE** %f, align 8", {"%struct._IO_FILE": "opaque"},
     "<%ID> = load opaque*, opaque** <%ID>, align 8"),
    ('%b = bitcast %"class.std::basic_ostream"* %o to i8*',  # mutually recursive, as clang orders them
     {'%"class.std::basic_ostream"': '{ i32 (...)**, %"class.std::basic_ios" }',
      '%"class.std::basic_ios"': '{ %"class.std::ios_base", %"class.std::basic_ostream"*, i8, i8 }',
      '%"class.std::ios_base"': '{ i32 (...)**, %"struct.std::ios_base::_Callback_list"* }',
      '%"struct.std::ios_base::_Callback_list"': '{ %"struct.std::ios_base::_Callback_list"*, '
                                                 'void (i32, %"class.std::ios_base"*, i32)*, i32, i32 }'},
     "<%ID> = bitcast { i32 (...)**, opaque }* <%ID> to i8*"),
    ("%g = getelementptr inbounds %struct.S, %struct.S* %s, i64 0, i32 1",
     {"%struct.S": "{ { i8* }, i64, { i64, [8 x i8] } }"},
     "<%ID> = getelementptr inbounds { { i8* }, i64, { i64, [8 x i8] } }, { { i8* }, i64, { i64, [8 x i8] } }* "
     "<%ID>, i64 <INT>, i32 <INT>"),
    ("%p = alloca %class.P, align 8", {"%class.P": "<{ %struct.A, %struct.B, %struct.B, [6 x i8] }>",
                                       "%struct.A": "{ i64 }", "%struct.B": "{ i8 }"},
     "<%ID> = alloca <{ { i64 }, { i8 }, { i8 }, [6 x i8] }>, align 8"),
    # clang >= 11 spellings written the way the vocabulary's LLVM wrote them (clang-14 POJ-104 statements)
    ("%7 = fneg double %6", None, "<%ID> = fsub double <FLOAT>, <%ID>"),
    ("%7 = fneg float %6", None, "<%ID> = fsub float <FLOAT>, <%ID>"),
]


@pytest.mark.parametrize("statement,types,expected", IN_VOCABULARY)
def test_normalise(statement, types, expected):
    assert normalise(statement, types) == expected


@pytest.mark.parametrize("statement,types,expected", IN_VOCABULARY)
def test_expected_statements_are_in_the_published_vocabulary(statement, types, expected, vocabulary):
    assert expected in vocabulary


@pytest.mark.parametrize("statement,types,expected", [
    # opaque pointers (LLVM >= 15): same rules, ``ptr`` stays
    ("%5 = load i32, ptr %4, align 4, !tbaa !8", None, "<%ID> = load i32, ptr <%ID>, align 4"),
    ("store ptr %p, ptr %q, align 8", None, "store ptr <%ID>, ptr <%ID>, align 8"),
    ("%c = call i32 @h(ptr noundef nonnull @g) #1", None, "<%ID> = call i32 <@ID>(ptr nonnull <@ID>)"),
    ("%q = getelementptr inbounds %struct.S, ptr %s, i64 0, i32 1", {"%struct.S": "{ i32, ptr }"},
     "<%ID> = getelementptr inbounds { i32, ptr }, ptr <%ID>, i64 <INT>, i32 <INT>"),
    ("%r = call i32 (ptr, ...) @printf(ptr noundef @.str, i32 noundef %x)", None,
     "<%ID> = call i32 (ptr, ...) <@ID>(ptr <@ID>, i32 <%ID>)"),
    ("#dbg_declare(ptr %x.addr, !16, !DIExpression(), !17)", None, "call void <@ID>(metadata ptr <%ID>())"),
    ("%x = load ptr, ptr getelementptr inbounds ([4 x ptr], ptr @tab, i64 0, i64 2), align 8", None,
     "<%ID> = load ptr, ptr getelementptr inbounds ([4 x ptr], ptr <@ID>, i64 <INT>, i64 <INT>), align 8"),
    # typed-pointer details beyond the vocabulary
    ('%s = getelementptr [6 x i8], [6 x i8]* @"quoted name", i64 0, i64 0', None,
     "<%ID> = getelementptr [6 x i8], [6 x i8]* <@ID>, i64 <INT>, i64 <INT>"),
    ("store [3 x i8] c\"ab\\00\", [3 x i8]* %p, align 1", None, "store [3 x i8]  <STRING>, [3 x i8]* <%ID>, align 1"),
    ("%x = fadd double %a, 0xK4000C000000000000000", None, "<%ID> = fadd double <%ID>, <FLOAT>"),
    ("%x = fadd half %a, 0xH3C00", None, "<%ID> = fadd half <%ID>, <FLOAT>"),
    ("%v = fneg <4 x float> %w", None, "<%ID> = fneg <4 x float> <%ID>"),  # a vector negation stays
    # clang >= 11 call attributes written the old way (POJ-104 C++ statements)
    ("call void @_ZNSt8ios_base4InitC1Ev(%\"class.std::ios_base::Init\"* nonnull align 1 dereferenceable(1) @_ZStL8__ioinit)",
     {'%"class.std::ios_base::Init"': "{ i8 }"}, "call void <@ID>({ i8 }* nonnull dereferenceable(1) <@ID>)"),
    ("%4 = call nonnull align 8 dereferenceable(8) %class.O* @f(%class.O* nonnull align 8 dereferenceable(8) %3, i32 %2)",
     {"%class.O": "{ i32 (...)**, %class.X }"},
     "<%ID> = call dereferenceable(8) { i32 (...)**, opaque }* <@ID>({ i32 (...)**, opaque }* nonnull "
     "dereferenceable(8) <%ID>, i32 <%ID>)"),
    ("call void @f(%struct.S* byval(%struct.S) align 8 %p, i8* align 4 %q)", {"%struct.S": "{ i32, i8 }"},
     "call void <@ID>({ i32, i8 }* byval({ i32, i8 }) align 8 <%ID>, i8* <%ID>)"),
    ("%a = alloca [5 x double], align 8", None, "<%ID> = alloca [5 x double], align 8"),
    ("%x = load i32, i32 addrspace(1)* %p, align 4, !tbaa !8, !noalias !3", None,
     "<%ID> = load i32, i32 addrspace(1)* <%ID>, align 4"),
    ("%p = alloca %0, align 8", {"%0": "{ i32, float }"}, "<%ID> = alloca { i32, float }, align 8"),
    ("%v = load %0*, %0** %0, align 8", {"%0": "{ i32 }"}, "<%ID> = load { i32 }*, { i32 }** <%ID>, align 8"),
])
def test_normalise_beyond_vocabulary(statement, types, expected):
    assert normalise(statement, types) == expected


def test_inline_struct_types():
    types = {"%struct.list": "{ %struct.node*, i32 }", "%struct.node": "{ i32, %struct.node* }",
             "%struct.T": "opaque", "%struct.U": "{ %struct.T*, %struct.missing }"}
    assert inline_struct_types(types) == {
        "%struct.list": "{ { i32, opaque* }*, i32 }", "%struct.node": "{ i32, opaque* }",
        "%struct.T": "opaque", "%struct.U": "{ opaque*, opaque }"}


def test_normalise_does_not_change_its_input():
    types = {"%struct.node": "{ i32, %struct.node* }"}
    copy = dict(types)
    normalise("%c = icmp eq %struct.node* %p, null", types)
    assert types == copy


MODULE = """\
%struct.S = type { i32, %struct.S* }
@g = global i32 0, align 4
@.str = private unnamed_addr constant [3 x i8] c"hi\\00", align 1

; Function Attrs: nounwind
define i32 @f(i32 %a, %struct.S* %s) #0 {
entry:
  %x = add nsw i32 %a, 1, !dbg !5
  %c = icmp sgt i32 %x, 0
  br i1 %c, label %then, label %done

then:                                             ; preds = %entry
  %p = getelementptr inbounds %struct.S, %struct.S* %s, i64 0, i32 0
  store i32 %x, i32* %p, align 4, !tbaa !7
  %r = call i32 @g2(i8* getelementptr inbounds ([3 x i8], [3 x i8]* @.str, i64 0, i64 0)) #1
  br label %done

done:                                             ; preds = %then, %entry
  %y = phi i32 [ %x, %then ], [ 0, %entry ]
  ret i32 %y
}

declare i32 @g2(i8*)
"""


def test_module_statements_align_with_graph_node_ids():
    graph, statements = module_statements(MODULE)
    assert len(statements) == graph.num_nodes
    assert statements[0] is None  # the external node
    instruction_ids = [i for i in range(1, graph.num_nodes) if graph.node_type[i] == INSTRUCTION]
    assert instruction_ids == list(range(1, 10))
    assert all(statements[i] is None for i in range(graph.num_nodes) if i not in instruction_ids)
    assert statements[1:10] == [
        "<%ID> = add nsw i32 <%ID>, <INT>",
        "<%ID> = icmp sgt i32 <%ID>, <INT>",
        "br i1 <%ID>, label <%ID>, label <%ID>",
        "<%ID> = getelementptr inbounds { i32, opaque* }, { i32, opaque* }* <%ID>, i64 <INT>, i32 <INT>",
        "store i32 <%ID>, i32* <%ID>, align 4",
        "<%ID> = call i32 <@ID>(i8* getelementptr inbounds ([3 x i8], [3 x i8]* <@ID>, i64 <INT>, i64 <INT>))",
        "br label <%ID>",
        "<%ID> = phi i32 [ <%ID>, <%ID> ], [ 0, <%ID> ]",
        "ret i32 <%ID>",
    ]
    # Each statement is normalise() of its node's full text with the module's struct types.
    types = struct_types(MODULE)
    for i in instruction_ids:
        assert statements[i] == normalise(graph.node_full_text[i], types)


def test_module_statements_reuses_a_given_graph():
    graph, _ = module_statements(MODULE)
    again, statements = module_statements(MODULE, graph)
    assert again is graph
    assert statements[1] == "<%ID> = add nsw i32 <%ID>, <INT>"


def test_module_statements_opaque_pointers():
    ir = MODULE.replace("%struct.S*", "ptr").replace("i32*", "ptr").replace("i8*", "ptr").replace(
        "[3 x i8]* @.str", "ptr @.str")
    _, statements = module_statements(ir)
    assert "<%ID> = getelementptr inbounds { i32, ptr }, ptr <%ID>, i64 <INT>, i32 <INT>" in statements
    assert "store i32 <%ID>, ptr <%ID>, align 4" in statements


def test_normalise_does_not_import_torch():
    assert "ncc.embeddings.normalise" in sys.modules
    import subprocess
    code = "import sys, ncc.embeddings.normalise; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
