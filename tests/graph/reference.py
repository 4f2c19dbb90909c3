"""An independent reference for the program graph builder, computed from llvmlite's (LLVM 22's) own parse.

The differential test (``test_differential.py``) reduces both sides to the same plain summary per defined
function and compares them:

- ``blocks``: the number of instructions in each basic block, in textual order (so also the function's
  instruction count);
- ``opcodes``: a histogram of LLVM opcode names (``getelementptr``, ``call``, ``icmp`` ...);
- ``successors``: ``(block index, successor index) -> target block index`` for every terminator;
- ``callees``: a multiset of the names of defined functions called directly (``call``, ``invoke``,
  ``callbr``, also through a ``bitcast`` of the function);
- ``external_calls``: the number of call sites whose callee is declared, an intrinsic, inline asm, an
  alias or an indirect pointer.

:func:`reference_summary` walks llvmlite's values and knows nothing of ncc's parser;
:func:`graph_summary` reads the same facts off a :class:`~ncc.graph.ProgramGraph`'s arrays.
"""

from __future__ import annotations

import ctypes
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

CALL_OPCODES = frozenset(("call", "invoke", "callbr"))

# LLVM 22 no longer reads the ``inrange`` GEP keyword of clang <= 17 (``getelementptr inbounds inrange
# ({...}, ptr @vtable, i32 0, inrange i32 0, i32 2)`` and ``getelementptr inbounds inrange(-16, 8) ...``).
_INRANGE = re.compile(r"(?<![-\w.$@%\"])inrange(?:\s*\(\s*-?\d+\s*,\s*-?\d+\s*\))?\s+")
# LLVM 22 wants ``byval`` typed (``byval(T)``); LLVM <= 8 wrote ``%struct.S* byval`` (NCC's 2018 IR does).
_UNTYPED_BYVAL = re.compile(r"(%[-\w.$]+|i\d+|float|double)\*( (?:[a-z]+ )*?)byval(?!\()")


@dataclass
class FunctionSummary:
    """What the differential test compares for one defined function."""

    blocks: list[int] = field(default_factory=list)
    opcodes: Counter = field(default_factory=Counter)
    successors: dict[tuple[int, int], int] = field(default_factory=dict)
    callees: Counter = field(default_factory=Counter)
    external_calls: int = 0

    @property
    def num_instructions(self) -> int:
        return sum(self.blocks)


# Module summary: function names (unquoted, as LLVM stores them) in textual order -> FunctionSummary.
ModuleSummary = dict[str, FunctionSummary]


def llvm_text(ir: str) -> str:
    """The IR as LLVM 22 accepts it: clang-14's ``inrange`` GEP keyword removed, untyped ``byval`` typed.

    Only the copy given to llvmlite is changed; ncc's builder reads the original text.
    """
    if "inrange" in ir:
        ir = _INRANGE.sub("", ir)
    if " byval" in ir:
        ir = _UNTYPED_BYVAL.sub(r"\1*\2byval(\1)", ir)
    return ir


def _address(value) -> int:
    return ctypes.cast(value._ptr, ctypes.c_void_p).value


# ``ptr addrspace(4) addrspacecast (ptr @f to ptr addrspace(4))`` as LLVM prints a constant cast of a global
_CAST_OF_GLOBAL = re.compile(r'^\s*(?:ptr(?: addrspace\(\d+\))?\s+)?(?:bitcast|addrspacecast)\s*\('
                             r'\s*ptr(?: addrspace\(\d+\))?\s+(@(?:"[^"]*"|[-\w.$]+))\s+to\s')


def _direct_callee(value, module):
    """The function a call's callee operand names, looking through a constant pointer cast; else None."""
    from llvmlite.binding import ValueKind

    kind = value.value_kind
    if kind == ValueKind.function:
        return module.get_function(value.name)  # as a function, not an operand, to ask is_declaration
    if kind == ValueKind.constant_expr:
        # ``call bitcast (void (...)* @f to void (i32)*)(...)``: llvmlite cannot list a constant
        # expression's operands, so read the one global it casts from LLVM's printout.
        m = _CAST_OF_GLOBAL.match(str(value))
        if m is not None:
            try:
                return module.get_function(unquote_global(m.group(1)))
            except NameError:
                return None
    return None


def reference_summary(ir: str) -> ModuleSummary:
    """Summarise every defined function of ``ir`` from llvmlite's parse.

    Raises:
        RuntimeError: LLVM rejected the IR (llvmlite's own error).
    """
    import llvmlite.binding as llvm

    BASIC_BLOCK = llvm.ValueKind.basic_block
    module = llvm.parse_assembly(llvm_text(ir))
    summary: ModuleSummary = {}
    for function in module.functions:
        if function.is_declaration:
            continue
        fs = FunctionSummary()
        blocks = list(function.blocks)
        block_index = {_address(b): k for k, b in enumerate(blocks)}
        for bi, block in enumerate(blocks):
            count = 0
            terminator = None
            for inst in block.instructions:
                count += 1
                opcode = inst.opcode
                fs.opcodes[opcode] += 1
                terminator = (inst, opcode)
                if opcode in CALL_OPCODES:
                    operands = list(inst.operands)
                    callee = _direct_callee(operands[-1], module)
                    if callee is not None and not callee.is_declaration:
                        fs.callees[callee.name] += 1
                    else:
                        fs.external_calls += 1
            fs.blocks.append(count)
            if terminator is None:
                continue
            inst, opcode = terminator
            labels = [block_index[_address(op)] for op in inst.operands if op.value_kind == BASIC_BLOCK]
            if opcode == "br" and len(labels) == 2:
                labels.reverse()  # LLVM keeps ``br i1 %c, label %t, label %f`` as operands (%c, %f, %t)
            for s, target in enumerate(labels):
                fs.successors[(bi, s)] = target
        summary[function.name] = fs
    return summary


def unquote_global(name: str) -> str:
    """A global's name as LLVM stores it (what llvmlite's ``.name`` gives): ``@"a\\22b"`` -> ``a"b``."""
    if name[:1] in "@%":
        name = name[1:]
    if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
        raw = name[1:-1].encode("utf-8")
        out = bytearray()
        k = 0
        while k < len(raw):
            if raw[k] == 0x5C and raw[k + 1:k + 2] == b"\\":
                out.append(0x5C)
                k += 2
            elif raw[k] == 0x5C and re.fullmatch(rb"[0-9A-Fa-f]{2}", raw[k + 1:k + 3]):
                out.append(int(raw[k + 1:k + 3], 16))
                k += 3
            else:
                out.append(raw[k])
                k += 1
        name = out.decode("utf-8", "replace")
    return name


class GraphShapeError(AssertionError):
    """The graph breaks a rule of the builder's schema that the summary relies on."""


def graph_summary(graph) -> ModuleSummary:
    """Summarise every function of a :class:`~ncc.graph.ProgramGraph` the way :func:`reference_summary` does.

    Also checks the structure the summary assumes (raises :class:`GraphShapeError`): instruction nodes are
    contiguous per block and in order, each non-terminator has exactly one control edge (position 0) to the
    next instruction, each terminator's control edges go to block entries of its own function with
    positions 0..k-1, and each call site has exactly one outgoing call edge, to the external node or to a
    function's entry instruction.
    """
    from ncc.graph.program_graph import CALL, CONTROL, INSTRUCTION

    names = [unquote_global(n) for n in graph.function_names]
    is_inst = graph.node_type == INSTRUCTION
    is_inst[0] = False
    inst_ids = np.flatnonzero(is_inst)
    if inst_ids.size and (inst_ids[0] != 1 or inst_ids[-1] != inst_ids.size):
        raise GraphShapeError("instruction nodes are not 1..I")
    fn_of = graph.node_function
    block_of = graph.node_block
    text = graph.node_text

    # blocks: (function, block) -> (first node, last node), in node order
    key = fn_of[inst_ids].astype(np.int64) * (1 << 32) + block_of[inst_ids]
    if np.any(np.diff(key) < 0):
        raise GraphShapeError("instruction nodes are not ordered by function and block")
    starts = np.flatnonzero(np.r_[True, np.diff(key) != 0])
    ends = np.r_[starts[1:], key.size] - 1
    first = inst_ids[starts]
    last = inst_ids[ends]
    is_first = np.zeros(graph.num_nodes, dtype=bool)
    is_first[first] = True
    is_last = np.zeros(graph.num_nodes, dtype=bool)
    is_last[last] = True
    entry_of_function = {}
    summary: ModuleSummary = {name: FunctionSummary() for name in names}
    if len(summary) != len(names):
        raise GraphShapeError("function names collide after unquoting")
    for s, e in zip(first, last):
        f, b = int(fn_of[s]), int(block_of[s])
        fs = summary[names[f]]
        if b != len(fs.blocks):
            raise GraphShapeError(f"{names[f]}: block {b} out of order (expected {len(fs.blocks)})")
        fs.blocks.append(int(e - s + 1))
        if b == 0:
            entry_of_function[int(s)] = f
    for node in inst_ids:
        summary[names[fn_of[node]]].opcodes[text[node]] += 1

    src, dst = graph.edge_index
    flow, position = graph.edge_flow, graph.edge_position

    # control edges
    control = np.flatnonzero(flow == CONTROL)
    c_src, c_dst, c_pos = src[control], dst[control], position[control]
    inner = ~is_last[c_src]
    if np.any(c_dst[inner] != c_src[inner] + 1) or np.any(c_pos[inner] != 0):
        bad = np.flatnonzero(inner & ((c_dst != c_src + 1) | (c_pos != 0)))[0]
        raise GraphShapeError(f"control edge {c_src[bad]} -> {c_dst[bad]} (position {c_pos[bad]}) inside a block "
                              f"does not go to the next instruction")
    chained = np.zeros(graph.num_nodes, dtype=np.int64)
    np.add.at(chained, c_src[inner], 1)
    non_terminators = inst_ids[~is_last[inst_ids]]
    if np.any(chained[non_terminators] != 1):
        bad = non_terminators[chained[non_terminators] != 1][0]
        raise GraphShapeError(f"instruction {bad} ({graph.node_full_text[bad]!r}) has {chained[bad]} control "
                              f"edges to its successor, expected 1")
    for s, d, p in zip(c_src[~inner], c_dst[~inner], c_pos[~inner]):
        f = int(fn_of[s])
        fs = summary[names[f]]
        if not is_first[d] or fn_of[d] != f:
            raise GraphShapeError(f"terminator {s} ({graph.node_full_text[s]!r}) has a control edge to node {d}, "
                                  f"not the first instruction of a block of its function")
        k = (int(block_of[s]), int(p))
        if k in fs.successors:
            raise GraphShapeError(f"terminator {s} ({graph.node_full_text[s]!r}) has two successors at "
                                  f"position {p}")
        fs.successors[k] = int(block_of[d])
    for fs in summary.values():
        per_block = Counter(b for b, _ in fs.successors)
        for (b, p) in fs.successors:
            if p >= per_block[b]:
                raise GraphShapeError(f"block {b}: successor positions are not 0..{per_block[b] - 1}")

    # call edges out of call sites
    call = np.flatnonzero(flow == CALL)
    k_src, k_dst = src[call], dst[call]
    from_site = (k_src > 0) & np.isin(text[k_src], list(CALL_OPCODES))
    out_degree = Counter(k_src[from_site].tolist())
    for node in inst_ids:
        if text[node] in CALL_OPCODES and out_degree.get(int(node), 0) != 1:
            raise GraphShapeError(f"call site {node} ({graph.node_full_text[node]!r}) has "
                                  f"{out_degree.get(int(node), 0)} outgoing call edges, expected 1")
    for s, d in zip(k_src[from_site], k_dst[from_site]):
        fs = summary[names[fn_of[s]]]
        if d == 0:
            fs.external_calls += 1
        elif int(d) in entry_of_function:
            fs.callees[names[entry_of_function[int(d)]]] += 1
        else:
            raise GraphShapeError(f"call site {s} ({graph.node_full_text[s]!r}) has a call edge to node {d}, "
                                  f"which is not a function entry")
    return summary


def compare(reference: ModuleSummary, got: ModuleSummary) -> list[str]:
    """Differences between the reference and the graph's summary, one line each (empty when equal)."""
    problems = []
    if list(reference) != list(got):
        missing = [n for n in reference if n not in got]
        extra = [n for n in got if n not in reference]
        problems.append(f"functions differ: missing {missing[:5]}, extra {extra[:5]}" if missing or extra
                        else "functions are in a different order")
    for name in reference:
        if name not in got:
            continue
        r, g = reference[name], got[name]
        if r.blocks != g.blocks:
            if len(r.blocks) != len(g.blocks):
                problems.append(f"{name}: {len(g.blocks)} blocks, expected {len(r.blocks)}")
            else:
                b = next(k for k in range(len(r.blocks)) if r.blocks[k] != g.blocks[k])
                problems.append(f"{name}: block {b} has {g.blocks[b]} instructions, expected {r.blocks[b]} "
                                f"({g.num_instructions} vs {r.num_instructions} in the function)")
        if r.opcodes != g.opcodes:
            diff = {op: (r.opcodes.get(op, 0), g.opcodes.get(op, 0)) for op in set(r.opcodes) | set(g.opcodes)
                    if r.opcodes.get(op, 0) != g.opcodes.get(op, 0)}
            problems.append(f"{name}: opcode counts (expected, got) differ: {dict(sorted(diff.items()))}")
        if r.successors != g.successors:
            diff = sorted(k for k in set(r.successors) | set(g.successors)
                          if r.successors.get(k) != g.successors.get(k))
            shown = ", ".join(f"block {b} successor {s}: expected {r.successors.get((b, s))}, "
                              f"got {g.successors.get((b, s))}" for b, s in diff[:3])
            problems.append(f"{name}: {len(diff)} CFG successors differ: {shown}")
        if r.callees != g.callees:
            problems.append(f"{name}: direct callees differ: expected {dict(r.callees)}, got {dict(g.callees)}")
        if r.external_calls != g.external_calls:
            problems.append(f"{name}: {g.external_calls} calls to the external node, expected {r.external_calls}")
    return problems
