"""ProgramGraph: a program graph in ProGraML's schema, stored as numpy arrays side by side."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ncc import plural
from ncc.errors import GraphBuildError

SCHEMA_VERSION = 1

INSTRUCTION, VARIABLE, CONSTANT = 0, 1, 2
NODE_TYPES = ("instruction", "variable", "constant")

CONTROL, DATA, CALL = 0, 1, 2
EDGE_FLOWS = ("control", "data", "call")

EXTERNAL_TEXT = "[external]"


@dataclass(frozen=True, eq=False)
class ProgramGraph:
    """A directed multigraph of instructions, variables and constants with control, data and call edges.

    Node 0 is the external node: it stands for code outside the module (callers of externally visible
    functions, callees that are only declared, targets of indirect calls). Instruction nodes follow in
    textual order, then variables (in order of definition), then constants (in order of first use).

    Attributes:
        node_type: ``int8 [N]``: 0 instruction, 1 variable, 2 constant (the external node is an
            instruction whose text is ``[external]``).
        node_text: ``object [N]`` of str: the opcode of an instruction, the type of a variable or constant.
        node_full_text: ``object [N]`` of str: the instruction as written in the input IR; for a
            variable or constant, its type and name or value.
        node_function: ``int32 [N]``: index into ``function_names``, -1 for module level.
        node_block: ``int32 [N]``: basic block index within the function for instructions, else -1.
        edge_index: ``int32 [2, E]``: source and target node of each edge.
        edge_flow: ``int8 [E]``: 0 control, 1 data, 2 call.
        edge_position: ``int32 [E]``: successor index (control), operand index (data), 0 (call).
        function_names: names of the functions defined in the module, in textual order.
        module_name: the module's name.

    Shapes:
        N nodes, E edges.
    """

    node_type: np.ndarray
    node_text: np.ndarray
    node_full_text: np.ndarray
    node_function: np.ndarray
    node_block: np.ndarray
    edge_index: np.ndarray
    edge_flow: np.ndarray
    edge_position: np.ndarray
    function_names: tuple[str, ...] = ()
    module_name: str = "module"
    metadata: dict = field(default_factory=dict)

    ARRAYS = ("node_type", "node_text", "node_full_text", "node_function", "node_block",
              "edge_index", "edge_flow", "edge_position")

    @property
    def num_nodes(self) -> int:
        return int(self.node_type.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_flow.shape[0])

    @property
    def num_instructions(self) -> int:
        return int(np.count_nonzero(self.node_type == INSTRUCTION))

    def edges(self, flow: int | str) -> np.ndarray:
        """The ``[2, E_flow]`` edge index of one flow (``"control"``, ``"data"``, ``"call"`` or its code)."""
        code = EDGE_FLOWS.index(flow) if isinstance(flow, str) else flow
        return self.edge_index[:, self.edge_flow == code]

    def equals(self, other: "ProgramGraph") -> bool:
        """True when both graphs hold identical arrays, function names and module name (not metadata)."""
        if not isinstance(other, ProgramGraph):
            return False
        if (self.function_names, self.module_name) != (other.function_names, other.module_name):
            return False
        for name in self.ARRAYS:
            a, b = getattr(self, name), getattr(other, name)
            if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b):
                return False
        return True

    def summary(self) -> str:
        """One line: node and edge counts by kind."""
        nodes = ", ".join(f"{np.count_nonzero(self.node_type == i)} {t}" for i, t in enumerate(NODE_TYPES))
        edges = ", ".join(f"{np.count_nonzero(self.edge_flow == i)} {f}" for i, f in enumerate(EDGE_FLOWS))
        return (f"{self.module_name}: {plural(self.num_nodes, 'node')} ({nodes}), {plural(self.num_edges, 'edge')} "
                f"({edges}), {plural(len(self.function_names), 'function')}")

    def validate(self, path: str | None = None) -> "ProgramGraph":
        """Check the invariants of the schema; raise :class:`GraphBuildError` on the first broken one.

        Every array has the right dtype and length, every edge endpoint and function index is in range,
        every instruction but the external node belongs to exactly one function and block, edge flows
        connect the right node kinds, function names are unique, and no variable or constant is left
        without an edge. (An instruction may be: the only one in a block that nothing branches to.)

        Args:
            path: the file the graph came from, named in the error (default: the module name).
        """
        n, e = self.num_nodes, self.num_edges

        def fail(reason: str):
            raise GraphBuildError(f"invalid program graph: {reason}", path or self.module_name)

        expected = {"node_type": (np.int8, (n,)), "node_text": (object, (n,)),
                    "node_full_text": (object, (n,)), "node_function": (np.int32, (n,)),
                    "node_block": (np.int32, (n,)), "edge_index": (np.int32, (2, e)),
                    "edge_flow": (np.int8, (e,)), "edge_position": (np.int32, (e,))}
        for name, (dtype, shape) in expected.items():
            array = getattr(self, name)
            if array.dtype != np.dtype(dtype) or array.shape != shape:
                fail(f"{name} has dtype {array.dtype} and shape {array.shape}, expected {np.dtype(dtype)} {shape}")
        if n == 0 or self.node_type[0] != INSTRUCTION or self.node_text[0] != EXTERNAL_TEXT:
            fail("node 0 must be the external node")
        if np.any((self.node_type < 0) | (self.node_type > 2)):
            fail("unknown node type")
        if e and (self.edge_index.min() < 0 or self.edge_index.max() >= n):
            fail("edge endpoint out of range")
        if np.any((self.edge_flow < 0) | (self.edge_flow > 2)):
            fail("unknown edge flow")
        if np.any(self.edge_position < 0):
            fail("negative edge position")
        functions = len(self.function_names)
        if len(set(self.function_names)) != functions:
            fail("function names are not unique")
        if np.any((self.node_function < -1) | (self.node_function >= functions)):
            fail("function index out of range")
        is_instruction = self.node_type == INSTRUCTION
        is_instruction[0] = False
        if np.any(self.node_function[is_instruction] < 0) or np.any(self.node_block[is_instruction] < 0):
            fail("an instruction belongs to no function or block")
        if self.node_function[0] != -1 or np.any(self.node_block[~is_instruction] != -1):
            fail("only instructions belong to a basic block")
        src, dst = self.edge_index
        src_type, dst_type = self.node_type[src], self.node_type[dst]
        control_or_call = self.edge_flow != DATA
        if np.any(control_or_call & ((src_type != INSTRUCTION) | (dst_type != INSTRUCTION))):
            fail("a control or call edge touches a variable or constant")
        data = self.edge_flow == DATA
        if np.any(data & ((src_type == INSTRUCTION) == (dst_type == INSTRUCTION))):
            fail("a data edge must join an instruction and a variable or constant")
        if np.any(data & (dst_type == CONSTANT)):
            fail("a data edge points into a constant")
        if n > 1:
            touched = np.zeros(n, dtype=bool)
            touched[src] = True
            touched[dst] = True
            orphans = np.flatnonzero(~touched & (self.node_type != INSTRUCTION))
            if orphans.size:
                fail(f"{orphans.size} nodes without edges, first {int(orphans[0])} "
                     f"({self.node_full_text[orphans[0]]!r})")
        return self
