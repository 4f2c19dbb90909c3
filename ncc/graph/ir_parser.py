"""A fast reader of textual LLVM IR, for any LLVM from 3.8 to 22.

It reads only what a program graph needs: globals, functions, basic blocks, and for each instruction its
opcode, result, value operands (with their types), successors and callee. It keeps each instruction's text
as written, so typed pointers from old IR survive. It does not check types; it does check that every
local value and label an instruction names is defined in its function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ncc.errors import IRParseError

_TOKEN = re.compile(
    r'-?(?:0x[0-9A-Fa-fKLMHR][0-9A-Fa-f]*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)'  # numbers
    r'|c?"[^"]*"'  # strings
    r'|[%@!$]"[^"]*"'  # quoted names
    r'|[%@!#$]?[A-Za-z_.$\d][-\w.$]*'  # words, names, metadata, attribute groups
    r'|\.\.\.'
    r'|\S')
_LABEL_LINE = re.compile(r'(?:([-\w.$]+)|"([^"]*)"):')
_OLD_LABEL = re.compile(r';\s*<label>:(\d+)')
_METADATA_TAIL = re.compile(r'(?:,\s*![-\w.]+\s+(?:![-\w.]+|!\{[^}]*\}|!"[^"]*"))+\s*$')
_INT_TYPE = re.compile(r'i\d+$')

TYPE_WORDS = frozenset("void half bfloat float double fp128 x86_fp80 ppc_fp128 label metadata ptr x86_mmx "
                       "x86_amx token opaque target".split())
CONSTANT_WORDS = frozenset("true false null undef poison zeroinitializer none".split())
# Constant expressions: a keyword, maybe flags, then a parenthesised body.
CONSTEXPR_WORDS = frozenset(
    "getelementptr bitcast addrspacecast ptrtoint inttoptr trunc zext sext fptrunc fpext fptoui fptosi uitofp "
    "sitofp add sub mul udiv sdiv urem srem shl lshr ashr and or xor icmp fcmp select extractelement "
    "insertelement shufflevector extractvalue insertvalue blockaddress dso_local_equivalent no_cfi fneg "
    "ptrauth".split())
BINARY = frozenset("add fadd sub fsub mul fmul udiv sdiv fdiv urem srem frem shl lshr ashr and or xor".split())
CASTS = frozenset("trunc zext sext fptrunc fpext fptoui fptosi uitofp sitofp ptrtoint inttoptr bitcast "
                  "addrspacecast".split())
TERMINATORS = frozenset("ret br switch indirectbr invoke resume unreachable cleanupret catchret catchswitch "
                        "callbr".split())
OPCODES = BINARY | CASTS | TERMINATORS | frozenset(
    "fneg icmp fcmp phi select call alloca load store getelementptr fence cmpxchg atomicrmw extractvalue "
    "insertvalue extractelement insertelement shufflevector va_arg landingpad catchpad cleanuppad freeze "
    "tail musttail notail".split())
# Words that may stand before a type or a value and carry no operand (flags, attributes, orderings).
_FLAGS = frozenset("nuw nsw exact disjoint samesign nnan ninf nsz arcp contract afn reassoc fast".split())
_PARAM_ATTRS_WITH_ARG = frozenset("addrspace inrange align dereferenceable dereferenceable_or_null byval byref sret inalloca "
                                  "preallocated elementtype alignstack range nofpclass initializes "
                                  "captures memory allocsize vscale_range uwtable".split())


# An operand is a plain tuple (kind, text, type, globals) -- instructions have millions of them, and a tuple
# costs a tenth of an object: kind is "local", "global" or "constant"; text the value as written; type its
# type; globals the globals named inside a constant expression.
Operand = tuple[str, str, str, tuple[str, ...]]


@dataclass(slots=True)
class Instruction:
    """One instruction: ``text`` as written (continuation lines joined), ``line`` 1-based, ``operands``
    its value operands in textual order (labels are ``successors``, a direct callee is ``callee``)."""

    opcode: str
    text: str
    line: int
    result: str | None = None
    result_type: str = ""
    operands: list[Operand] = field(default_factory=list)
    successors: list[str] = field(default_factory=list)
    callee: str | None = None  # "@name" for a direct call, "" for an indirect or asm call, None otherwise


@dataclass
class Block:
    name: str
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Function:
    name: str
    line: int
    type: str  # the type of the function as a value (a pointer to it)
    arguments: list[tuple[str, str]] = field(default_factory=list)  # (name, type)
    blocks: list[Block] = field(default_factory=list)
    externally_visible: bool = True
    declaration: bool = False
    next_slot: int = 0  # the implicit number of an unlabelled entry block


@dataclass
class GlobalVariable:
    name: str
    line: int
    type: str  # the type of the global as a value (a pointer)


@dataclass
class Module:
    """What :func:`parse` reads from IR text. ``opaque_pointers`` tells which pointer dialect it uses."""

    functions: list[Function]
    declarations: dict[str, tuple[int, str]]  # name -> (line, header text), read on demand
    globals: dict[str, GlobalVariable]
    struct_types: dict[str, str]
    opaque_pointers: bool

    def declaration(self, name: str) -> Function:
        """The declared (not defined) function ``name``, with its type."""
        line, header = self.declarations[name]
        reader = _Reader(self.struct_types, self.opaque_pointers)

        def error(message, lineno):
            raise IRParseError(message, None, lineno)
        fn = _function_header(header, line, self.opaque_pointers, reader, error)
        fn.declaration = True
        return fn


def tokenize(text: str) -> list[str]:
    """Split IR text into tokens: names, words, numbers, strings and single punctuation marks."""
    return _TOKEN.findall(text)


def join_type(tokens) -> str:
    """Print a type from its tokens the way LLVM does (``[4 x i8]*``, ``{ i32, ptr }``, ``i32 (ptr, ...)``)."""
    out = []
    prev = ""
    for tok in tokens:
        if out and not (tok in ",)]>*" or prev in "([<" or (tok == "(" and prev in ("addrspace", "target"))):
            out.append(" ")
        elif out and tok == "}" and prev != "{":
            out.append(" ")
        out.append(tok)
        prev = tok
    text = "".join(out)
    return text.replace("< {", "<{").replace("} >", "}>")


def _skip_group(toks, i, n):
    """Index just past the bracket group that opens at ``toks[i]``."""
    depth = 0
    while i < n:
        t = toks[i]
        if t in "([{<":
            depth += 1
        elif t in ")]}>":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _is_type_start(tok: str) -> bool:
    c = tok[0]
    return (c == "%" or c in "[{<" or tok in TYPE_WORDS or (c == "i" and _INT_TYPE.match(tok) is not None))


def _parse_type(toks, i, n):
    """Parse a type starting at ``toks[i]``; return the index after it."""
    t = toks[i]
    if t in "[{<":
        i = _skip_group(toks, i, n)
        if t == "<" and i < n and toks[i] == ">":  # packed struct <{ ... }>
            i += 1
    elif t == "target":
        i = _skip_group(toks, i + 1, n)
    else:
        i += 1
    while i < n:
        t = toks[i]
        if t == "*":
            i += 1
        elif t == "addrspace":
            i = _skip_group(toks, i + 1, n)
        elif t == "(":  # function type
            i = _skip_group(toks, i, n)
        else:
            break
    return i


def _skip_attrs(toks, i, n):
    """Skip parameter attributes and flag words that carry no value."""
    while i < n:
        t = toks[i]
        c = t[0]
        if (not (c.isalpha() or c == "#") or t in CONSTANT_WORDS or t in CONSTEXPR_WORDS or t == "asm"
                or t in TYPE_WORDS or (c == "i" and _INT_TYPE.match(t))):
            return i
        if c == "#":
            i += 1
            continue
        i += 1
        if t in _PARAM_ATTRS_WITH_ARG:
            if i < n and toks[i] == "(":
                i = _skip_group(toks, i, n)
            elif t == "align" and i < n:
                i += 1
    return i


def _parse_value(toks, i, n):
    """Parse a value at ``toks[i]``; return (Operand kind, text, globals named inside, next index)."""
    t = toks[i]
    c = t[0]
    if c == "%":
        return "local", t, (), i + 1
    if c == "@":
        return "global", t, (), i + 1
    if t in CONSTEXPR_WORDS or t == "asm":
        j = i + 1
        while j < n and toks[j] != "(" and toks[j] != ",":
            j += 1
        if t == "asm":  # asm [sideeffect] [alignstack] "code", "constraints"
            j = i + 1
            while j < n and toks[j] != "(":
                j += 1
            return "asm", " ".join(toks[i:j]), (), j
        end = _skip_group(toks, j, n) if j < n and toks[j] == "(" else j
        inner = toks[i:end]
        named = tuple(dict.fromkeys(x for x in inner if x[0] == "@"))
        return "constant", join_type(inner), named, end
    if c in "[{<":  # aggregate constant
        end = _skip_group(toks, i, n)
        if c == "<" and end < n and toks[end] == ">":
            end += 1
        inner = toks[i:end]
        named = tuple(dict.fromkeys(x for x in inner if x[0] == "@"))
        return "constant", join_type(inner), named, end
    return "constant", t, (), i + 1



# Fast paths: regular expressions for the common shapes of the most frequent instructions, with simple
# types and values. Anything they do not match goes through the general token reader.
_T = r'((?:[%\w.$]+|\[[^{}",]*?\]|<[^<>{}",]*>)(?: addrspace\(\d+\))?\**)'
_V = r'([%@][-\w.$]+|[-\w.+]+)'
_FMF = 'fast|nnan|ninf|nsz|arcp|contract|afn|reassoc'  # fast-math flags
_FAST_SELECT = re.compile(rf'select (?:(?:{_FMF}) )*i1 {_V}, {_T} {_V}, '
                          rf'{_T} {_V}$')
_ALIGN = r'(?:, align \d+)?$'
_FAST_LOAD = re.compile(rf'load (?:volatile )?{_T}, {_T} {_V}{_ALIGN}')
_FAST_STORE = re.compile(rf'store (?:volatile )?{_T} {_V}, {_T} {_V}{_ALIGN}')
_FAST_BINARY = re.compile(rf'\w+ (?:(?:nuw|nsw|exact|disjoint|{_FMF}) )*'
                          rf'{_T} {_V}, {_V}$')
_FAST_CMP = re.compile(rf'[if]cmp (?:(?:samesign|{_FMF}) )*\w+ '
                       rf'{_T} {_V}, {_V}$')
_FAST_CAST = re.compile(rf'\w+ (?:(?:nneg|nuw|nsw) )*{_T} {_V} to {_T}$')
_FAST_GEP = re.compile(rf'getelementptr (?:(?:inbounds|nuw|nusw) )*{_T}, {_T} {_V}((?:, {_T} {_V})*)$')
_FAST_INDEX = re.compile(rf', {_T} {_V}')
_FAST_BR = re.compile(r'br (?:label (%[-\w.$]+)|i1 ([%\w.$-]+), label (%[-\w.$]+), label (%[-\w.$]+))$')
_FAST_CALL = re.compile(rf'call (?:(?:fastcc|coldcc|spir_func|noundef|zeroext|signext|inreg|noalias|nonnull) )*'
                        rf'{_T} (@[-\w.$]+)\(([^()"]*)\)(?: #\d+)?$')
_FAST_ARG = re.compile(rf'{_T}(?: (?:noundef|nonnull|zeroext|signext|inreg|noalias|nocapture|readonly|'
                       rf'writeonly|returned|immarg|align \d+))* {_V}$')
_FAST_PHI = re.compile(rf'phi {_T} ((?:\[ [%\w.$+-]+, %[-\w.$]+ \](?:, )?)+)$')
_FAST_INCOMING = re.compile(r'\[ ([%\w.$+-]+), ')
_FAST_RET = re.compile(rf'ret (?:void|{_T} {_V})$')
_FAST_ALLOCA = re.compile(rf'alloca {_T}{_ALIGN}')


def _kind(value: str) -> str:
    c = value[0]
    return "local" if c == "%" else "global" if c == "@" else "constant"


def _fast(reader: "_Reader", inst: "Instruction", body: str) -> bool:
    """Read ``inst`` from ``body`` with a fast path; False when no fast path applies."""
    op = inst.opcode
    ops = inst.operands
    if op == "load":
        m = _FAST_LOAD.match(body)
        if m is None:
            return False
        inst.result_type = m.group(1)
        ops.append((_kind(m.group(3)), m.group(3), m.group(2), ()))
    elif op == "getelementptr":
        m = _FAST_GEP.match(body)
        if m is None:
            return False
        base_type, base = m.group(2), m.group(3)
        ops.append((_kind(base), base, base_type, ()))
        indices = _FAST_INDEX.findall(m.group(4))
        for ty, value in indices:
            ops.append((_kind(value), value, ty, ()))
        if base_type[-1] == ">" or any(ty[-1] == ">" for ty, _ in indices):
            return False  # vectors of pointers: the general reader handles them
        if reader.opaque:
            inst.result_type = base_type
        else:
            key = (m.group(1), base_type, tuple(v for _, v in indices[1:]))
            result = reader.gep_cache.get(key)
            if result is None:
                target = reader.index_type(m.group(1), key[2])
                result = reader.gep_cache[key] = target + _addrspace_suffix(base_type) + "*"
            inst.result_type = result
    elif op == "store":
        m = _FAST_STORE.match(body)
        if m is None:
            return False
        ops.append((_kind(m.group(2)), m.group(2), m.group(1), ()))
        ops.append((_kind(m.group(4)), m.group(4), m.group(3), ()))
    elif op == "call":
        if body.count("(") != 1:  # function types, constant expressions, attributes with arguments
            return False
        m = _FAST_CALL.match(body)
        if m is None:
            return False
        args = m.group(3)
        if args:
            for arg in args.split(", "):
                a = _FAST_ARG.match(arg)
                if a is None:
                    return False
                ops.append((_kind(a.group(2)), a.group(2), a.group(1), ()))
        ty = m.group(1)
        inst.result_type = "" if ty == "void" else ty
        inst.callee = m.group(2)
    elif op in BINARY:
        m = _FAST_BINARY.match(body)
        if m is None:
            return False
        ty = inst.result_type = m.group(1)
        ops.append((_kind(m.group(2)), m.group(2), ty, ()))
        ops.append((_kind(m.group(3)), m.group(3), ty, ()))
    elif op == "icmp" or op == "fcmp":
        m = _FAST_CMP.match(body)
        if m is None or m.group(1)[0] == "<":
            return False
        ty = m.group(1)
        inst.result_type = "i1"
        ops.append((_kind(m.group(2)), m.group(2), ty, ()))
        ops.append((_kind(m.group(3)), m.group(3), ty, ()))
    elif op in CASTS:
        m = _FAST_CAST.match(body)
        if m is None:
            return False
        ops.append((_kind(m.group(2)), m.group(2), m.group(1), ()))
        inst.result_type = m.group(3)
    elif op == "br":
        m = _FAST_BR.match(body)
        if m is None:
            return False
        if m.group(1):
            inst.successors.append(m.group(1))
        else:
            c = m.group(2)
            ops.append((_kind(c), c, "i1", ()))
            inst.successors.extend((m.group(3), m.group(4)))
    elif op == "phi":
        m = _FAST_PHI.match(body)
        if m is None:
            return False
        ty = inst.result_type = m.group(1)
        for value in _FAST_INCOMING.findall(m.group(2)):
            ops.append((_kind(value), value, ty, ()))
    elif op == "select":
        m = _FAST_SELECT.match(body)
        if m is None:
            return False
        ops.append((_kind(m.group(1)), m.group(1), "i1", ()))
        ops.append((_kind(m.group(3)), m.group(3), m.group(2), ()))
        ops.append((_kind(m.group(5)), m.group(5), m.group(4), ()))
        inst.result_type = m.group(2)
    elif op == "ret":
        m = _FAST_RET.match(body)
        if m is None:
            return False
        if m.group(1):
            ops.append((_kind(m.group(2)), m.group(2), m.group(1), ()))
    elif op == "alloca":
        m = _FAST_ALLOCA.match(body)
        if m is None:
            return False
        inst.result_type = "ptr" if reader.opaque else m.group(1) + "*"
    else:
        return False
    return True


class _Reader:
    """Parses one instruction's tokens. Kept as a class so the module parser can reuse its state."""

    def __init__(self, module_types: dict[str, str], opaque: bool):
        self.struct_types = module_types
        self.opaque = opaque
        self._type_cache: dict[tuple, str] = {}
        self.gep_cache: dict[tuple, str] = {}

    def typestr(self, toks, i, j) -> str:
        key = tuple(toks[i:j])
        s = self._type_cache.get(key)
        if s is None:
            s = self._type_cache[key] = join_type(key)
        return s

    def typed_value(self, toks, i, n, inst: Instruction, ty: str | None = None):
        """Parse ``[attrs] type [attrs] value`` and record the operand; return (type, next index).

        With ``ty`` given, the value is written without a type (the second operand of a binary
        operation or comparison) and takes ``ty``.
        """
        if ty is None:
            i = _skip_attrs(toks, i, n)
            if i < n and _is_type_start(toks[i]):
                j = _parse_type(toks, i, n)
                ty = self.typestr(toks, i, j)
                i = _skip_attrs(toks, j, n)
            else:
                ty = ""
        if i < n and toks[i] not in ",)]":
            kind, text, named, i = _parse_value(toks, i, n)
            if kind != "asm" and ty != "metadata":
                inst.operands.append((kind, text, ty, named))
        return ty, i

    def parse(self, inst: Instruction, toks: list[str]) -> None:
        n = len(toks)
        op = inst.opcode
        i = 1
        if op in BINARY or op in ("icmp", "fcmp"):
            while toks[i] in _FLAGS:
                i += 1
            if op[1:] == "cmp":
                i += 1  # the predicate
            ty, i = self.typed_value(toks, i, n, inst)
            self.typed_value(toks, i + 1, n, inst, ty)
            if op in BINARY:
                inst.result_type = ty
            else:
                inst.result_type = _vector_of(ty, "i1")
        elif op in CASTS:
            i = _skip_attrs(toks, i, n)
            _, i = self.typed_value(toks, i, n, inst)
            # i now at "to"
            j = _parse_type(toks, i + 1, n)
            inst.result_type = self.typestr(toks, i + 1, j)
        elif op == "load":
            i = _skip_attrs(toks, i, n)
            j = _parse_type(toks, i, n)
            if j < n and toks[j] == ",":  # load T, T* p
                inst.result_type = self.typestr(toks, i, j)
                self.typed_value(toks, j + 1, n, inst)
            else:  # pre-3.7: load T* p
                ptr_type, _ = self.typed_value(toks, i, n, inst)
                inst.result_type = _pointee(ptr_type)
        elif op == "store":
            i = _skip_attrs(toks, i, n)
            _, i = self.typed_value(toks, i, n, inst)
            self.typed_value(toks, i + 1, n, inst)
        elif op == "alloca":
            i = _skip_attrs(toks, i, n)
            j = _parse_type(toks, i, n)
            allocated = self.typestr(toks, i, j)
            addrspace = ""
            while j < n and toks[j] == ",":
                k = j + 1
                if toks[k] == "align":
                    j = k + 2
                elif toks[k] == "addrspace":
                    addrspace = f" addrspace({toks[k + 2]})"
                    j = k + 4
                else:
                    _, j = self.typed_value(toks, k, n, inst)
            inst.result_type = f"ptr{addrspace}" if self.opaque else f"{allocated}{addrspace}*"
        elif op == "getelementptr":
            self._gep(inst, toks, n)
        elif op == "phi":
            i = _skip_attrs(toks, i, n)
            j = _parse_type(toks, i, n)
            ty = inst.result_type = self.typestr(toks, i, j)
            while j < n and toks[j] == "[":
                kind, text, named, k = _parse_value(toks, j + 1, n)
                inst.operands.append((kind, text, ty, named))
                j = k + 3  # ", %label ]"
                if j < n and toks[j] == ",":
                    j += 1
        elif op == "br":
            if toks[1] == "label":
                inst.successors.append(toks[2])
            else:
                _, i = self.typed_value(toks, 1, n, inst)
                inst.successors.extend((toks[i + 2], toks[i + 5]))
        elif op == "ret":
            if toks[1] != "void":
                self.typed_value(toks, 1, n, inst)
        elif op in ("call", "invoke", "callbr"):
            self._call(inst, toks, n)
        elif op == "switch":
            ty, i = self.typed_value(toks, 1, n, inst)
            inst.successors.append(toks[i + 2])
            i += 4  # ", label %default ["
            while i < n and toks[i] != "]":
                _, i = self.typed_value(toks, i, n, inst)
                inst.successors.append(toks[i + 2])
                i += 3
        elif op == "select":
            i = _skip_attrs(toks, i, n)
            _, i = self.typed_value(toks, i, n, inst)
            ty, i = self.typed_value(toks, i + 1, n, inst)
            self.typed_value(toks, i + 1, n, inst)
            inst.result_type = ty
        elif op == "extractvalue":
            ty, i = self.typed_value(toks, 1, n, inst)
            indices = toks[i + 1::2]
            inst.result_type = self.index_type(ty, indices)
        elif op == "insertvalue":
            ty, i = self.typed_value(toks, 1, n, inst)
            self.typed_value(toks, i + 1, n, inst)
            inst.result_type = ty
        elif op == "extractelement":
            ty, i = self.typed_value(toks, 1, n, inst)
            self.typed_value(toks, i + 1, n, inst)
            inst.result_type = _element_of_vector(ty)
        elif op == "insertelement":
            ty, i = self.typed_value(toks, 1, n, inst)
            _, i = self.typed_value(toks, i + 1, n, inst)
            self.typed_value(toks, i + 1, n, inst)
            inst.result_type = ty
        elif op == "shufflevector":
            ty, i = self.typed_value(toks, 1, n, inst)
            _, i = self.typed_value(toks, i + 1, n, inst)
            mask_type, _ = self.typed_value(toks, i + 1, n, inst)
            inst.result_type = _vector_of(mask_type, _element_of_vector(ty))
        elif op in ("fneg", "freeze"):
            i = _skip_attrs(toks, i, n)
            inst.result_type, _ = self.typed_value(toks, i, n, inst)
        elif op == "cmpxchg":
            i = _skip_attrs(toks, i, n)
            _, i = self.typed_value(toks, i, n, inst)
            ty, i = self.typed_value(toks, i + 1, n, inst)
            self.typed_value(toks, i + 1, n, inst)
            inst.result_type = f"{{ {ty}, i1 }}"
        elif op == "atomicrmw":
            i = _skip_attrs(toks, i, n)  # volatile, operation
            _, i = self.typed_value(toks, i, n, inst)
            inst.result_type, _ = self.typed_value(toks, i + 1, n, inst)
        elif op == "va_arg":
            _, i = self.typed_value(toks, 1, n, inst)
            j = _parse_type(toks, i + 1, n)
            inst.result_type = self.typestr(toks, i + 1, j)
        elif op == "landingpad":
            j = _parse_type(toks, 1, n)
            inst.result_type = self.typestr(toks, 1, j)
            while j < n:
                if toks[j] in ("catch", "filter"):
                    _, j = self.typed_value(toks, j + 1, n, inst)
                else:
                    j += 1
        elif op == "resume":
            self.typed_value(toks, 1, n, inst)
        elif op == "indirectbr":
            _, i = self.typed_value(toks, 1, n, inst)
            inst.successors.extend(toks[k + 1] for k in range(i, n) if toks[k] == "label")
        elif op in ("catchswitch", "catchpad", "cleanuppad", "catchret", "cleanupret"):
            # Windows exception handling: "within %pad", labels are successors.
            inst.result_type = "token" if inst.result else ""
            k = 1
            while k < n:
                t = toks[k]
                if t == "label" or t == "to":
                    if t == "label":
                        inst.successors.append(toks[k + 1])
                    k += 2 if t == "label" else 1
                elif t[0] == "%" and toks[k - 1] in ("within", "from"):
                    inst.operands.append(("local", t, "token", ()))
                    k += 1
                elif t == "[" or t == "]" or t == ",":
                    k += 1
                elif _is_type_start(t) and op in ("catchpad", "cleanuppad"):
                    _, k = self.typed_value(toks, k, n, inst)
                else:
                    k += 1
        elif op == "fence" or op == "unreachable":
            pass
        else:
            raise ValueError(f"unknown instruction '{op}'")

    def _gep(self, inst, toks, n):
        i = _skip_attrs(toks, 1, n)  # inbounds, nuw, nusw, inrange(...)
        j = _parse_type(toks, i, n)
        source = self.typestr(toks, i, j)
        if j < n and toks[j] == ",":
            j += 1
            explicit = True
        else:  # pre-3.7: getelementptr T* p, ...
            explicit = False
        base_type, k = self.typed_value(toks, j, n, inst)
        index_types, index_values = [], []
        while k < n and toks[k] == ",":
            k = _skip_attrs(toks, k + 1, n)
            before = len(inst.operands)
            ty, k = self.typed_value(toks, k, n, inst)
            index_types.append(ty)
            index_values.append(inst.operands[-1][1] if len(inst.operands) > before else "0")
        vector = next((t for t in [base_type, *index_types] if _is_vector(t)), None)
        scalar_base = _element_of_vector(base_type)
        if self.opaque or scalar_base.startswith("ptr"):
            result = scalar_base
        else:
            source_type = source if explicit else _pointee(base_type)
            target = self.index_type(source_type, index_values[1:])
            result = target + _addrspace_suffix(scalar_base) + "*"
        if vector is not None:
            result = _vector_of(vector, result)
        inst.result_type = result

    def _call(self, inst, toks, n):
        # [tail] call [fast-math flags] [cconv] [ret attrs] [addrspace(n)] <ty|fnty> <callee>(args) ...
        i = _skip_attrs(toks, 1, n)
        j = _parse_type(toks, i, n)
        ret = toks[i:j]
        if len(ret) > 2 and ret[-1] == "*" and ret[-2] == ")":  # old IR: call i32 (i8*, ...)* @f
            ret = ret[:-1]
        if ret and ret[-1] == ")":  # a function type: the return type stands before its "("
            depth = 0
            for k in range(len(ret) - 1, -1, -1):
                if ret[k] == ")":
                    depth += 1
                elif ret[k] == "(":
                    depth -= 1
                    if depth == 0:
                        ret = ret[:k]
                        break
        ret_type = join_type(ret)
        inst.result_type = "" if ret_type == "void" else ret_type
        j = _skip_attrs(toks, j, n)
        kind, text, named, k = _parse_value(toks, j, n)
        if kind == "global":
            inst.callee = text
        elif kind == "constant" and len(named) == 1 and toks[j] in ("bitcast", "addrspacecast"):
            inst.callee = named[0]  # a direct call through a cast of the function
        else:
            inst.callee = ""
            if kind == "local":
                inst.operands.append((kind, text, "ptr" if self.opaque else "", named))
        # arguments
        if k < n and toks[k] == "(":
            end = _skip_group(toks, k, n)
            a = k + 1
            while a < end - 1:
                _, a = self.typed_value(toks, a, end - 1, inst)
                while a < end - 1 and toks[a] != ",":  # skip what is left of this argument
                    a = _skip_group(toks, a, end - 1) if toks[a] in "([{<" else a + 1
                a += 1
            k = end
        if inst.callee == "" and inst.operands and inst.operands[0][0] == "local" and kind == "local":
            # the callee is LLVM's last operand: keep arguments first
            inst.operands.append(inst.operands.pop(0))
        # successors of invoke and callbr
        while k < n:
            if toks[k] == "label":
                inst.successors.append(toks[k + 1])
                k += 2
            else:
                k += 1

    def index_type(self, ty: str, indices) -> str:
        """The type reached by indexing aggregate ``ty`` with constant or variable ``indices``."""
        for index in indices:
            ty = self._resolve(ty)
            if ty.startswith("["):
                ty = ty[1:-1].split(" x ", 1)[1]
            elif _is_vector(ty):
                ty = _element_of_vector(ty)
            elif ty.startswith("{") or ty.startswith("<{"):
                fields = _split_fields(ty)
                try:
                    ty = fields[int(index)]
                except (ValueError, IndexError):
                    return ty
            else:
                return ty
        return ty

    def _resolve(self, ty: str) -> str:
        seen = 0
        while ty.startswith("%") and ty in self.struct_types and seen < 64:
            ty = self.struct_types[ty]
            seen += 1
        return ty


def _split_fields(ty: str) -> list[str]:
    body = ty[2:-2] if ty.startswith("<{") else ty[1:-1]
    toks = tokenize(body)
    fields, start, depth = [], 0, 0
    for k, t in enumerate(toks):
        if t in "([{<":
            depth += 1
        elif t in ")]}>":
            depth -= 1
        elif t == "," and depth == 0:
            fields.append(join_type(toks[start:k]))
            start = k + 1
    if start < len(toks):
        fields.append(join_type(toks[start:]))
    return fields


def _pointee(ptr_type: str) -> str:
    if ptr_type.endswith("*"):
        base = ptr_type[:-1].rstrip()
        return re.sub(r"\s*addrspace\(\d+\)$", "", base)
    return ptr_type


def _addrspace_suffix(ptr_type: str) -> str:
    m = re.search(r"(addrspace\(\d+\))\*$", ptr_type)
    return f" {m.group(1)}" if m else ""


def _vector_of(like: str, element: str) -> str:
    """``<N x element>`` when ``like`` is a vector type, else ``element``."""
    if _is_vector(like):
        toks = tokenize(like)
        if toks[1] == "vscale":
            return f"<vscale x {toks[3]} x {element}>"
        return f"<{toks[1]} x {element}>"
    return element


def _is_vector(ty: str) -> bool:
    return ty[:1] == "<" and ty[-1:] == ">" and ty[1:2] != "{"


def _element_of_vector(ty: str) -> str:
    """The element type of a vector type; any other type as it is."""
    if _is_vector(ty):
        return ty[1:-1].rsplit(" x ", 1)[1]
    return ty


def _strip_comment(s: str) -> str:
    if ";" in s:
        if '"' not in s:
            return s[:s.index(";")].rstrip()
        in_string = False
        for k, ch in enumerate(s):
            if ch == '"':
                in_string = not in_string
            elif ch == ";" and not in_string:
                return s[:k].rstrip()
    return s


def _bracket_balance(s: str) -> int:
    if '"' in s:
        s = re.sub(r'"[^"]*"', "", s)
    return s.count("[") - s.count("]")


_CALL_MARKERS = frozenset(("tail", "musttail", "notail"))
_LINKAGE_LOCAL = frozenset(("internal", "private"))
_CONTINUATION = re.compile(r'\s+(?:to |unwind |catch |filter |cleanup\s*$|\])')


def parse(text: str, path: str | None = None) -> Module:
    """Read LLVM IR text. Raises :class:`IRParseError` with a line number on malformed input."""
    lines = text.split("\n")
    nlines = len(lines)
    globals_: dict[str, GlobalVariable] = {}
    functions: list[Function] = []
    declarations: dict[str, tuple[int, str]] = {}
    opaque = _uses_opaque_pointers(text)

    struct_types = _struct_types(lines)  # first, so instructions can index into structs
    reader = _Reader(struct_types, opaque)

    def error(message: str, lineno: int):
        raise IRParseError(message, path, lineno)

    i = 0
    while i < nlines:
        line = lines[i]
        i += 1
        if not line or line[0] in "; \t":
            if line.strip() and not line.lstrip().startswith(";"):
                error(f"unexpected text at module level: {line.strip()[:60]!r}", i)
            continue
        c = line[0]
        if c == "@":
            name, eq, rest = line.partition("=")
            if not eq:
                error(f"expected '=' after global name: {line[:60]!r}", i)
            gname = name.strip()
            globals_[gname] = GlobalVariable(gname, i, _global_type(rest, opaque, reader))
        elif line.startswith("define"):
            header = line
            start = i
            while not header.rstrip().endswith("{"):
                if i >= nlines:
                    error("function header without '{'", start)
                header += " " + lines[i].strip()
                i += 1
            fn = _function_header(header, start, opaque, reader, error)
            i = _parse_body(fn, lines, i, reader, error)
            functions.append(fn)
        elif line.startswith("declare"):
            m = _HEADER_NAME.search(line)
            if m is None:
                error("function declaration without a name", i)
            declarations[m.group(1)] = (i, line)
        elif c in "%!$" or line.startswith(("target ", "source_filename", "attributes ", "module asm",
                                            "uselistorder", "}")):
            continue
        else:
            error(f"unexpected text at module level: {line.strip()[:60]!r}", i)
    return Module(functions, declarations, globals_, struct_types, opaque)


def struct_types(text: str) -> dict[str, str]:
    """The named types of a module: ``{"%struct.S": "{ i32, ptr }", "%struct.T": "opaque", ...}``."""
    return _struct_types(text.split("\n"))


def _struct_types(lines: list[str]) -> dict[str, str]:
    types = {}
    for line in lines:
        if line.startswith("%") and " = type " in line:
            name, _, body = line.partition(" = type ")
            types[name.strip()] = _strip_comment(body).strip()
    return types


_PTR_TYPE = re.compile(r'(?:[(,]\s*|\s)ptr(?:\s|,|\)|$)')


def _uses_opaque_pointers(text: str) -> bool:
    """True for IR that spells pointers ``ptr`` (LLVM >= 15), False for typed pointers (``i32*``)."""
    # Unquoted names hold no spaces or parentheses, so these substrings come from the type or a string.
    found = False
    for marker in (" ptr ", " ptr,", "(ptr", " ptr)", " ptr\n"):
        at = text.find(marker)
        if at >= 0:
            line = text[text.rfind("\n", 0, at) + 1:text.find("\n", at)]
            if '"' not in line:
                return True
            found = True
    return found and _PTR_TYPE.search(re.sub(r'"[^"]*"', "", text)) is not None


def _global_type(rest: str, opaque: bool, reader: _Reader) -> str:
    rest = _strip_comment(rest)
    toks = tokenize(rest if len(rest) < 2000 else rest[:2000])
    if len(rest) >= 2000 and ("global" not in toks and "constant" not in toks):
        toks = tokenize(rest)
    n = len(toks)
    addrspace = ""
    k = 0
    while k < n and toks[k] not in ("global", "constant", "alias", "ifunc"):
        if toks[k] == "addrspace":
            addrspace = f" addrspace({toks[k + 2]})"
        k += 1
    if k >= n:
        return "ptr" if opaque else ""
    if opaque:
        return f"ptr{addrspace}"
    j = _parse_type(toks, k + 1, n)
    value_type = reader.typestr(toks, k + 1, j)
    if toks[k] in ("alias", "ifunc"):
        return value_type if value_type.endswith("*") else f"{value_type}{addrspace}*"
    return f"{value_type}{addrspace}*"


_HEADER_NAME = re.compile(r'(@(?:[-\w.$]+|"[^"]*"))\(')


def _function_header(header: str, lineno: int, opaque: bool, reader: _Reader, error) -> Function:
    m = _HEADER_NAME.search(header)
    if m is None:
        error("function header without a name", lineno)
    name = m.group(1)
    prefix = tokenize(header[:m.start()])
    visible = not any(t in _LINKAGE_LOCAL for t in prefix)
    # return type: the last type before the name
    k = 1
    ret = "void"
    while k < len(prefix):
        t = prefix[k]
        if _is_type_start(t):
            j = _parse_type(prefix, k, len(prefix))
            ret = join_type(prefix[k:j])
            k = j
        elif t == "(":
            k = _skip_group(prefix, k, len(prefix))
        else:
            k += 1
    toks = tokenize(header[m.end() - 1:])
    end = _skip_group(toks, 0, len(toks))
    arguments, param_types = [], []
    a, unnamed = 1, 0
    while a < end - 1:
        t = toks[a]
        if t == "...":
            param_types.append("...")
            a += 1
        elif _is_type_start(t):
            j = _parse_type(toks, a, end - 1)
            ty = reader.typestr(toks, a, j)
            param_types.append(ty)
            j = _skip_attrs(toks, j, end - 1)
            if j < end - 1 and toks[j][0] == "%":
                arg_name = toks[j]
                j += 1
            else:
                arg_name = f"%{unnamed}"
            if arg_name[1:].isdigit():
                unnamed += 1
            arguments.append((arg_name, ty))
            a = j
        else:
            a += 1
        while a < end - 1 and toks[a] != ",":
            a += 1
        a += 1
    fn_type = "ptr" if opaque else f"{ret} ({', '.join(param_types)})*"
    return Function(name, lineno, fn_type, arguments, externally_visible=visible, next_slot=unnamed)


def _next_unnamed(fn: Function) -> int:
    """The number LLVM gives the next unnamed value or block of ``fn``: one more than the last one."""
    last = fn.next_slot - 1
    for block in fn.blocks:
        if block.name[1:].isdigit():
            last = max(last, int(block.name[1:]))
        for inst in block.instructions:
            if inst.result is not None and inst.result[1:].isdigit():
                last = max(last, int(inst.result[1:]))
    return last + 1


def _parse_body(fn: Function, lines: list[str], i: int, reader: _Reader, error) -> int:
    nlines = len(lines)
    block: Block | None = None
    opcodes = OPCODES
    while i < nlines:
        line = lines[i]
        i += 1
        if not line:
            continue
        c = line[0]
        if c == "}":
            if block is None:
                error(f"function {fn.name} has no body", i)
            return i
        if c != " " and c != "\t":
            if c == ";":
                m = _OLD_LABEL.match(line)
                if m:
                    block = Block(f"%{m.group(1)}")
                    fn.blocks.append(block)
                continue
            m = _LABEL_LINE.match(line)
            if not m:
                error(f"expected a label or an instruction: {line.strip()[:60]!r}", i)
            label = m.group(1) if m.group(1) is not None else f'"{m.group(2)}"'
            block = Block(f"%{label}" if m.group(1) is not None else f'%"{m.group(2)}"')
            fn.blocks.append(block)
            continue
        s = line.strip()
        if not s or s[0] == ";" or s.startswith("#dbg_"):
            continue
        lineno = i
        # instructions that continue on the next lines (switch tables, invoke destinations, clauses)
        if "[" in s and _bracket_balance(s) > 0:  # a switch or indirectbr table, up to the closing bracket
            while i < nlines and _bracket_balance(s) > 0:
                s += " " + lines[i].strip()
                i += 1
        while i < nlines and _CONTINUATION.match(lines[i]):
            s += " " + lines[i].strip()
            i += 1
        if block is None:
            block = Block(f"%{fn.next_slot}")
            fn.blocks.append(block)
        elif block.instructions and block.instructions[-1].opcode in TERMINATORS:
            block = Block(f"%{_next_unnamed(fn)}")  # an unlabelled block after a terminator
            fn.blocks.append(block)
        body = _METADATA_TAIL.sub("", _strip_comment(s)) if "!" in s else _strip_comment(s)
        result = None
        if body[0] == "%":
            name, eq, body = body.partition(" = ")
            if not eq:
                error(f"expected '=' after {name}", lineno)
            result = name
        op, _, rest = body.partition(" ")
        if op in _CALL_MARKERS:
            body = rest
            op = body.partition(" ")[0]
        if op not in opcodes:
            error(f"unknown instruction '{op}'", lineno)
        inst = Instruction(op, s, lineno, result)
        if not _fast(reader, inst, body):
            inst.operands.clear()
            inst.successors.clear()
            try:
                reader.parse(inst, _TOKEN.findall(body))
            except (IndexError, ValueError) as exc:
                error(f"cannot read '{op}' instruction ({exc.__class__.__name__}): {s[:80]!r}", lineno)
        block.instructions.append(inst)
    error(f"function {fn.name} is not closed by '}}'", fn.line)
    return i
