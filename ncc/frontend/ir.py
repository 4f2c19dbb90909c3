"""IRModule: LLVM IR text plus how it was made."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class IRModule:
    """LLVM IR in textual form and its provenance.

    Attributes:
        text: the IR as clang (or the input file) wrote it.
        name: a short name for the module (usually the source file's stem).
        source_path: the file it came from, or None for text given directly.
        language: ``c``, ``c++``, ``opencl`` or ``ir`` when loaded from a .ll/.bc file.
        toolchain: the compiler that made it (``ziglang`` or a path to a system clang), or ``input``.
        toolchain_version: e.g. ``clang 22.1.8``.
        flags: the clang arguments that made it (empty for loaded IR).
        source_sha256: sha256 of the source text (or of the IR file's bytes when loaded).
    """

    text: str
    name: str = "module"
    source_path: str | None = None
    language: str = "ir"
    toolchain: str = "input"
    toolchain_version: str = ""
    flags: tuple[str, ...] = ()
    source_sha256: str = ""
    metadata: dict = field(default_factory=dict, compare=False)

    @classmethod
    def from_text(cls, text: str, name: str = "module", source_path: str | None = None) -> "IRModule":
        """Wrap IR text that is already in hand."""
        return cls(text=text, name=name, source_path=source_path,
                   source_sha256=hashlib.sha256(text.encode()).hexdigest())
