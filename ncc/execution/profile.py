"""Compile, instrument, run and count: the measured execution of one program, mapped onto its graph.

    >>> from ncc.execution import profile
    >>> result = profile("loop.c", opt_level=0)        # raises ExecutionError with a one-line reason
    >>> result.block_counts[0]                          # executions of each block of the first function
    >>> graph = result.annotate(build(result.module))   # counts as node and edge features in graph.metadata
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ncc.errors import NccError
from ncc.execution.instrument import CounterLayout, InstrumentedModule, instrument
from ncc.execution.sandbox import Limits, RunResult, ScratchFolder, run_sandboxed
from ncc.fileio import atomic_write
from ncc.frontend.compile import compile as compile_source
from ncc.frontend.ir import IRModule
from ncc.frontend.toolchain import Toolchain, find_toolchain
from ncc.graph.ir_parser import parse
from ncc.graph.program_graph import CONTROL, INSTRUCTION, ProgramGraph
from ncc.paths import cache_home

logger = logging.getLogger(__name__)

RUNTIME_SOURCE = Path(__file__).resolve().parent / "runtime.c"
#: Seconds a link may take.
LINK_TIMEOUT_S = 300.0
_PROFILE_FILE = "ncc-profile.bin"
_CXX_MARKERS = re.compile(r"@_Z|@__cxa_|@__gxx_personality|@_ZTI")
_OPT_FLAG = re.compile(r"^-O([0-3sz])$")
_MD5 = re.compile(rb"[0-9a-fA-F]{32}")
_REPLACEABLE = re.compile(r"^define\s[^@]*\b(?:linkonce|linkonce_odr|weak|weak_odr|extern_weak|common)\b")


class ExecutionError(NccError):
    """A program that could not be profiled. ``stage`` says where: ``instrument``, ``link``, ``run``,
    ``output`` (wrong answer or instrumented output differs) or ``counters``."""

    def __init__(self, message: str, path: str | None = None, stage: str = "run"):
        super().__init__(message, path)
        self.stage = stage


@dataclass
class Profile:
    """The counts of one run of an instrumented program.

    Attributes:
        module: the (uninstrumented) IR that was profiled; its graph is ``ncc.graph.build(module)``.
        block_counts: per function (graph order), ``int64 [blocks]``: times each block was entered.
        successor_counts: ``(function, block) -> int64 [successors]`` for every terminator with more than one
            successor: ``br`` (true, false), ``switch`` (default, then the cases), ``indirectbr`` (targets),
            ``invoke`` (normal, unwind).
        plain, instrumented: how the two runs ended (time, memory, output).
    """

    module: IRModule
    block_counts: list[np.ndarray]
    successor_counts: dict[tuple[int, int], np.ndarray]
    plain: RunResult | None = None
    instrumented: RunResult | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def overhead(self) -> float | None:
        """Instrumented CPU time over plain CPU time (None when either is under 1 ms or missing)."""
        if self.plain is None or self.instrumented is None or self.plain.cpu_s < 1e-3:
            return None
        return self.instrumented.cpu_s / self.plain.cpu_s

    def edge_counts(self, graph: ProgramGraph) -> np.ndarray:
        """``int64 [E]``: executions of every control edge of ``graph`` (the graph of :attr:`module`), -1 for
        data and call edges. A terminator's edge at position ``s`` carries its successor ``s``'s count."""
        counts = np.full(graph.num_edges, -1, dtype=np.int64)
        node_counts = self.node_counts(graph)
        terminators = _terminator_nodes(graph)
        for edge in np.flatnonzero(graph.edge_flow == CONTROL):
            source = int(graph.edge_index[0, edge])
            key = terminators.get(source)
            if key is not None and key in self.successor_counts:
                counts[edge] = self.successor_counts[key][graph.edge_position[edge]]
            else:
                counts[edge] = node_counts[source]
        return counts

    def node_counts(self, graph: ProgramGraph) -> np.ndarray:
        """``int64 [N]``: executions of each instruction node (its block's count), -1 for the external node,
        variables and constants."""
        _check_shape(graph, self.block_counts)
        counts = np.full(graph.num_nodes, -1, dtype=np.int64)
        instructions = np.flatnonzero(graph.node_type == INSTRUCTION)[1:]
        for function, blocks in enumerate(self.block_counts):
            chosen = instructions[graph.node_function[instructions] == function]
            counts[chosen] = blocks[graph.node_block[chosen]]
        return counts

    def branch_counts(self, graph: ProgramGraph) -> tuple[np.ndarray, np.ndarray]:
        """``(taken, not_taken)``, each ``int64 [N]``: for every conditional ``br`` node, the times its condition
        was true (successor 0) and false (successor 1); -1 on every other node."""
        taken = np.full(graph.num_nodes, -1, dtype=np.int64)
        not_taken = taken.copy()
        for node, key in _terminator_nodes(graph).items():
            counts = self.successor_counts.get(key)
            if counts is not None and graph.node_text[node] == "br":
                taken[node], not_taken[node] = counts[0], counts[1]
        return taken, not_taken

    def annotate(self, graph: ProgramGraph) -> ProgramGraph:
        """A copy of ``graph`` whose ``metadata["profile"]`` holds ``node_count``, ``branch_taken``,
        ``branch_not_taken`` (per node) and ``edge_count`` (per edge) as lists, which every exact format
        (JSON, npz, networkx) keeps; see :func:`ncc.execution.profile_arrays` to read them back."""
        taken, not_taken = self.branch_counts(graph)
        record = {"node_count": self.node_counts(graph).tolist(), "branch_taken": taken.tolist(),
                  "branch_not_taken": not_taken.tolist(), "edge_count": self.edge_counts(graph).tolist()}
        runs = {name: {"cpu_s": run.cpu_s, "wall_s": run.wall_s, "max_rss_bytes": run.max_rss_bytes}
                for name, run in (("plain", self.plain), ("instrumented", self.instrumented)) if run is not None}
        record.update(runs=runs, **self.metadata)
        return replace(graph, metadata={**graph.metadata, "profile": record})

    def flow_violations(self) -> list[str]:
        """Where the counts break flow conservation, one line each (empty when they obey it).

        In-flow: a block other than the entry is entered exactly as often as the edges into it ran. Out-flow: a
        block's counted successors ran as often as the block (a program that leaves a block through
        ``exit()``, ``longjmp`` or an exception thrown through a call breaks this legitimately). Calls: a function
        whose address is never taken is entered as often as its direct call sites' blocks ran (``main`` once more).
        """
        module = parse(self.module.text, self.module.source_path)
        violations: list[str] = []
        entered: list[np.ndarray] = [np.zeros_like(blocks) for blocks in self.block_counts]
        calls: dict[str, int] = {}
        index_of = {function.name: fi for fi, function in enumerate(module.functions)}
        for fi, function in enumerate(module.functions):
            names = {block.name: bi for bi, block in enumerate(function.blocks)}
            for bi, block in enumerate(function.blocks):
                count = int(self.block_counts[fi][bi])
                terminator = block.instructions[-1]
                successors = self.successor_counts.get((fi, bi))
                if successors is None:
                    successors = np.full(len(terminator.successors), count, dtype=np.int64)
                elif int(successors.sum()) != count:
                    violations.append(f"{function.name} {block.name}: entered {count} times, left "
                                      f"{int(successors.sum())} times through its {terminator.opcode}")
                for target, times in zip(terminator.successors, successors):
                    entered[fi][names[target]] += times
                for inst in block.instructions:
                    if inst.callee and inst.callee in index_of:
                        calls[inst.callee] = calls.get(inst.callee, 0) + count
            for bi, block in enumerate(function.blocks[1:], start=1):
                if entered[fi][bi] != self.block_counts[fi][bi]:
                    violations.append(f"{function.name} {block.name}: entered {int(self.block_counts[fi][bi])} "
                                      f"times, its incoming edges ran {int(entered[fi][bi])} times")
        text = self.module.text
        lines = text.split("\n")
        for fi, function in enumerate(module.functions):
            if not function.blocks or re.search(re.escape(function.name) + r"(?![-\w.$(])", text) or \
                    _REPLACEABLE.search(lines[function.line - 1] if function.line else ""):
                continue  # address taken, or a copy the linker may pick for other objects' calls too
            expected = calls.get(function.name, 0) + (function.name == "@main")
            if int(self.block_counts[fi][0]) != expected:
                violations.append(f"{function.name}: entered {int(self.block_counts[fi][0])} times, "
                                  f"called {expected} times")
        return violations


def profile_arrays(graph: ProgramGraph) -> dict[str, np.ndarray]:
    """The counts :meth:`Profile.annotate` stored in a graph (also after a JSON, npz or networkx round trip):
    ``node_count``, ``branch_taken``, ``branch_not_taken`` (``int64 [N]``), ``edge_count`` (``int64 [E]``).

    Raises:
        NccError: the graph carries no profile.
    """
    record = graph.metadata.get("profile")
    if not isinstance(record, dict) or "node_count" not in record:
        raise NccError("the graph carries no profile (made by ncc profile)", graph.module_name)
    return {name: np.asarray(record[name], dtype=np.int64)
            for name in ("node_count", "branch_taken", "branch_not_taken", "edge_count")}


def _terminator_nodes(graph: ProgramGraph) -> dict[int, tuple[int, int]]:
    """Last instruction node of every block -> (function, block)."""
    found: dict[tuple[int, int], int] = {}
    for node in np.flatnonzero(graph.node_type == INSTRUCTION)[1:]:
        found[(int(graph.node_function[node]), int(graph.node_block[node]))] = int(node)
    return {node: key for key, node in found.items()}


def _check_shape(graph: ProgramGraph, block_counts: list[np.ndarray]) -> None:
    instructions = graph.node_type == INSTRUCTION
    instructions[0] = False
    for function, blocks in enumerate(block_counts):
        chosen = graph.node_block[instructions & (graph.node_function == function)]
        if chosen.size and chosen.max() + 1 != len(blocks):
            raise NccError(f"the graph's function {function} has {chosen.max() + 1} blocks, the profile "
                           f"{len(blocks)}: not the graph of the profiled IR", graph.module_name)
    if len(block_counts) != len(graph.function_names):
        raise NccError(f"the graph has {len(graph.function_names)} functions, the profile {len(block_counts)}: "
                       "not the graph of the profiled IR", graph.module_name)


def read_counters(data: bytes, layout: CounterLayout) -> tuple[list[np.ndarray], dict[tuple[int, int], np.ndarray]]:
    """Decode the runtime's counter file into block counts and successor counts.

    Raises:
        ExecutionError: the file is not what the runtime writes for this layout.
    """
    if len(data) < 16 or data[:8] != b"NCCPROF1":
        raise ExecutionError("no counters written (the program did not end through exit)", stage="counters")
    total = int(np.frombuffer(data, dtype="<u8", count=1, offset=8)[0])
    if total != layout.num_counters or len(data) != 16 + 8 * total:
        raise ExecutionError(f"counter file holds {total} counters in {len(data)} bytes, expected "
                             f"{layout.num_counters}", stage="counters")
    values = np.frombuffer(data, dtype="<u8", offset=16).astype(np.int64)
    blocks = [values[np.asarray(counters, dtype=np.int64)] for counters in layout.blocks]
    successors = {}
    for key, branch in layout.branches.items():
        counts = values[np.asarray(branch.successors, dtype=np.int64)]
        if branch.opcode == "invoke":
            counts = np.array([counts[0], values[branch.reached] - counts[0]], dtype=np.int64)
        successors[key] = counts
    return blocks, successors


def _runtime_object(toolchain: Toolchain) -> Path:
    """The profile runtime compiled once per toolchain into ncc's cache."""
    source = RUNTIME_SOURCE.read_bytes()
    key = hashlib.sha256(source + toolchain.kind.encode() + toolchain.version.encode()).hexdigest()[:20]
    target = cache_home() / "execution" / f"runtime-{key}.o"
    if target.is_file():
        return target
    with ScratchFolder(prefix="ncc-runtime-") as work:
        command = [*_driver(toolchain, "c"), "-O2", "-c", str(RUNTIME_SOURCE), "-o", str(work / "runtime.o")]
        _run_tool(command, work, "cannot compile ncc's profile runtime")
        atomic_write(target, (work / "runtime.o").read_bytes())
    return target


def _driver(toolchain: Toolchain, language: str) -> list[str]:
    if toolchain.kind == "ziglang":
        return [toolchain.path, "cc" if language == "c" else "c++", "-target", "x86_64-linux-gnu", "-g0",
                "-fno-sanitize=all", "-w"]
    return [toolchain.path, *([] if language == "c" else ["--driver-mode=g++"]), "-g0", "-w"]


def _run_tool(command: list[str], cwd: Path, what: str, path: str | None = None) -> None:
    try:
        completed = subprocess.run(command, cwd=cwd, capture_output=True, timeout=LINK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ExecutionError(f"{what}: timed out after {LINK_TIMEOUT_S:.0f} s", path, stage="link") from None
    except OSError as error:
        raise ExecutionError(f"{what}: {error.strerror or error}", path, stage="link") from None
    if completed.returncode != 0:
        stderr = completed.stderr.decode(errors="replace")
        first = next((line.strip() for line in stderr.splitlines() if "error" in line), stderr.strip()[:200])
        raise ExecutionError(f"{what}: {first}", path, stage="link")


def link_executable(ir_text: str, output: Path, language: str, opt_level: str, toolchain: Toolchain,
                    runtime: bool, path: str | None = None) -> Path:
    """Write ``ir_text`` beside ``output`` and link it (with the profile runtime when ``runtime``) to ``output``.

    Raises:
        ExecutionError: the link failed (stage ``link``).
    """
    ir_path = output.with_suffix(".ll")
    ir_path.write_text(ir_text, errors="surrogateescape")
    command = [*_driver(toolchain, language), f"-O{opt_level}", str(ir_path)]
    if runtime:
        command.append(str(_runtime_object(toolchain)))
    command += ["-o", str(output), "-lm"]
    _run_tool(command, output.parent, "link failed", path)
    return output


def link_language(module: IRModule) -> str:
    """``c++`` when the module needs the C++ runtime (its language, or mangled C++ symbols), else ``c``."""
    if module.language == "c++" or _CXX_MARKERS.search(module.text):
        return "c++"
    return "c"


def opt_level_of(module: IRModule) -> str:
    """The ``-O`` level in the module's clang flags; for IR without flags ``0`` when a function is ``optnone``
    (clang's -O0), else ``2``."""
    for flag in reversed(module.flags):
        match = _OPT_FLAG.match(flag)
        if match:
            return match.group(1)
    return "0" if "optnone" in module.text else "2"


def expected_output(stdout: bytes, exit_code: int | None) -> bytes:
    """What llvm-test-suite's ``*.reference_output`` files hold: the output, then ``exit N`` on its own line."""
    text = stdout
    if text and not text.endswith(b"\n"):
        text += b"\n"
    return text + f"exit {exit_code}\n".encode()


def matches_reference(run: RunResult, reference: bytes) -> bool:
    """The run's stdout (or stdout then stderr) and exit status equal a reference output, up to trailing
    white space on each line; a reference that is one md5 digest (the suite's ``HASH_PROGRAM_OUTPUT``) is
    compared with the digest of that text."""
    def normal(data: bytes) -> list[bytes]:
        return [line.rstrip() for line in data.rstrip().split(b"\n")]

    candidates = [expected_output(out, run.exit_code) for out in (run.stdout, run.stdout + run.stderr)]
    candidates += [out + f"exit {run.exit_code}\n".encode() for out in (run.stdout, run.stdout + run.stderr)
                   if out and not out.endswith(b"\n")]  # the suite's hashed outputs: no newline added
    digest = reference.strip()
    if _MD5.fullmatch(digest):
        return any(hashlib.md5(candidate).hexdigest().encode() == digest.lower() for candidate in candidates)
    wanted = normal(reference)
    return any(normal(candidate) == wanted for candidate in candidates)


def _check_run(run: RunResult, reference: bytes | None, what: str, path: str | None) -> None:
    if run.status != "ok":
        raise ExecutionError(f"{what}: {run.reason}", path, stage="run")
    if reference is not None:
        if not matches_reference(run, reference):
            raise ExecutionError(f"{what}: output differs from the reference output (exit status "
                                 f"{run.exit_code})", path, stage="output")
    elif run.exit_code != 0:
        raise ExecutionError(f"{what}: {run.reason}", path, stage="run")


def _first_difference(plain: RunResult, instrumented: RunResult) -> str:
    """Where two runs' outputs part: ``line 3 of stdout`` or ``exit status 0 / 1``."""
    if plain.exit_code != instrumented.exit_code:
        return f"exit status {plain.exit_code} / {instrumented.exit_code}"
    expected, got = plain.stdout.split(b"\n"), instrumented.stdout.split(b"\n")
    line = next((k for k, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    return f"line {line + 1} of stdout"


def profile_module(module: IRModule, limits: Limits = Limits(), reference: bytes | None = None,
                   arguments: Sequence[str] = (), stdin: bytes | None = None,
                   clang: str | os.PathLike | Toolchain | None = None, opt_level: str | None = None,
                   run_plain: bool = True) -> Profile:
    """Profile IR: instrument it, link it and a plain copy, run both under ``limits``, read the counts.

    Args:
        module: the IR (from :func:`ncc.frontend.compile` or :func:`ncc.frontend.load`).
        limits: time, memory and output limits of each run.
        reference: the expected output in llvm-test-suite's form (stdout, then ``exit N``); without it the
            program must exit with status 0.
        arguments, stdin: the program's command-line arguments and standard input.
        clang: the toolchain that links (default: ziglang's clang).
        opt_level: the ``-O`` level of code generation (default: the level the IR was compiled at).
        run_plain: also run the uninstrumented program (its output must equal the instrumented one's).

    Returns:
        The :class:`Profile`.

    Raises:
        ExecutionError: instrumenting, linking or running failed, the output is wrong, or the instrumented
            program printed something else than the plain one (the error's ``stage`` says which).
    """
    path = module.source_path
    try:
        instrumented: InstrumentedModule = instrument(module)
    except NccError as error:
        raise ExecutionError(error.message, path, stage="instrument") from None
    toolchain = find_toolchain(clang)
    language = link_language(module)
    level = opt_level if opt_level is not None else opt_level_of(module)
    with ScratchFolder(prefix="ncc-profile-") as work:
        instrumented_exe = link_executable(instrumented.text, work / "instrumented", language, level, toolchain,
                                           runtime=True, path=path)
        plain = None
        if run_plain:
            plain_exe = link_executable(module.text, work / "plain", language, level, toolchain, runtime=False,
                                        path=path)
            with ScratchFolder(prefix="ncc-run-") as scratch:
                plain = run_sandboxed([str(plain_exe), *arguments], scratch, limits, stdin=stdin)
            _check_run(plain, reference, "plain program", path)
        with ScratchFolder(prefix="ncc-run-") as scratch:
            counters_path = scratch / _PROFILE_FILE
            run = run_sandboxed([str(instrumented_exe), *arguments], scratch, limits, stdin=stdin,
                                env={"NCC_PROFILE_OUTPUT": str(counters_path)})
            _check_run(run, reference, "instrumented program", path)
            if plain is not None and (run.stdout, run.exit_code) != (plain.stdout, plain.exit_code):
                raise ExecutionError(f"the instrumented program printed other output than the plain one "
                                     f"({_first_difference(plain, run)})", path, stage="output")
            try:
                data = counters_path.read_bytes()
            except OSError:
                data = b""
    try:
        blocks, successors = read_counters(data, instrumented.layout)
    except ExecutionError as error:
        raise ExecutionError(error.message, path, stage="counters") from None
    return Profile(module=module, block_counts=blocks, successor_counts=successors, plain=plain,
                   instrumented=run)


def profile(source: str | os.PathLike | IRModule, language: str | None = None, opt_level: int | str = 0,
            flags: Sequence[str] = (), limits: Limits = Limits(), reference: bytes | None = None,
            arguments: Sequence[str] = (), stdin: bytes | None = None,
            clang: str | os.PathLike | Toolchain | None = None) -> Profile:
    """Compile a C or C++ source (a path or text; or take an IRModule) and profile it (see :func:`profile_module`).

    Raises:
        CompilationError: clang rejected the source.
        ExecutionError: the program could not be profiled.
    """
    if isinstance(source, IRModule):
        module = source
    else:
        module = compile_source(source, language=language, opt_level=opt_level, flags=tuple(flags), clang=clang)
    return profile_module(module, limits=limits, reference=reference, arguments=arguments, stdin=stdin,
                          clang=clang, opt_level=None if isinstance(source, IRModule) else str(opt_level))
