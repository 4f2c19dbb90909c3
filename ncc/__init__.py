"""ncc: neural code comprehension over LLVM IR.

Sources are compiled with clang to LLVM IR (:mod:`ncc.frontend`) and turned into program graphs in
ProGraML's schema (:mod:`ncc.graph`).
"""

__version__ = "0.1.0"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 function``, ``2 functions``: a count and its noun, ``nouns`` where adding an s is wrong."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
