"""Measured execution: compile, instrument with edge counters, run under limits, map the counts onto graphs.

    >>> from ncc.execution import profile
    >>> result = profile("loop.c", opt_level=2)        # ExecutionError (one line, with a stage) on failure
    >>> graph = result.annotate(build(result.module))   # graph.metadata["profile"]: node_count, branch_taken ...
    >>> result.flow_violations()                        # [] when the counts obey flow conservation

No torch here; this package imports only ``frontend``, ``graph`` and the modules below them.
"""

from ncc.execution.instrument import CounterLayout, InstrumentationError, InstrumentedModule, instrument
from ncc.execution.profile import ExecutionError, Profile, profile, profile_arrays, profile_module
from ncc.execution.sandbox import Limits, RunResult, ScratchFolder, run_sandboxed

__all__ = ["instrument", "InstrumentedModule", "CounterLayout", "InstrumentationError", "profile",
           "profile_module", "Profile", "ExecutionError", "profile_arrays", "run_sandboxed", "Limits", "RunResult",
           "ScratchFolder"]
