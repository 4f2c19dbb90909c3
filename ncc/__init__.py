"""ncc: neural code comprehension over LLVM IR.

Sources are compiled with clang to LLVM IR (:mod:`ncc.frontend`) and turned into program graphs in
ProGraML's schema (:mod:`ncc.graph`).
"""

__version__ = "0.1.0"
