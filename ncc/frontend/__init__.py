"""Sources to LLVM IR: toolchain discovery, compilation, batch compilation with a cache, IR loading."""

from ncc.frontend.ir import IRModule

__all__ = ["IRModule"]
