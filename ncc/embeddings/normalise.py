"""inst2vec statement normalisation (Ben-Nun et al., NeurIPS 2018, https://arxiv.org/abs/1806.07336).

inst2vec embeds LLVM IR *statements* after abstracting away what is specific to one program, so that
``%5 = add nsw i32 %3, 1`` and ``%x = add nsw i32 %y, 7`` become the same token. The target format is the
one of NCC's published vocabulary (8,565 statements); the rules below were read off that vocabulary:

- local identifiers and labels become ``<%ID>``, globals and functions (callees too) ``<@ID>``;
- integer literals become ``<INT>``, floating point literals (decimal, scientific and hexadecimal)
  ``<FLOAT>``, ``c"..."`` strings ``<STRING>``; integers stay where they are part of a type or an
  attribute (``[4 x i8]``, ``align 4``, ``dereferenceable(8)``), as immediate ``phi`` values
  (``[ 0, <%ID> ]``), as ``extractvalue``/``insertvalue`` indices, and in ``extractelement`` and
  ``insertelement``, whose integer types become ``<TYP>`` instead;
- named struct types are inlined to their literal body; a struct reached again while it is being
  inlined (a recursive type) and a struct declared ``opaque`` become ``opaque``;
- metadata attachments (``!tbaa``, ``!dbg``, ...), attribute groups (``#0``), ``noundef`` and comments
  are removed; alignment and parameter attributes (``nonnull``, ``dereferenceable(N)``) stay, as in the
  vocabulary; debug intrinsics keep only their first argument, ``call void <@ID>(metadata i32 <%ID>())``;
- what newer LLVM writes differently from the LLVM that made the vocabulary is written the old way, so
  that the same operation is the same token: ``noundef`` goes (above), so does the ``align N`` parameter
  and return attribute of calls (``nonnull align 8 dereferenceable(8)``; clang >= 11 emits it, and the
  vocabulary has it nowhere but after ``byval``), ``nonnull`` before ``dereferenceable(N)`` on a call's
  return (old clang marked returned references ``dereferenceable`` only), and ``fneg T x`` on a scalar becomes
  ``fsub T <FLOAT>, x``, the ``fsub -0.0, x`` that LLVM < 9 wrote for a negation;
- ``switch`` cases, the ``invoke`` destinations and ``landingpad`` clauses go on their own lines
  (``"\\n "``), as LLVM prints them.

Opaque-pointer IR (LLVM >= 15) is normalised by the same rules; its statements spell pointers ``ptr``
and so are not in the (typed-pointer) published vocabulary.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ncc.graph.builder import build
from ncc.graph.ir_parser import struct_types as _module_struct_types
from ncc.graph.program_graph import INSTRUCTION

if TYPE_CHECKING:
    from ncc.frontend.ir import IRModule
    from ncc.graph.program_graph import ProgramGraph

__all__ = ["normalise", "module_statements", "inline_struct_types"]

log = logging.getLogger(__name__)

# --- patterns, compiled once -------------------------------------------------------------------------
_NAME = r'(?:"[^"]*"|[-\w.$]+)'
_LOCAL = re.compile(r'%' + _NAME)
_GLOBAL = re.compile(r'@' + _NAME)
_METADATA = re.compile(r',\s*![-\w.]+\s+(?:![-\w.]+|!\{[^}]*\}|!"[^"]*"|!\w+\([^)]*\))')
_ATTR_GROUP = re.compile(r'\s*#\d+\b')
_NOUNDEF = re.compile(r'\bnoundef ')
# "align N" as a parameter / return attribute: inside a call, after a type or another attribute (never after
# the ", " of an instruction's own alignment), not after byval / byref / sret (those kept it in old IR).
_PARAM_ALIGN = re.compile(r'(?<!,)(?<!byval)(?<!byref) align \d+(?= )')
_RETURN_NONNULL = re.compile(r'(= (?:tail |musttail |notail )?call )nonnull (?=dereferenceable\()')
_FNEG = re.compile(r'^(<%ID> = )fneg ((?:[a-z]+ )*)(half|bfloat|float|double|x86_fp80|fp128|ppc_fp128) ')
_STRING = re.compile(r'c"[^"]*"')
_FLOAT = re.compile(r'(?<![\w.$<])-?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|0x[KLMHR]?[0-9A-Fa-f]+)\b')
# An integer is a literal when it stands after a space -- but not after "[ " (a phi's immediate value),
# not after "align ", and not as the count of an array or vector type ("[4 x", "<4 x").
_INT = re.compile(r'(?<= )(?<!\[ )(?<!align )-?\d+\b(?! x )')
_INT_TYPE = re.compile(r'\bi\d+ ')
_AGG_INDICES = re.compile(r'(?:, \d+)+$')
_OPCODE = re.compile(r'\s*(?:[%@]' + _NAME + r'\s*=\s*)?(?:(?:tail|musttail|notail)\s+)?([a-z_]+)')
_WS = re.compile(r'\s+')
_DBG_CALL = re.compile(r'\((metadata [^,]*?), .*metadata .*\)$')
_DBG_RECORD = re.compile(r'#dbg_\w+\(([^,]*?), .*\)$')
_SWITCH_CASE = re.compile(r'\s*([^\s,\[\]]+ [^\s,\[\]]+), label (<%ID>)')
_INVOKE_DEST = re.compile(r'\s+to label (\S+) unwind ')
_LANDINGPAD_CLAUSE = re.compile(r'\s+(cleanup|catch|filter)\b')
_NUMBERED = re.compile(r'%\d+$')

_ID_LOCAL = "<%ID>"
_ID_GLOBAL = "<@ID>"

# --- struct types --------------------------------------------------------------------------------------

_TYPE_NAME = re.compile(r'%' + _NAME)


def inline_struct_types(struct_types: Mapping[str, str]) -> dict[str, str]:
    """Inline every named struct type of a module into a literal type, inst2vec's way.

    Types are resolved depth first in the sorted order of their names, and each result is kept once
    found. A struct met again while it is being inlined (a recursive type, directly or through other
    structs) becomes ``opaque``, as does a struct declared ``opaque`` or not defined at all. The order
    matters for mutually recursive structs and is the one that reproduces the published vocabulary:
    ``basic_ios`` (which points back to ``basic_ostream``) is resolved before ``basic_ostream``, so that
    ``basic_ostream`` reads ``{ i32 (...)**, opaque }``, and ``ios_base`` before its ``_Callback_list``,
    which reads ``{ opaque*, void (i32, opaque*, i32)*, i32, i32 }`` inside ``ios_base``.

    Args:
        struct_types: ``{"%struct.S": "{ i32, %struct.S* }", ...}`` as :func:`ncc.graph.ir_parser.struct_types`
            returns it.

    Returns:
        ``{"%struct.S": "{ i32, opaque* }", ...}``.
    """
    done: dict[str, str] = {}
    active: set[str] = set()

    def resolve(name: str) -> str:
        found = done.get(name)
        if found is not None:
            return found
        if name in active:
            return "opaque"
        body = struct_types.get(name)
        if body is None or body == "opaque":
            done[name] = "opaque"
            return "opaque"
        active.add(name)
        literal = _TYPE_NAME.sub(lambda m: resolve(m.group(0)) if m.group(0) in struct_types else "opaque", body)
        active.discard(name)
        done[name] = literal
        return literal

    for name in sorted(struct_types):
        resolve(name)
    return {name: done[name] for name in struct_types}


_INLINED_CACHE: dict[int, tuple[Mapping[str, str], dict[str, str]]] = {}
_INLINED_CACHE_SIZE = 64


def _inlined(struct_types: Mapping[str, str]) -> dict[str, str]:
    """The inlined types of ``struct_types``, cached by identity (a module's mapping is reused)."""
    entry = _INLINED_CACHE.get(id(struct_types))
    if entry is not None and entry[0] is struct_types:
        return entry[1]
    inlined = inline_struct_types(struct_types)
    if len(_INLINED_CACHE) >= _INLINED_CACHE_SIZE:
        _INLINED_CACHE.pop(next(iter(_INLINED_CACHE)))
    _INLINED_CACHE[id(struct_types)] = (struct_types, inlined)
    return inlined


# --- statements ----------------------------------------------------------------------------------------

def _strip_comment(s: str) -> str:
    """Drop a ``; comment``, minding semicolons inside quoted strings."""
    if '"' not in s:
        return s[:s.index(";")]
    quoted = False
    for i, c in enumerate(s):
        if c == '"':
            quoted = not quoted
        elif c == ";" and not quoted:
            return s[:i]
    return s


_TYPE_BEFORE = ("alloca ", "load ", "getelementptr ", "inbounds ", "x ", "{ ", "<{ ", "volatile ", "(")


def _is_type_position(s: str, start: int, end: int) -> bool:
    """Whether a numbered name (``%0``) at ``s[start:end]`` names a type rather than a value."""
    after = s[end:end + 1]
    if after == "*" or after == "]" or after == ">" or s.startswith(" addrspace", end):
        return True
    return s.endswith(_TYPE_BEFORE, 0, start)


def _locals_and_types(s: str, inlined: dict[str, str]) -> str:
    def replace(m: re.Match) -> str:
        name = m.group(0)
        literal = inlined.get(name)
        if literal is None:
            return _ID_LOCAL
        if _NUMBERED.match(name) and not _is_type_position(s, m.start(), m.end()):
            return _ID_LOCAL
        return literal
    return _LOCAL.sub(replace, s)


def normalise(statement: str, struct_types: Mapping[str, str] | None = None) -> str:
    """inst2vec-normalise one LLVM IR instruction given as written (a graph node's full_text).

    Args:
        statement: the instruction, e.g. ``%5 = load i32, i32* %4, align 4, !tbaa !8``; a multi-line
            instruction (``switch``, ``invoke``, ``landingpad``) may be joined on one line.
        struct_types: the module's named types (:func:`ncc.graph.ir_parser.struct_types`), inlined into
            the statement; pass the same mapping for every statement of a module, its inlining is cached.

    Returns:
        The statement as inst2vec writes it, e.g. ``<%ID> = load i32, i32* <%ID>, align 4``.
    """
    return _normalise(statement, _inlined(struct_types) if struct_types else None)


def _normalise(statement: str, inlined: dict[str, str] | None) -> str:
    s = statement
    if ";" in s:
        s = _strip_comment(s)
    if "!" in s:
        s = _METADATA.sub("", s)
    if "#" in s:
        if s.lstrip().startswith("#dbg_"):  # a debug record (LLVM >= 19) reads as the intrinsic call it replaces
            s = _DBG_RECORD.sub(r"call void @llvm.dbg(metadata \1())", s.strip())
        s = _ATTR_GROUP.sub("", s)
    if "\n" in s or "  " in s or "\t" in s:
        s = _WS.sub(" ", s)
    s = s.strip()
    m = _OPCODE.match(s)
    opcode = m.group(1) if m else ""
    if "noundef" in s:
        s = _NOUNDEF.sub("", s)
    if (opcode == "call" or opcode == "invoke") and " align " in s:
        s = _PARAM_ALIGN.sub(_drop_param_align, s)
    if opcode == "call" and "call nonnull" in s:
        s = _RETURN_NONNULL.sub(r"\1", s)
    if opcode == "call" and "metadata" in s:
        s = _DBG_CALL.sub(r"(\1())", s)
    if "%" in s:
        if inlined:
            s = _locals_and_types(s, inlined)
        else:
            s = _LOCAL.sub(_ID_LOCAL, s)
    if "@" in s:
        s = _GLOBAL.sub(_ID_GLOBAL, s)
    if 'c"' in s:
        s = _STRING.sub(" <STRING>", s)
    if "." in s or "0x" in s or "e+" in s or "e-" in s:
        s = _FLOAT.sub("<FLOAT>", s)
    if opcode == "extractelement" or opcode == "insertelement":
        s = _INT_TYPE.sub("<TYP> ", s)
    elif opcode == "extractvalue" or opcode == "insertvalue":
        idx = _AGG_INDICES.search(s)
        if idx is not None:
            s = _INT.sub("<INT>", s[:idx.start()]) + idx.group(0)
        else:
            s = _INT.sub("<INT>", s)
    else:
        s = _INT.sub("<INT>", s)
        if opcode == "switch":
            head, _, cases = s.partition("[")
            s = head + "[" + "".join("\n " + c[0] + ", label " + c[1] for c in _SWITCH_CASE.findall(cases)) + "]"
        elif opcode == "invoke":
            s = _INVOKE_DEST.sub(r"\n to label \1 unwind ", s)
        elif opcode == "landingpad":
            s = _LANDINGPAD_CLAUSE.sub(r"\n \1", s)
        elif opcode == "fneg":
            s = _FNEG.sub(r"\1fsub \2\3 <FLOAT>, ", s)
    return s


def _drop_param_align(match: re.Match) -> str:
    """Drop an ``align N`` parameter attribute unless it belongs to ``byval``/``sret``/``byref`` (``(T)`` or not)."""
    before = match.string[:match.start()]
    if before.endswith(")"):  # skip back over a type argument: byval({ i32, i8 })
        depth, i = 0, len(before) - 1
        while i >= 0:
            depth += {")": 1, "(": -1}.get(before[i], 0)
            if depth == 0:
                break
            i -= 1
        before = before[:i]
    if before.rsplit(" ", 1)[-1] in ("byval", "sret", "byref"):
        return match.group(0)
    return ""


def module_statements(ir: "IRModule | str", graph: "ProgramGraph | None" = None) -> tuple[ProgramGraph, list[str | None]]:
    """The module's program graph (built if not given) and, for every node id, the normalised statement of
    that instruction node (None for the external node, variables and constants). Struct types come from the
    IR text.

    Args:
        ir: an :class:`~ncc.frontend.ir.IRModule` or IR text.
        graph: the module's graph, if it was built already.

    Returns:
        ``(graph, statements)`` with ``len(statements) == graph.num_nodes``.
    """
    text = ir if isinstance(ir, str) else ir.text
    if graph is None:
        graph = build(ir)
    types = _module_struct_types(text)
    inlined = inline_struct_types(types) if types else None
    statements: list[str | None] = [None] * graph.num_nodes
    full_text = graph.node_full_text
    for i in np.flatnonzero(graph.node_type == INSTRUCTION).tolist():
        if i == 0:
            continue
        statements[i] = _normalise(full_text[i], inlined)
    log.debug("%s: %d statements normalised, %d struct types inlined", graph.module_name,
              graph.num_instructions - 1, len(types))
    return graph, statements
