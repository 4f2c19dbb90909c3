"""Load LLVM IR from ``.ll`` (text) or ``.bc`` (bitcode) files into an :class:`IRModule`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ncc.fileio import read_input_bytes
from ncc.errors import InputError, IRParseError
from ncc.frontend.ir import IRModule

#: Extensions of LLVM IR files.
IR_EXTENSIONS = (".ll", ".bc")

_BITCODE_MAGIC = b"BC\xc0\xde"
_BITCODE_WRAPPER_MAGIC = b"\xde\xc0\x17\x0b"


def is_bitcode(data: bytes) -> bool:
    """True when ``data`` starts with LLVM's bitcode magic (raw or wrapped)."""
    return data[:4] in (_BITCODE_MAGIC, _BITCODE_WRAPPER_MAGIC)


def bitcode_to_text(data: bytes, path: str | None = None) -> str:
    """Disassemble LLVM bitcode with llvmlite.

    Raises:
        IRParseError: LLVM rejected the bitcode.
    """
    import llvmlite.binding as llvm

    try:
        module = llvm.parse_bitcode(data)
    except RuntimeError as error:
        message = " ".join(str(error).split()) or "invalid bitcode"
        raise IRParseError(f"invalid LLVM bitcode: {message}", path) from None
    return str(module)


def load(path: str | os.PathLike, name: str | None = None) -> IRModule:
    """Read an LLVM IR file.

    ``.bc`` files (or any file that starts with the bitcode magic) are disassembled through llvmlite;
    anything else is read as textual IR. The text is not parsed here: the graph builder does that and
    reports malformed IR.

    Args:
        path: a ``.ll`` or ``.bc`` file.
        name: the module name (default: the file's stem).

    Returns:
        IRModule with ``language="ir"``, ``toolchain="input"`` and the sha256 of the file's bytes.

    Raises:
        InputError: the file is missing, unreadable, empty, or binary but not bitcode.
        IRParseError: the file claims to be bitcode but LLVM cannot read it.
    """
    path = Path(path)
    data = read_input_bytes(path)
    if is_bitcode(data):
        text = bitcode_to_text(data, str(path))
    elif path.suffix.lower() == ".bc":
        raise IRParseError("not LLVM bitcode (no 'BC' magic at the start)", str(path))
    else:
        if b"\0" in data[:65536]:
            raise InputError("binary file (holds NUL bytes), expected LLVM IR text", str(path))
        text = data.decode("utf-8", errors="surrogateescape")
    return IRModule(text=text, name=name or path.stem, source_path=str(path), language="ir",
                    toolchain="input", toolchain_version="", flags=(),
                    source_sha256=hashlib.sha256(data).hexdigest())
