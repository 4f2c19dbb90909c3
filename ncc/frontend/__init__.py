"""Sources to LLVM IR: toolchain discovery, compilation, batch compilation with a cache, IR loading."""

from ncc.frontend.compile import SOURCE_EXTENSIONS, compile
from ncc.frontend.inputs import BatchFailure
from ncc.frontend.ir import IRModule
from ncc.frontend.load import IR_EXTENSIONS, load
from ncc.frontend.toolchain import Toolchain, doctor_report, find_toolchain

__all__ = ["IRModule", "compile", "load", "compile_batch", "expand_inputs", "BatchResult", "BatchEntry",
           "BatchFailure", "Toolchain", "find_toolchain", "doctor_report", "SOURCE_EXTENSIONS", "IR_EXTENSIONS"]

_BATCH = ("compile_batch", "expand_inputs", "BatchResult", "BatchEntry")


def __getattr__(name: str):
    """The batch compiler's names, imported on first use: reading IR (``ncc graph one.ll``) never needs them."""
    if name in _BATCH:
        from ncc.frontend import batch

        return getattr(batch, name)
    raise AttributeError(f"module 'ncc.frontend' has no attribute {name!r}")
