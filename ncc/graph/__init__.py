"""Program graphs in ProGraML's schema, built from LLVM IR text without any LLVM of a fixed version.

    >>> from ncc.graph import build
    >>> graph = build(ir_text)            # a ProgramGraph of numpy arrays
    >>> save(graph, "g.json")             # or .npz / .dot; to_networkx, to_pyg, to_dot convert in memory
"""

from ncc.graph.builder import build
from ncc.graph.convert import (from_json, from_networkx, load, load_json, load_npz, save, save_json, save_npz,
                               to_dot, to_json, to_networkx, to_pyg)
from ncc.graph.program_graph import (CALL, CONSTANT, CONTROL, DATA, EDGE_FLOWS, EXTERNAL_TEXT, INSTRUCTION,
                                     NODE_TYPES, SCHEMA_VERSION, VARIABLE, ProgramGraph)

__all__ = ["ProgramGraph", "build", "SCHEMA_VERSION", "NODE_TYPES", "EDGE_FLOWS", "INSTRUCTION", "VARIABLE",
           "CONSTANT", "CONTROL", "DATA", "CALL", "EXTERNAL_TEXT", "to_networkx", "from_networkx", "to_json",
           "from_json", "save_json", "load_json", "save_npz", "load_npz", "save", "load", "to_pyg", "to_dot"]
