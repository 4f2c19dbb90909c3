"""Edge-count instrumentation of textual LLVM IR (opaque pointers, as clang 15+ writes it).

Every basic block gets a counter at its start (after its phi nodes and EH pad), and every terminator with more
than one successor gets one counter per successor, incremented at the terminator itself:

* ``br i1 %c``: ``true += zext %c``, ``false += 1 - zext %c``;
* ``switch``: each case ``+= zext (icmp eq %x, value)``, the default ``+= 1 - sum of the cases``;
* ``indirectbr``: each target ``+= zext (icmp eq %address, blockaddress(@f, %target))``;
* ``invoke``: a counter where the invoke is reached, and one in a new block split into its normal edge (the
  normal destination's phi nodes are renamed to it); unwinds are the difference.

An unconditional ``br`` needs no counter (its edge runs as often as its block). The counters live in one
global array ``@__ncc_counters`` (between guards);
ncc's runtime (``runtime.c``) writes it to a file when the program exits.
The attributes that let LLVM treat a function as free of side effects (``memory(...)``, ``readnone``,
``speculatable`` ...) are removed, so that optimising the instrumented IR keeps every increment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ncc.errors import NccError
from ncc.frontend.ir import IRModule
from ncc.graph.ir_parser import Function, Instruction, parse

#: The counters (what the runtime reads), the global holding their number, and the array they live in, with
#: ``GUARD_COUNTERS`` unused counters on each side: a program that writes a little past the end of one of its
#: own globals (gcc-torture and csmith programs do) hits a guard, not a count.
COUNTERS_SYMBOL = "__ncc_counters"
COUNT_SYMBOL = "__ncc_counter_total"
STORAGE_SYMBOL = "__ncc_counter_storage"
GUARD_COUNTERS = 64

_PHI_LIKE = frozenset(("phi", "landingpad", "catchpad", "cleanuppad"))
_UNSUPPORTED_TERMINATORS = frozenset(("callbr", "catchswitch", "cleanupret", "catchret"))
_SIDE_EFFECT_FREE = re.compile(r"\s(?:memory\([^)]*\)|readnone|readonly|writeonly|speculatable|"
                               r"argmemonly|inaccessiblememonly|inaccessiblemem_or_argmemonly)(?=[\s}])")
_EMPTY_GROUP = re.compile(r"^(attributes #\d+ = )\{\s*\}")  # LLVM refuses an empty group
_TYPED_POINTER = re.compile(r"\b(?:i\d+|float|double|%[-\w.]+)\*")


class InstrumentationError(NccError):
    """IR that cannot be instrumented (typed pointers, Windows EH, ``callbr``)."""


@dataclass(frozen=True)
class BranchCounters:
    """The counters of one terminator with several successors.

    Attributes:
        opcode: ``br``, ``switch``, ``indirectbr`` or ``invoke``.
        successors: one counter per successor, in successor order (for ``invoke`` only the normal edge's).
        reached: for ``invoke``, the counter of the times it was reached (unwinds = reached - normal), else -1.
    """

    opcode: str
    successors: tuple[int, ...]
    reached: int = -1


@dataclass
class CounterLayout:
    """Where each count lives in the counter array.

    Attributes:
        num_counters: length of the array.
        blocks: ``blocks[f][b]`` is the counter of block ``b`` of function ``f`` (indices as in the graph).
        branches: ``(f, b) -> BranchCounters`` for blocks whose terminator has counters.
    """

    num_counters: int = 0
    blocks: list[list[int]] = field(default_factory=list)
    branches: dict[tuple[int, int], BranchCounters] = field(default_factory=dict)

    def allocate(self) -> int:
        self.num_counters += 1
        return self.num_counters - 1


@dataclass(frozen=True)
class InstrumentedModule:
    """Instrumented IR text and the layout of its counters."""

    text: str
    layout: CounterLayout


class _Emitter:
    """Writes the increments of one function, with value names unique within it."""

    def __init__(self) -> None:
        self.serial = 0

    def name(self) -> str:
        self.serial += 1
        return f"%__ncc.{self.serial}"

    def add(self, counter: int, amount: str, lines: list[str]) -> None:
        """``counters[counter] += amount`` (an i64 value or constant)."""
        slot = f"getelementptr inbounds (i64, ptr @{STORAGE_SYMBOL}, i64 {counter + GUARD_COUNTERS})"
        old, new = self.name(), self.name()
        lines += [f"  {old} = load i64, ptr {slot}, align 8",
                  f"  {new} = add i64 {old}, {amount}",
                  f"  store i64 {new}, ptr {slot}, align 8"]

    def indicator(self, condition: str, lines: list[str]) -> str:
        """An i64 that is 1 when the i1 ``condition`` holds, else 0."""
        value = self.name()
        lines.append(f"  {value} = zext i1 {condition} to i64")
        return value

    def complement(self, value: str, lines: list[str]) -> str:
        result = self.name()
        lines.append(f"  {result} = sub i64 1, {value}")
        return result


def instrument(ir: IRModule | str) -> InstrumentedModule:
    """Add block and edge counters to LLVM IR.

    Args:
        ir: an IRModule or IR text in the opaque-pointer syntax of LLVM 15 and later.

    Returns:
        The instrumented IR and its :class:`CounterLayout` (function and block indices as in
        :func:`ncc.graph.build` of the same IR).

    Raises:
        InstrumentationError: typed pointers, ``callbr`` or Windows exception handling.
        IRParseError: malformed IR.
    """
    text = ir.text if isinstance(ir, IRModule) else ir
    path = ir.source_path if isinstance(ir, IRModule) else None
    module = parse(text, path)
    if not module.opaque_pointers and _TYPED_POINTER.search(text):
        raise InstrumentationError("typed-pointer IR (LLVM 14 or older) cannot be linked by ncc's LLVM", path)
    if f"@{COUNTERS_SYMBOL}" in text:
        raise InstrumentationError("the IR is already instrumented", path)
    lines = text.split("\n")
    before: dict[int, list[str]] = {}  # 0-based line -> lines inserted before it
    replaced: dict[int, tuple[int, str]] = {}  # 0-based first line -> (lines replaced, new text)
    layout = CounterLayout()
    for fi, function in enumerate(module.functions):
        emitter = _Emitter()
        layout.blocks.append([])
        split_blocks: list[str] = []
        for bi, block in enumerate(function.blocks):
            counter = layout.allocate()
            layout.blocks[fi].append(counter)
            first = next((inst for inst in block.instructions if inst.opcode not in _PHI_LIKE), None)
            if first is None:
                raise InstrumentationError(f"block {block.name} of {function.name} has no terminator", path)
            emitter.add(counter, "1", before.setdefault(first.line - 1, []))
            terminator = block.instructions[-1]
            if terminator.opcode in _UNSUPPORTED_TERMINATORS:
                raise InstrumentationError(f"'{terminator.opcode}' in {function.name} is not supported", path)
            branch = _instrument_terminator(function, block.name, terminator, layout, emitter,
                                            before.setdefault(terminator.line - 1, []), split_blocks, replaced,
                                            lines, module, fi, bi)
            if branch is not None:
                layout.branches[(fi, bi)] = branch
        if split_blocks:
            closing = _closing_line(lines, function.blocks[-1].instructions[-1].line - 1)
            before.setdefault(closing, []).extend(split_blocks)
    out: list[str] = []
    index = 0
    while index < len(lines):
        out.extend(before.get(index, ()))
        if index in replaced:
            span, new_text = replaced[index]
            out.append(new_text)
            index += span
            continue
        line = lines[index]
        if line.startswith("attributes #"):
            line = _EMPTY_GROUP.sub(r'\1{ "ncc-instrumented" }', _SIDE_EFFECT_FREE.sub("", line))
        out.append(line)
        index += 1
    size = layout.num_counters + 2 * GUARD_COUNTERS
    out.append(f"@{STORAGE_SYMBOL} = internal global [{size} x i64] zeroinitializer, align 64")
    out.append(f"@{COUNTERS_SYMBOL} = dso_local alias i64, getelementptr inbounds "
               f"(i8, ptr @{STORAGE_SYMBOL}, i64 {8 * GUARD_COUNTERS})")
    out.append(f"@{COUNT_SYMBOL} = dso_local constant i64 {layout.num_counters}, align 8")
    return InstrumentedModule("\n".join(out) + "\n", layout)


def _instrument_terminator(function: Function, block_name: str, inst: Instruction, layout: CounterLayout,
                           emitter: _Emitter, lines: list[str], split_blocks: list[str],
                           replaced: dict[int, tuple[int, str]], source_lines: list[str], module, fi: int,
                           bi: int) -> BranchCounters | None:
    opcode = inst.opcode
    if opcode == "br" and len(inst.successors) == 2:
        condition = inst.operands[0][1]
        taken, not_taken = layout.allocate(), layout.allocate()
        value = emitter.indicator(condition, lines)
        emitter.add(taken, value, lines)
        emitter.add(not_taken, emitter.complement(value, lines), lines)
        return BranchCounters("br", (taken, not_taken))
    if opcode == "switch":
        _, condition, condition_type, _ = inst.operands[0]
        cases = inst.operands[1:]
        default = layout.allocate()
        counters = [default]
        matches = []
        for _, value, value_type, _ in cases:
            counter = layout.allocate()
            counters.append(counter)
            equal = emitter.name()
            lines.append(f"  {equal} = icmp eq {condition_type} {condition}, {value}")
            indicator = emitter.indicator(equal, lines)
            emitter.add(counter, indicator, lines)
            matches.append(indicator)
        remaining = "1"
        for indicator in matches:
            result = emitter.name()
            lines.append(f"  {result} = sub i64 {remaining}, {indicator}")
            remaining = result
        emitter.add(default, remaining, lines)
        return BranchCounters("switch", tuple(counters))
    if opcode == "indirectbr":
        address = inst.operands[0][1]
        counters = []
        for target in inst.successors:
            counter = layout.allocate()
            counters.append(counter)
            equal = emitter.name()
            lines.append(f"  {equal} = icmp eq ptr {address}, blockaddress({function.name}, {target})")
            emitter.add(counter, emitter.indicator(equal, lines), lines)
        return BranchCounters("indirectbr", tuple(counters))
    if opcode == "invoke":
        reached, normal = layout.allocate(), layout.allocate()
        emitter.add(reached, "1", lines)
        normal_target = inst.successors[0]
        split = f"%__ncc.split.{bi}"
        first = inst.line - 1
        span = _instruction_span(source_lines, first)
        joined = " ".join(line.strip() for line in source_lines[first:first + span])
        rewritten, found = re.subn(rf"\bto\s+label\s+{re.escape(normal_target)}(?![-\w.$])",
                                   f"to label {split}", joined, count=1)
        if not found:
            raise InstrumentationError(f"cannot find the normal destination of an invoke in {function.name}")
        replaced[first] = (span, "  " + rewritten)
        block_lines = [f"{split[1:]}:"]
        emitter.add(normal, "1", block_lines)
        block_lines.append(f"  br label {normal_target}")
        split_blocks.extend(block_lines)
        _rename_phi_predecessor(function, normal_target, block_name, split, source_lines, replaced)
        return BranchCounters("invoke", (normal,), reached)
    return None


def _rename_phi_predecessor(function: Function, target: str, old: str, new: str, lines: list[str],
                            replaced: dict[int, tuple[int, str]]) -> None:
    """In block ``target``, make phi entries that came from ``old`` come from ``new``."""
    block = next(block for block in function.blocks if block.name == target)
    pattern = re.compile(rf",\s*{re.escape(old)}\s*\]")
    for inst in block.instructions:
        if inst.opcode != "phi":
            break
        first = inst.line - 1
        span, current = replaced.get(first, (_instruction_span(lines, first), None))
        current = current if current is not None else " ".join(line.strip() for line in lines[first:first + span])
        replaced[first] = (span, "  " + pattern.sub(f", {new} ]", current.strip()))


def _instruction_span(lines: list[str], first: int) -> int:
    """How many lines the instruction starting at ``first`` takes (tables and ``to label`` continuations)."""
    depth = lines[first].count("[") - lines[first].count("]")
    span = 1
    while first + span < len(lines):
        following = lines[first + span].strip()
        if depth > 0 or following.startswith(("to label", "unwind ", "catch ", "cleanup", "filter ")):
            depth += following.count("[") - following.count("]")
            span += 1
        else:
            break
    return span


def _closing_line(lines: list[str], start: int) -> int:
    """The line of the ``}`` that closes the function whose last terminator starts at ``start``."""
    for index in range(start, len(lines)):
        if lines[index].startswith("}"):
            return index
    raise InstrumentationError("function without a closing '}'")
