"""Sources to LLVM IR: toolchain discovery, compilation, batch compilation with a cache, IR loading."""

from ncc.frontend.batch import BatchEntry, BatchFailure, BatchResult, compile_batch, expand_inputs
from ncc.frontend.compile import SOURCE_EXTENSIONS, compile
from ncc.frontend.ir import IRModule
from ncc.frontend.load import IR_EXTENSIONS, load
from ncc.frontend.toolchain import Toolchain, doctor_report, find_toolchain

__all__ = ["IRModule", "compile", "load", "compile_batch", "expand_inputs", "BatchResult", "BatchEntry",
           "BatchFailure", "Toolchain", "find_toolchain", "doctor_report", "SOURCE_EXTENSIONS", "IR_EXTENSIONS"]
