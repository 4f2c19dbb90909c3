"""Program graphs in ProGraML's schema, built from LLVM IR text without any LLVM of a fixed version."""

from ncc.graph.program_graph import (CALL, CONSTANT, CONTROL, DATA, EDGE_FLOWS, EXTERNAL_TEXT, INSTRUCTION,
                                     NODE_TYPES, SCHEMA_VERSION, VARIABLE, ProgramGraph)

__all__ = ["ProgramGraph", "SCHEMA_VERSION", "NODE_TYPES", "EDGE_FLOWS", "INSTRUCTION", "VARIABLE",
           "CONSTANT", "CONTROL", "DATA", "CALL", "EXTERNAL_TEXT"]

from ncc.graph.builder import build  # noqa: E402

__all__.append("build")
