"""IRModule: LLVM IR text plus how it was made."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace


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


_DEFINE = re.compile(r"^define [^\n]*?@(\"[^\"]+\"|[-\w$.]+)\(", re.M)


def drop_unused_kernel_copies(module: IRModule) -> IRModule:
    """Remove the ``__clang_ocl_kern_imp_<kernel>`` copies that clang >= 20 writes beside each OpenCL kernel.

    clang emits every kernel twice, the kernel and an always-inline implementation it calls. After
    inlining (``-O1`` and up) the copy is called by nothing and would double the kernel's program graph;
    such uncalled copies are dropped. At ``-O0`` the kernel calls its copy, which then stays.

    Returns:
        A module with the copies' definitions removed (the same module when there are none).
    """
    text = module.text
    spans = []
    for match in _DEFINE.finditer(text):
        name = match.group(1)
        if not name.startswith("__clang_ocl_kern_imp_"):
            continue
        end = text.find("\n}\n", match.end())
        end = len(text) if end < 0 else end + 3
        if f"@{name}(" in text[:match.start()] + text[end:] or f"@{name}," in text:
            continue  # still called (or its address taken)
        spans.append((match.start(), end))
    if not spans:
        return module
    pieces, last = [], 0
    for start, end in spans:
        pieces.append(text[last:start])
        last = end
    pieces.append(text[last:])
    return replace(module, text="".join(pieces))
