"""Build a :class:`ProgramGraph` from LLVM IR text.

Node order (deterministic): the external node, then every instruction in textual order, then the
variables (globals the code uses, in order of definition; then per function its used arguments and its
instruction results), then the constants (per function, in order of first use).

Edges:
- control: each instruction to the next one in its block (position 0); a terminator to the first
  instruction of each successor block (position = successor index; for ``invoke`` 0 is the normal and
  1 the unwind destination).
- data: an instruction to the variable it defines (position 0); a variable or constant to each
  instruction that uses it (position = index among the instruction's value operands, in textual order).
  A global named inside a constant expression is also linked to the instruction, at the expression's
  position, so that typed-pointer IR (``getelementptr (... @str ...)``) and opaque-pointer IR (``@str``)
  keep the same data flow.
- call: a call site to the entry instruction of a defined callee, and each ``ret`` of the callee back to
  the call site; calls to declared functions, intrinsics, inline asm and indirect calls go to and from
  the external node. The external node also calls, and is returned to by, every defined function that
  is externally visible, has its address taken, or has no caller in the module.
"""

from __future__ import annotations

import numpy as np

from ncc.errors import IRParseError
from ncc.frontend.ir import IRModule
from ncc.graph.ir_parser import TERMINATORS, Module, parse
from ncc.graph.program_graph import CALL, CONSTANT, CONTROL, DATA, EXTERNAL_TEXT, INSTRUCTION, VARIABLE, \
    ProgramGraph

# Node references while building: (index << 2) | segment, resolved to node ids at the end.
_INST, _GLOBAL, _LOCAL, _CONST = 0, 1, 2, 3


def build(ir: IRModule | str, name: str | None = None, *, path: str | None = None,
          validate: bool = True) -> ProgramGraph:
    """Build the program graph of an LLVM IR module.

    Args:
        ir: an :class:`IRModule` or IR text.
        name: the graph's module name (default: the IRModule's name, else ``module``).
        path: the file the IR came from, named in errors (default: the IRModule's source path).
        validate: check the graph's invariants before returning it.

    Returns:
        The program graph.

    Raises:
        IRParseError: the IR is malformed (the error names the file and line).
    """
    if isinstance(ir, IRModule):
        text, name, path = ir.text, name or ir.name, path or ir.source_path
    else:
        text = ir
    module = parse(text, path)
    graph = _assemble(module, name or "module", path)
    return graph.validate() if validate else graph


def _assemble(module: Module, name: str, path: str | None) -> ProgramGraph:
    functions = module.functions
    defined = {fn.name: fi for fi, fn in enumerate(functions)}
    declared = module.declarations

    def error(message, line):
        raise IRParseError(message, path, line)

    # Instructions get ids 1..I in textual order; find each function's entry, returns and block starts.
    node_text = [EXTERNAL_TEXT]
    node_full_text = [EXTERNAL_TEXT]
    node_function = [-1]
    node_block = [-1]
    entries, exits, block_starts = [], [], []
    next_id = 1
    for fi, fn in enumerate(functions):
        starts = {}
        rets = []
        for bi, block in enumerate(fn.blocks):
            if block.name in starts:
                error(f"block {block.name} defined twice in {fn.name}", block.instructions[0].line)
            if not block.instructions:
                error(f"block {block.name} in {fn.name} is empty", fn.line)
            last = block.instructions[-1]
            if last.opcode not in TERMINATORS:
                error(f"block {block.name} in {fn.name} does not end with a terminator", last.line)
            starts[block.name] = next_id
            for inst in block.instructions:
                node_text.append(inst.opcode)
                node_full_text.append(inst.text)
                if inst.opcode == "ret":
                    rets.append(next_id)
                next_id += 1
            node_function.extend([fi] * len(block.instructions))
            node_block.extend([bi] * len(block.instructions))
        entries.append(starts[fn.blocks[0].name] if fn.blocks else None)
        exits.append(rets)
        block_starts.append(starts)
    num_instructions = next_id - 1

    # Globals the code uses (as values, not as direct callees), in order of definition.
    global_lines = {g.name: (g.line, g.type) for g in module.globals.values()}
    for fn in functions:
        global_lines[fn.name] = (fn.line, fn.type)
    for fn_name, (line, _) in declared.items():
        global_lines.setdefault(fn_name, (line, None))
    used_globals = set()
    used_locals = []  # per function: the local names its instructions read
    for fn in functions:
        used = set()
        for block in fn.blocks:
            for inst in block.instructions:
                for kind, text, _, named in inst.operands:
                    if kind == "local":
                        used.add(text)
                    elif kind == "global":
                        used_globals.add(text)
                    if named:
                        used_globals.update(named)
        used_locals.append(used)
    unknown = used_globals - global_lines.keys()
    if unknown:
        first = min(unknown)
        error(f"use of undefined global {first}", _first_use_line(functions, first))
    global_order = sorted(used_globals, key=lambda g: global_lines[g][0])
    global_index = {g: k for k, g in enumerate(global_order)}

    var_text, var_full_text, var_function = [], [], []
    for g in global_order:
        ty = global_lines[g][1]
        if ty is None:  # a declared function used as a value
            ty = module.declaration(g).type
        var_text.append(ty)
        var_full_text.append(f"{ty} {g}")
        var_function.append(-1)
    const_text, const_full_text, const_function = [], [], []

    edges = []  # flat (source ref, target ref, flow, position) quadruples
    add = edges.extend
    has_caller = set()
    inst_id = 1
    for fi, fn in enumerate(functions):
        starts = block_starts[fi]
        # locals: used arguments first (in argument order), then instruction results
        used = used_locals[fi]
        local_ref = {}
        for arg_name, arg_type in fn.arguments:
            if arg_name in local_ref:
                error(f"argument {arg_name} defined twice in {fn.name}", fn.line)
            if arg_name in used:
                local_ref[arg_name] = (len(var_text) << 2) | _GLOBAL
                var_text.append(arg_type)
                var_full_text.append(f"{arg_type} {arg_name}")
                var_function.append(fi)
            else:
                local_ref[arg_name] = None
        for block in fn.blocks:
            for inst in block.instructions:
                result = inst.result
                if result is not None:
                    if result in local_ref:
                        error(f"value {result} defined twice in {fn.name}", inst.line)
                    local_ref[result] = (len(var_text) << 2) | _GLOBAL
                    var_text.append(inst.result_type)
                    var_full_text.append(f"{inst.result_type} {result}")
                    var_function.append(fi)
        constants = {}
        for block in fn.blocks:
            insts = block.instructions
            last = len(insts) - 1
            for k, inst in enumerate(insts):
                me = inst_id << 2
                if k < last:
                    add((me, me + 4, CONTROL, 0))
                else:
                    for s, succ in enumerate(inst.successors):
                        target = starts.get(succ)
                        if target is None:
                            error(f"branch to undefined label {succ} in {fn.name}", inst.line)
                        add((me, target << 2, CONTROL, s))
                for p, (kind, text, ty, named) in enumerate(inst.operands):
                    if kind == "local":
                        ref = local_ref.get(text)
                        if ref is None:
                            if text in starts:
                                error(f"label {text} used as a value in {fn.name}", inst.line)
                            error(f"use of undefined value {text} in {fn.name}", inst.line)
                    elif kind == "global":
                        ref = (global_index[text] << 2) | _GLOBAL
                    else:
                        key = (ty, text)
                        ref = constants.get(key)
                        if ref is None:
                            ref = constants[key] = (len(const_text) << 2) | _CONST
                            const_text.append(ty)
                            const_full_text.append(f"{ty} {text}" if ty else text)
                            const_function.append(fi)
                        for g in named:
                            add(((global_index[g] << 2) | _GLOBAL, me, DATA, p))
                    add((ref, me, DATA, p))
                if inst.result is not None:
                    add((me, local_ref[inst.result], DATA, 0))
                callee = inst.callee
                if callee is not None:
                    target = defined.get(callee)
                    if target is not None:
                        has_caller.add(target)
                        add((me, entries[target] << 2, CALL, 0))
                        for r in exits[target]:
                            add((r << 2, me, CALL, 0))
                    else:
                        if callee and callee not in declared and callee not in module.globals:
                            error(f"call to undefined function {callee}", inst.line)
                        add((me, 0, CALL, 0, 0, me, CALL, 0))
                inst_id += 1

    # The external node calls functions that code outside the module may call.
    for fi, fn in enumerate(functions):
        if fn.externally_visible or fn.name in used_globals or fi not in has_caller:
            add((0, entries[fi] << 2, CALL, 0))
            for r in exits[fi]:
                add((r << 2, 0, CALL, 0))

    # Resolve references to node ids. Arguments and results were numbered after the globals in the same
    # variable segment (tagged _GLOBAL), so the variable segment is one range.
    num_variables = len(var_text)
    offsets = np.array([0, 1 + num_instructions, 0, 1 + num_instructions + num_variables], dtype=np.int64)
    table = np.array(edges, dtype=np.int64).reshape(-1, 4)
    refs = table[:, :2].T
    edge_index = np.ascontiguousarray((offsets[refs & 3] + (refs >> 2)).astype(np.int32))

    node_type = np.concatenate([
        np.full(1 + num_instructions, INSTRUCTION, dtype=np.int8),
        np.full(num_variables, VARIABLE, dtype=np.int8),
        np.full(len(const_text), CONSTANT, dtype=np.int8)])
    no_block = [-1] * (num_variables + len(const_text))
    return ProgramGraph(
        node_type=node_type,
        node_text=_object_array(node_text + var_text + const_text),
        node_full_text=_object_array(node_full_text + var_full_text + const_full_text),
        node_function=np.array(node_function + var_function + const_function, dtype=np.int32),
        node_block=np.array(node_block + no_block, dtype=np.int32),
        edge_index=edge_index,
        edge_flow=table[:, 2].astype(np.int8),
        edge_position=table[:, 3].astype(np.int32),
        function_names=tuple(fn.name for fn in functions),
        module_name=name,
    )


def _object_array(items: list[str]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _first_use_line(functions, name: str) -> int | None:
    for fn in functions:
        for block in fn.blocks:
            for inst in block.instructions:
                if any(op[1] == name or name in op[3] for op in inst.operands):
                    return inst.line
    return None
