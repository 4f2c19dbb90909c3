"""Graph construction, side by side: ncc's pure-Python builder against ProGraML's ``llvm2graph-10``.

Run (from the repository root)::

    bash benchmarks/setup_programl.sh                  # once: ProGraML 0.3.2 in /tmp/programl-venv
    .venv/bin/python benchmarks/graph_build.py         # corpus, timings, table, JSON

Options::

    --corpus-dir DIR      where the compiled corpus is cached (default benchmarks/results/corpus)
    --programl-venv DIR   the venv made by setup_programl.sh (default $PROGRAML_VENV or /tmp/programl-venv)
    --repeats N           llvm2graph runs per file, median taken (default 5)
    --ncc-repeats N       ncc builds per file, median taken (default 7)
    --limit N             only the first N files of each corpus part (a quick look)
    --skip-programl       time ncc alone
    --workers 1,2         pool sizes for the whole-corpus parallel run
    --seed, --poj-count   the POJ-104 sample (default seed 0, 200 programs)
    --output FILE         JSON results (default benchmarks/results/graph_build.json)

The corpus (clang-14, typed pointers, ``-O0``) is made once and cached; it is remade when its recipe
changes. Its parts:

* ``devmap``: the OpenCL kernels of the device-mapping data set (``clang-14 -x cl -cl-std=CL1.2
  -Xclang -finclude-default-header``); a kernel that needs ``-D`` values is retried once with a fixed
  set of them (``FALLBACK_DEFINES``), and skipped if it still fails.
* ``coarsening``: the 17 thread-coarsening kernels (the devmap folder is a second include directory:
  parboil's ``stencil.cl`` needs its ``common.h``).
* ``poj104``: a seeded sample of POJ-104 programs (``clang++-14 -O0 -w``, with
  ``#include <bits/stdc++.h>`` / ``using namespace std;`` prepended and ``void main`` made ``int main``);
  programs in a seeded order until ``--poj-count`` compile.
* ``ncc2018``: NCC's own 2018 IR of the devmap kernels (LLVM 3.x era), as shipped.

LLVM 10 rejects some of clang-14's output, so every file is passed through :func:`llvm10_compatible`
(attributes LLVM 10 does not know are dropped, ``poison`` becomes ``undef``) and the result is what the
cache holds: both builders read byte-identical text.

What is timed:

* llvm2graph: a process per file, IR on stdin and a binary ProgramGraph on stdout, exactly as
  ``programl.from_llvm_ir`` runs it; wall clock from spawning to the end of its output.
* ncc: ``build(text)`` in this process (one core), parse of the IR text included, the text already in
  memory; ``time.perf_counter`` around the call only.

Node and edge counts of llvm2graph's graphs are read with the ProGraML venv's own protobuf classes.
Peak memory is measured in a fresh process on the largest file. The whole corpus is also built with a
``multiprocessing`` pool of each size in ``--workers``.

This is a script, not part of the package, and no test imports it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("NCC_DATA", ROOT.parent / "shared" / "data"))
DEVMAP_CL = DATA / "devmap" / "ncc" / "kernels_cl"
DEVMAP_IR_TAR = DATA / "devmap" / "ncc" / "kernels_ir.tar.gz"
COARSENING_CL = DATA / "threadcoarsening" / "kernels_cl"
POJ104_TAR = DATA / "poj104" / "poj104_codexglue.tar.gz"

PARTS = ("devmap", "coarsening", "poj104", "ncc2018")

CLANG, CLANGXX = "clang-14", "clang++-14"
OPENCL_FLAGS = ("-x", "cl", "-cl-std=CL1.2", "-Xclang", "-finclude-default-header", "-S", "-emit-llvm", "-O0")
CXX_FLAGS = ("-x", "c++", "-S", "-emit-llvm", "-O0", "-w")
# Values for the macros some devmap kernels expect from their host program's build options.
FALLBACK_DEFINES = ("-DCLASS='A'", "-DBLOCK_SIZE=16", "-DLSIZE=64", "-DN_GP=128", "-DRADIUS=4",
                    "-DMT_RNG_COUNT=4096", "-DMAXWORKX=8", "-DMAXWORKY=8", "-DLROWS=16")
POJ_PRELUDE = "#include <bits/stdc++.h>\nusing namespace std;\n"

# Attributes that clang-14 writes and LLVM 10's parser rejects (noundef, mustprogress: LLVM 12;
# the others are dropped as the ProGraML recipe says, LLVM 10 knowing some of them only in some places).
LLVM10_UNKNOWN_ATTRIBUTES = ("noundef", "mustprogress", "nocallback", "nofree", "willreturn", "nosync")
_ATTRIBUTE = re.compile(r"(?<![\w%@$.\"-])(?:" + "|".join(LLVM10_UNKNOWN_ATTRIBUTES) + r")(?![\w.$-])[ \t]?")
# `poison` (LLVM 12) as a constant operand; LLVM 10 has only `undef`.
_POISON = re.compile(r"(?<![\w%@$.\"-])poison(?![\w.$:-])")
_DECLARE = re.compile(r"^declare ", re.MULTILINE)
# Bump when the corpus recipe changes in a way the recipe dict below does not show.
CORPUS_VERSION = 1


def llvm10_compatible(text: str) -> str:
    """Return clang-14 IR text that LLVM 10's parser (llvm2graph-10) reads.

    Drops :data:`LLVM10_UNKNOWN_ATTRIBUTES` wherever they stand as attributes and writes ``poison``
    constants as ``undef``. IR that is already LLVM-10 compatible comes back unchanged.
    """
    return _POISON.sub("undef", _ATTRIBUTE.sub("", text))


# ----------------------------------------------------------------------------------------------------------
# Corpus
# ----------------------------------------------------------------------------------------------------------

def _tool_version(tool: str) -> str:
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "missing"
    return out.splitlines()[0].strip()


def _recipe(seed: int, poj_count: int) -> dict:
    return {"version": CORPUS_VERSION, "clang": _tool_version(CLANG), "opencl_flags": list(OPENCL_FLAGS),
            "cxx_flags": list(CXX_FLAGS), "fallback_defines": list(FALLBACK_DEFINES),
            "llvm10_strip": list(LLVM10_UNKNOWN_ATTRIBUTES) + ["poison->undef"],
            "poj_seed": seed, "poj_count": poj_count}


def _compile(args: list[str], source: bytes | None = None) -> tuple[str | None, str]:
    """Run clang; return (IR text, "") or (None, the first error line)."""
    proc = subprocess.run(args + ["-o", "-"], input=source, capture_output=True)
    if proc.returncode == 0:
        return proc.stdout.decode(), ""
    errors = [line for line in proc.stderr.decode(errors="replace").splitlines() if "error" in line]
    return None, (errors[0] if errors else proc.stderr.decode(errors="replace")[-200:]).strip()


def _compile_opencl(path: Path, include_dirs: list[Path]) -> tuple[str | None, str, bool]:
    """Compile one kernel, retrying with FALLBACK_DEFINES; return (IR, error, used_defines)."""
    base = [CLANG, *OPENCL_FLAGS] + [f"-I{d}" for d in include_dirs] + [str(path)]
    ir, error = _compile(base)
    if ir is not None:
        return ir, "", False
    ir, _ = _compile(base[:-1] + list(FALLBACK_DEFINES) + base[-1:])
    return ir, error, ir is not None


def _poj_source(text: str) -> bytes:
    text = POJ_PRELUDE + re.sub(r"\bvoid(\s+main\s*\()", r"int\1", text)
    return text.encode("latin-1")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def make_corpus(corpus_dir: Path, seed: int, poj_count: int, jobs: int) -> dict:
    """Compile (or reuse) the benchmark corpus under ``corpus_dir``; return its manifest.

    The manifest (``manifest.json``) lists each part's files and the sources that failed to compile. A
    cached corpus is reused when its recipe (clang version, flags, seed, count) is the one asked for.
    """
    recipe = _recipe(seed, poj_count)
    manifest_path = corpus_dir / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("recipe") == recipe and all(
                (corpus_dir / f).exists() for part in manifest["parts"].values() for f in part["files"]):
            return manifest
    if recipe["clang"] == "missing":
        sys.exit(f"{CLANG} not found: run benchmarks/setup_programl.sh (it installs clang-14)")
    print(f"compiling the corpus into {corpus_dir} ...", file=sys.stderr)
    parts = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=jobs)

    def opencl_part(name: str, sources: list[Path], include_dirs: list[Path]) -> dict:
        files, failed, with_defines = [], {}, []
        results = pool.map(lambda p: _compile_opencl(p, include_dirs), sources)
        for src, (ir, error, used_defines) in zip(sources, results):
            if ir is None:
                failed[src.name] = error
                continue
            rel = f"{name}/{src.stem}.ll"
            _write(corpus_dir / rel, llvm10_compatible(ir))
            files.append(rel)
            if used_defines:
                with_defines.append(src.name)
        return {"files": files, "failed": failed, "compiled_with_fallback_defines": with_defines,
                "sources": len(sources)}

    parts["devmap"] = opencl_part("devmap", sorted(DEVMAP_CL.glob("*.cl")), [DEVMAP_CL])
    parts["coarsening"] = opencl_part("coarsening", sorted(COARSENING_CL.glob("*.cl")),
                                      [COARSENING_CL, DEVMAP_CL])

    # POJ-104: seeded order over the sorted member list; compile in chunks until poj_count succeed.
    with tarfile.open(POJ104_TAR) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".cpp")),
                         key=lambda m: m.name)
        random.Random(seed).shuffle(members)
        files, failed, tried = [], {}, 0
        chunk = max(jobs * 8, 16)
        while len(files) < poj_count and tried < len(members):
            batch = members[tried:tried + chunk]
            tried += len(batch)
            sources = [_poj_source(tar.extractfile(m).read().decode("latin-1")) for m in batch]
            results = pool.map(lambda s: _compile([CLANGXX, *CXX_FLAGS, "-"], s), sources)
            for member, (ir, error) in zip(batch, results):
                if len(files) == poj_count:
                    break
                label, number = Path(member.name).parts[-2:]
                if ir is None:
                    failed[f"{label}/{number}"] = error
                    continue
                rel = f"poj104/{label}_{Path(number).stem}.ll"
                _write(corpus_dir / rel, llvm10_compatible(ir))
                files.append(rel)
        parts["poj104"] = {"files": files, "failed": failed, "sources": len(files) + len(failed)}
    pool.shutdown()

    # NCC's 2018 IR, as shipped (the LLVM-10 pass leaves it unchanged).
    files = []
    with tarfile.open(DEVMAP_IR_TAR) as tar:
        for member in sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".ll")),
                             key=lambda m: m.name):
            rel = f"ncc2018/{Path(member.name).name}"
            _write(corpus_dir / rel, llvm10_compatible(tar.extractfile(member).read().decode()))
            files.append(rel)
    parts["ncc2018"] = {"files": files, "failed": {}, "sources": len(files)}

    manifest = {"recipe": recipe, "parts": parts}
    _write(manifest_path, json.dumps(manifest, indent=1))
    return manifest


# ----------------------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------------------

@dataclass
class FileResult:
    """Everything measured on one corpus file."""

    path: str
    part: str
    lines: int
    bytes: int
    declared_functions: int = 0
    programl_ms: float | None = None
    programl_runs_ms: list = field(default_factory=list)
    programl_error: str | None = None
    programl_nodes: int | None = None
    programl_edges: int | None = None
    programl_node_kinds: dict | None = None
    programl_edge_flows: dict | None = None
    ncc_ms: float | None = None
    ncc_runs_ms: list = field(default_factory=list)
    ncc_error: str | None = None
    ncc_nodes: int | None = None
    ncc_edges: int | None = None
    ncc_node_kinds: dict | None = None
    ncc_edge_flows: dict | None = None

    @property
    def ratio(self) -> float | None:
        if self.programl_ms is None or self.ncc_ms is None or self.ncc_ms <= 0:
            return None
        return self.programl_ms / self.ncc_ms


def find_llvm2graph(venv: Path) -> Path:
    """The llvm2graph-10 binary inside the programl package of ``venv``."""
    hits = sorted(venv.glob("lib/python*/site-packages/programl/bin/llvm2graph-10"))
    if not hits:
        sys.exit(f"llvm2graph-10 not found in {venv}: run benchmarks/setup_programl.sh {venv}")
    return hits[0]


def run_llvm2graph(binary: Path, ir: bytes, timeout: float = 300) -> tuple[float, bytes, bytes, int]:
    """One llvm2graph run as programl.from_llvm_ir does it; return (seconds, stdout, stderr, returncode)."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(binary), "--stdout_fmt=pb"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = proc.communicate(ir, timeout=timeout)
    return time.perf_counter() - start, stdout, stderr, proc.returncode


_COUNT_PROTOS = r"""
import json, sys
from programl.proto import ProgramGraph
out = {}
for path in sys.argv[1:]:
    g = ProgramGraph()
    with open(path, "rb") as f:
        g.ParseFromString(f.read())
    nodes, edges = {}, {}
    for n in g.node:
        nodes[str(n.type)] = nodes.get(str(n.type), 0) + 1
    for e in g.edge:
        edges[str(e.flow)] = edges.get(str(e.flow), 0) + 1
    out[path] = [len(g.node), len(g.edge), nodes, edges]
print(json.dumps(out))
"""
# ProGraML's enum values (programl/proto/program_graph.proto).
PROGRAML_NODE_TYPES = {"0": "instruction", "1": "variable", "2": "constant", "3": "type"}
PROGRAML_EDGE_FLOWS = {"0": "control", "1": "data", "2": "call", "3": "type"}


def time_files(results: list[FileResult], texts: dict[str, str], binary: Path | None, repeats: int,
               ncc_repeats: int) -> dict[str, bytes]:
    """Time both builders on every file (in place on ``results``); return llvm2graph's output per file.

    The runs of the two builders alternate file by file and repeat by repeat, so that load from other
    processes on the machine falls on both alike.
    """
    import gc

    from ncc.graph.builder import build
    build(texts[results[0].path])  # warm up: first-call costs (imports, regex compilation) are not per-file
    outputs = {}
    for r in _progress(results, "timing"):
        text = texts[r.path]
        data = text.encode()
        graph, ncc_runs, programl_runs = None, [], []
        gc.collect()
        for i in range(max(repeats if binary else 0, ncc_repeats)):
            if binary and i < repeats and r.programl_error is None:
                seconds, stdout, stderr, code = run_llvm2graph(binary, data)
                if code:
                    r.programl_error = _last_error_line(stderr.decode(errors="replace"))
                else:
                    programl_runs.append(seconds * 1e3)
                    outputs[r.path] = stdout
            if i < ncc_repeats and r.ncc_error is None:
                try:
                    start = time.perf_counter()
                    graph = build(text)
                    ncc_runs.append((time.perf_counter() - start) * 1e3)
                except Exception as error:  # report every failure, whatever its type
                    frame = traceback.extract_tb(error.__traceback__)[-1]
                    message = str(error).splitlines()[0] if str(error) else ""
                    r.ncc_error = f"{type(error).__name__}: {message} [{Path(frame.filename).name}:{frame.lineno}]"
        if r.programl_error is None and programl_runs:
            r.programl_runs_ms, r.programl_ms = programl_runs, statistics.median(programl_runs)
        else:
            outputs.pop(r.path, None)
        if r.ncc_error is None:
            r.ncc_runs_ms, r.ncc_ms = ncc_runs, statistics.median(ncc_runs)
            r.ncc_nodes, r.ncc_edges, r.ncc_node_kinds, r.ncc_edge_flows = _counts(graph)
    return outputs


def count_programl(results: list[FileResult], outputs: dict[str, bytes], venv: Path) -> None:
    """Read node and edge counts from llvm2graph's binary graphs with the ProGraML venv's protobuf."""
    by_path = {r.path: r for r in results}
    with tempfile.TemporaryDirectory(prefix="llvm2graph-") as tmp:
        protos = {}
        for i, (path, data) in enumerate(outputs.items()):
            proto = Path(tmp) / f"{i}.pb"
            proto.write_bytes(data)
            protos[str(proto)] = by_path[path]
        names = list(protos)
        for start in range(0, len(names), 200):
            chunk = names[start:start + 200]
            proc = subprocess.run([str(venv / "bin" / "python"), "-c", _COUNT_PROTOS, *chunk],
                                  capture_output=True, text=True)
            if proc.returncode:
                print(f"could not read llvm2graph's output: {_last_error_line(proc.stderr)}", file=sys.stderr)
                return
            for path, (nodes, edges, kinds, flows) in json.loads(proc.stdout).items():
                r = protos[path]
                r.programl_nodes, r.programl_edges = nodes, edges
                r.programl_node_kinds = {PROGRAML_NODE_TYPES.get(k, k): v for k, v in kinds.items()}
                r.programl_edge_flows = {PROGRAML_EDGE_FLOWS.get(k, k): v for k, v in flows.items()}


def _last_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors[0] if errors else lines[-1] if lines else "no output")[:300]


def _counts(graph) -> tuple[int, int, dict, dict]:
    import numpy as np
    from ncc.graph.program_graph import EDGE_FLOWS, NODE_TYPES
    kinds = {t: int(np.count_nonzero(graph.node_type == i)) for i, t in enumerate(NODE_TYPES)}
    flows = {f: int(np.count_nonzero(graph.edge_flow == i)) for i, f in enumerate(EDGE_FLOWS)}
    return graph.num_nodes, graph.num_edges, kinds, flows


def _progress(items, label: str):
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=label, unit="file", file=sys.stderr, leave=False)


# ----------------------------------------------------------------------------------------------------------
# Memory and parallel runs (each in fresh processes)
# ----------------------------------------------------------------------------------------------------------

# Peak memory. ru_maxrss survives fork and exec on Linux, so a process started from this one would
# report at least this process's peak. Each measured process is therefore started by a small launcher
# (a fresh interpreter), and its ru_maxrss starts from the launcher's few MiB, not from ours.
_LAUNCH = r"""
import json, resource, subprocess, sys
with open(sys.argv[1], "rb") as stdin:
    proc = subprocess.run(sys.argv[2:], stdin=stdin, stdout=subprocess.PIPE)
tail = proc.stdout[-2000:].decode(errors="replace").strip().splitlines()
with open("/proc/self/status") as f:
    launcher_kib = int(next(line for line in f if line.startswith("VmHWM:")).split()[1])
print(json.dumps({"returncode": proc.returncode, "launcher_kib": launcher_kib,
                  "child_maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "last_line": tail[-1] if tail else ""}))
"""

# Run in a fresh interpreter with the IR file on stdin: peak memory of one ncc build.
_NCC_PROBE = r"""
import json, resource, sys, tracemalloc
def hwm():
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM:")).split()[1])
from ncc.graph.builder import build
text = sys.stdin.read()
base = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, hwm())
graph = build(text)
after = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, hwm())
del graph
tracemalloc.start()
graph = build(text)
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({"before": base, "after": after, "tracemalloc_peak": peak}))
"""


def _launch(stdin_path: Path, command: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", _LAUNCH, str(stdin_path), *command], capture_output=True,
                          text=True, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"memory probe failed: {_last_error_line(proc.stderr)}")
    return json.loads(proc.stdout)


def measure_memory(path: Path, binary: Path | None) -> dict:
    """Peak memory of ncc (and of llvm2graph) building one file, each in a fresh process.

    For ncc: ``tracemalloc`` peak of one build (Python allocations only, text and imports excluded), and
    ``ru_maxrss`` / ``VmHWM`` of the process after imports and reading the text, then after the build.
    For llvm2graph: ``ru_maxrss`` of its process. Both process numbers include a floor of a few MiB that
    the launcher's own size sets (``launcher_mib``).
    """
    probe = _launch(path, [sys.executable, "-c", _NCC_PROBE])
    if probe["returncode"]:
        raise RuntimeError(f"ncc memory probe exited with {probe['returncode']}")
    ncc = json.loads(probe["last_line"])
    result = {"ncc_tracemalloc_peak_mib": ncc["tracemalloc_peak"] / 2**20,
              "ncc_ru_maxrss_before_build_mib": ncc["before"][0] / 1024,
              "ncc_ru_maxrss_after_build_mib": ncc["after"][0] / 1024,
              "ncc_vmhwm_before_build_mib": ncc["before"][1] / 1024,
              "ncc_vmhwm_after_build_mib": ncc["after"][1] / 1024,
              "launcher_mib": probe["launcher_kib"] / 1024,
              "llvm2graph_ru_maxrss_mib": None}
    if binary:
        run = _launch(path, [str(binary), "--stdout_fmt=pb"])
        if run["returncode"] == 0:
            result["llvm2graph_ru_maxrss_mib"] = run["child_maxrss_kib"] / 1024
    return result


_POOL_TEXTS: list[str] = []


def _pool_init(paths: list[str]) -> None:
    global _POOL_TEXTS
    import ncc.graph.builder  # noqa: F401  (import cost belongs to the worker's start, not the builds)
    _POOL_TEXTS = [Path(p).read_text() for p in paths]


def _pool_build(index: int) -> int:
    from ncc.graph.builder import build
    try:
        return build(_POOL_TEXTS[index]).num_nodes
    except Exception:  # counted as a failure; the per-file pass reports it
        return -1


def time_pool(paths: list[Path], workers: int, repeats: int = 3) -> dict:
    """Wall clock to build every file with a pool of ``workers`` processes (median of ``repeats`` passes;
    worker start-up and reading the files excluded)."""
    ctx = multiprocessing.get_context("fork")
    runs = []
    with ctx.Pool(workers, initializer=_pool_init, initargs=([str(p) for p in paths],)) as pool:
        pool.map(int, range(workers * 4))  # wait until every worker has started and loaded the texts
        for _ in range(repeats):
            start = time.perf_counter()
            nodes = pool.map(_pool_build, range(len(paths)), chunksize=4)
            runs.append(time.perf_counter() - start)
    return {"workers": workers, "seconds": statistics.median(runs), "runs_s": runs, "files": len(paths),
            "failures": sum(1 for n in nodes if n < 0)}


def time_programl_threads(binary: Path, texts: list[bytes], workers: int) -> dict:
    """Wall clock for llvm2graph over every file with a thread pool, as from_llvm_ir(executor=...) does."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        start = time.perf_counter()
        codes = list(pool.map(lambda t: run_llvm2graph(binary, t)[3], texts))
        seconds = time.perf_counter() - start
    return {"workers": workers, "seconds": seconds, "files": len(texts), "failures": sum(1 for c in codes if c)}


# ----------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------

def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results: list[FileResult]) -> dict:
    """Per part and overall: medians, ratios, failures, graph sizes."""
    summary = {}
    for part in PARTS + ("all",):
        rs = [r for r in results if part in ("all", r.part)]
        if not rs:
            continue
        both = [r for r in rs if r.ratio is not None]
        same = [r for r in rs if r.programl_nodes is not None and r.ncc_nodes is not None]
        summary[part] = {
            "files": len(rs),
            "median_lines": _median([r.lines for r in rs]),
            "programl_ok": sum(r.programl_ms is not None for r in rs),
            "ncc_ok": sum(r.ncc_ms is not None for r in rs),
            "programl_median_ms": _median([r.programl_ms for r in rs]),
            "ncc_median_ms": _median([r.ncc_ms for r in rs]),
            # Over the files both builders read, so the two medians are of the same files.
            "both_ok": len(both),
            "programl_median_ms_both": _median([r.programl_ms for r in both]),
            "ncc_median_ms_both": _median([r.ncc_ms for r in both]),
            "ratio_of_medians": (_median([r.programl_ms for r in both]) / _median([r.ncc_ms for r in both])
                                 if both else None),
            "median_of_ratios": _median([r.ratio for r in both]),
            "programl_total_s": sum(r.programl_ms for r in both) / 1e3 if both else None,
            "ncc_total_s": sum(r.ncc_ms for r in both) / 1e3 if both else None,
            "files_both_built": len(same),
            "programl_nodes_median": _median([r.programl_nodes for r in same]),
            "ncc_nodes_median": _median([r.ncc_nodes for r in same]),
            "programl_edges_median": _median([r.programl_edges for r in same]),
            "ncc_edges_median": _median([r.ncc_edges for r in same]),
            "programl_nodes_total": sum(r.programl_nodes for r in same),
            "ncc_nodes_total": sum(r.ncc_nodes for r in same),
            "programl_edges_total": sum(r.programl_edges for r in same),
            "ncc_edges_total": sum(r.ncc_edges for r in same),
            # Variable nodes differ by design (llvm2graph makes one per value and using block, ncc one
            # per value), so the instruction counts are the ones to compare, less llvm2graph's
            # "; undefined function" node for each declared function (ncc uses the external node).
            "same_instruction_count": sum(
                r.programl_node_kinds.get("instruction", 0) - r.declared_functions
                == r.ncc_node_kinds.get("instruction") for r in same),
            "programl_node_kinds": _add([r.programl_node_kinds for r in same]),
            "ncc_node_kinds": _add([r.ncc_node_kinds for r in same]),
            "programl_edge_flows": _add([r.programl_edge_flows for r in same]),
            "ncc_edge_flows": _add([r.ncc_edge_flows for r in same]),
        }
    return summary


def _add(dicts: list[dict]) -> dict:
    total: dict = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total


def _f(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def markdown(report: dict) -> str:
    """The report as Markdown tables."""
    s, out = report["summary"], []
    machine = report["machine"]
    load = machine["load_average_before_after"]
    out.append(f"ncc at {report['ncc_commit']}. Machine: {machine['cpus']} CPUs, Python {machine['python']}; "
               f"1-minute load average "
               f"{load[0][0]:.1f} before and {load[1][0]:.1f} after the per-file timings.\n")
    out.append("### Per-file build time (median of repeats; ratio = llvm2graph / ncc)\n")
    out.append("| part | files | median lines | llvm2graph ok | ncc ok | llvm2graph ms | ncc ms "
               "| ratio of medians | median of ratios |")
    out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for part, v in s.items():
        out.append(f"| {part} | {v['files']} | {_f(v['median_lines'], 0)} | {v['programl_ok']} | {v['ncc_ok']} "
                   f"| {_f(v['programl_median_ms_both'])} | {_f(v['ncc_median_ms_both'])} "
                   f"| {_f(v['ratio_of_medians'])} | {_f(v['median_of_ratios'])} |")
    out.append("\nTimes are over the files both builders read.\n")
    out.append("### Largest files\n")
    out.append("| file | lines | llvm2graph ms | ncc ms | ratio | nodes llvm2graph / ncc "
               "| edges llvm2graph / ncc |")
    out.append("|---|--:|--:|--:|--:|--:|--:|")
    for r in report["largest"]:
        ratio = r["programl_ms"] / r["ncc_ms"] if r["programl_ms"] and r["ncc_ms"] else None
        out.append(f"| {r['path']} | {r['lines']:,} | {_f(r['programl_ms'])} | {_f(r['ncc_ms'])} | {_f(ratio)} "
                   f"| {_f(r['programl_nodes'])} / {_f(r['ncc_nodes'])} "
                   f"| {_f(r['programl_edges'])} / {_f(r['ncc_edges'])} |")
    out.append("\n### Graph size (files both built)\n")
    out.append("| part | median nodes llvm2graph / ncc | median edges llvm2graph / ncc | total nodes "
               "llvm2graph / ncc | same instruction count |")
    out.append("|---|--:|--:|--:|--:|")
    for part, v in s.items():
        out.append(f"| {part} | {_f(v['programl_nodes_median'], 0)} / {_f(v['ncc_nodes_median'], 0)} "
                   f"| {_f(v['programl_edges_median'], 0)} / {_f(v['ncc_edges_median'], 0)} "
                   f"| {_f(v['programl_nodes_total'])} / {_f(v['ncc_nodes_total'])} "
                   f"| {v['same_instruction_count']} of {v['files_both_built']} |")
    out.append("\nllvm2graph makes one variable node per value and basic block that uses it, ncc one per value, "
               "so variable (and with them data-edge) counts differ by design. llvm2graph also adds an "
               "instruction node `; undefined function` for each declared function, where ncc uses its "
               "external node; \"same instruction count\" compares the instructions less those.")
    if "all" in s:
        v = s["all"]
        out.append(f"\nAll parts, node kinds: llvm2graph {v['programl_node_kinds']}, ncc {v['ncc_node_kinds']}; "
                   f"edge flows: llvm2graph {v['programl_edge_flows']}, ncc {v['ncc_edge_flows']}.")
    m = report.get("memory")
    if m:
        out.append(f"\n### Memory (largest file, {m['path']}, {m['lines']:,} lines)\n")
        out.append(f"ncc: tracemalloc peak {m['ncc_tracemalloc_peak_mib']:.1f} MiB during the build; process "
                   f"ru_maxrss {m['ncc_ru_maxrss_before_build_mib']:.1f} MiB after imports and reading the IR, "
                   f"{m['ncc_ru_maxrss_after_build_mib']:.1f} MiB after the build.")
        if m.get("llvm2graph_ru_maxrss_mib"):
            out.append(f"llvm2graph: process ru_maxrss {m['llvm2graph_ru_maxrss_mib']:.1f} MiB.")
        out.append(f"(Each process was started by a fresh launcher of {m['launcher_mib']:.1f} MiB, "
                   "a floor on both ru_maxrss numbers.)")
    if report.get("parallel"):
        out.append("\n### Whole corpus, parallel\n")
        out.append("ncc: median of 3 passes; llvm2graph: one pass, a process per file as in the per-file runs.\n")
        out.append("| builder | workers | files | seconds | speed-up | failures |")
        out.append("|---|--:|--:|--:|--:|--:|")
        for key, label in (("ncc", "ncc (process pool)"), ("programl", "llvm2graph (thread pool)")):
            rows = report["parallel"].get(key, [])
            for row in rows:
                out.append(f"| {label} | {row['workers']} | {row['files']} | {row['seconds']:.2f} "
                           f"| {rows[0]['seconds'] / row['seconds']:.2f} | {row['failures']} |")
    failures = [r for r in report["files"] if r["ncc_error"] or r["programl_error"]]
    if failures:
        out.append("\n### Failures\n")
        out.append("| file | llvm2graph | ncc |")
        out.append("|---|---|---|")
        for r in failures:
            out.append(f"| {r['path']} | {(r['programl_error'] or 'ok').replace('|', '/')} "
                       f"| {(r['ncc_error'] or 'ok').replace('|', '/')} |")
    return "\n".join(out)


def _git_commit() -> str:
    """The checkout's commit, with ``+dirty`` when ncc/ has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no", "--", "ncc") else "")


# ----------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-dir", type=Path, default=ROOT / "benchmarks" / "results" / "corpus")
    parser.add_argument("--programl-venv", type=Path,
                        default=Path(os.environ.get("PROGRAML_VENV", "/tmp/programl-venv")))
    parser.add_argument("--repeats", type=int, default=5, help="llvm2graph runs per file (median)")
    parser.add_argument("--ncc-repeats", type=int, default=7, help="ncc builds per file (median)")
    parser.add_argument("--limit", type=int, default=None, help="first N files of each part")
    parser.add_argument("--skip-programl", action="store_true", help="time ncc only")
    parser.add_argument("--workers", default="1,2", help="pool sizes for the whole-corpus run")
    parser.add_argument("--seed", type=int, default=0, help="POJ-104 sample seed")
    parser.add_argument("--poj-count", type=int, default=200, help="POJ-104 programs in the corpus")
    parser.add_argument("--largest", type=int, default=10, help="largest files listed separately")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "graph_build.json",
                        help="JSON results")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    manifest = make_corpus(args.corpus_dir, args.seed, args.poj_count, jobs=os.cpu_count() or 1)
    results, texts = [], {}
    for part in PARTS:
        for rel in manifest["parts"][part]["files"][:args.limit]:
            text = (args.corpus_dir / rel).read_text()
            texts[rel] = text
            results.append(FileResult(rel, part, text.count("\n"), len(text.encode()),
                                      len(_DECLARE.findall(text))))
    print(f"{len(results)} files: " + ", ".join(
        f"{p} {sum(r.part == p for r in results)}" for p in PARTS), file=sys.stderr)

    binary = None if args.skip_programl else find_llvm2graph(args.programl_venv)
    load_before = os.getloadavg()
    outputs = time_files(results, texts, binary, args.repeats, args.ncc_repeats)
    load_after = os.getloadavg()
    if binary:
        count_programl(results, outputs, args.programl_venv)
        del outputs

    largest = sorted(results, key=lambda r: (-r.lines, r.path))[:args.largest]
    biggest = largest[0]
    memory = {"path": biggest.path, "lines": biggest.lines,
              **measure_memory(args.corpus_dir / biggest.path, binary)}

    ok_paths = [args.corpus_dir / r.path for r in results if r.ncc_error is None]
    workers = [int(w) for w in args.workers.split(",") if w]
    parallel = {"ncc": [time_pool(ok_paths, w) for w in workers]}
    if binary:
        ok_texts = [texts[r.path].encode() for r in results if r.programl_error is None]
        parallel["programl"] = [time_programl_threads(binary, ok_texts, w) for w in workers]

    files = [dict(asdict(r), ratio=r.ratio) for r in results]
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "ncc_commit": _git_commit(),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "llvm2graph": str(binary) if binary else None,
                    "load_average_before_after": [load_before, load_after]},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "corpus": {"recipe": manifest["recipe"],
                   "parts": {p: {k: v for k, v in d.items() if k != "files"} | {"files": len(d["files"])}
                             for p, d in manifest["parts"].items()}},
        "summary": summarize(results),
        "largest": [dict(asdict(r)) for r in largest],
        "memory": memory,
        "parallel": parallel,
        "files": files,
    }
    table = markdown(report)
    report["markdown"] = table
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1))
    corpus = manifest["parts"]
    print("Corpus: " + "; ".join(
        f"{p} {len(d['files'])} of {d['sources']} sources compiled" for p, d in corpus.items()) + "\n")
    print(table)
    print(f"\nJSON: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
