"""Differential test of the graph builder against LLVM's own parse of the same IR (through llvmlite).

For every IR file of a real corpus, the per-function instruction counts (per basic block), opcode
histogram, CFG successor edges and direct call edges of the ProgramGraph must equal what LLVM 22 reads
(see ``reference.py``). Corpus parts, each read from ``$NCC_DATA`` and skipped where its data is absent:

- ``ncc_devmap_ir``: NCC's 685 pre-compiled devmap IR files (2018 clang, typed pointers);
- ``ncc_coarsening_ir``: NCC's 17 pre-compiled thread-coarsening IR files;
- ``coarsening``: the 17 thread-coarsening kernels compiled by ncc;
- ``devmap``: the devmap kernels (one source per kernel file the CSV rows use) compiled by ncc;
- ``poj104``: POJ-104 programs compiled by ncc (``poj104`` dialect);
- ``handwritten``: small C and C++ programs of this file (virtual calls, exceptions, computed goto, asm
  goto, function pointers, recursion) compiled by ncc at -O0 and -O2;
- ``handwritten_clang14``: the same programs compiled by a system ``clang-14`` (typed pointers,
  ``inrange`` vtable GEPs). clang-14 is optional (scripts/setup.sh does not install it): this part is
  skipped only when no ``clang-14`` is on ``$PATH``; one that is there but fails, fails the test.

The default run checks a deterministic sample of each part; ``--runslow`` checks them all (POJ-104: two
programs per class). Each graph is also built twice (identical arrays) and validated.

Absent data skips a part; a compiler that is present must work. Every source of the kernel and handwritten
parts must compile; of POJ-104 (student programs) a source may fail only with a diagnostic about its own
text (a clang ``error:`` or a binary file), never a crash, a timeout or a missing compiler, and the default
sample must still fill up.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from ncc.graph import build
from ncc.graph.program_graph import CALL, CONTROL
from ncc.paths import data_home

from reference import compare, graph_summary, reference_summary

DEFAULT = {"ncc_devmap_ir": 40, "ncc_coarsening_ir": None, "coarsening": None, "devmap": 12, "poj104": 20,
           "handwritten": None, "handwritten_clang14": None}  # files per part in the default run (None: all)
SYSTEM_CLANG = {"handwritten_clang14": "clang-14"}  # parts that need an optional system clang
SOURCE_FAILURES_ALLOWED = {"poj104"}  # parts whose sources may legitimately fail to compile
SLOW_POJ_PER_CLASS = 2
SLOW_POJ_MAX_FAILED_FRACTION = 0.1
WORKERS = 2

HANDWRITTEN = {
    "virtual.cpp": r"""
#include <stdexcept>
struct Shape { virtual ~Shape() {} virtual int area() const = 0; virtual const char *name() const { return "s"; } };
struct Square : Shape { int s; explicit Square(int s) : s(s) {} int area() const override { return s * s; } };
struct Rect : Shape { int w, h; Rect(int w, int h) : w(w), h(h) {} int area() const override { return w * h; }
  const char *name() const override { return "rect"; } };
static int check(int x) { if (x < 0) throw std::runtime_error("negative"); return x; }
int total(Shape **shapes, int n) {
  int sum = 0;
  for (int i = 0; i < n; ++i) {
    try { sum += check(shapes[i]->area()); }
    catch (const std::exception &e) { sum -= 1; }
    catch (...) { throw; }
  }
  return sum;
}
int main(int argc, char **argv) {
  Square sq(argc); Rect r(argc, 3);
  Shape *shapes[2] = {&sq, &r};
  int (*fp)(Shape **, int) = argc > 2 ? total : nullptr;
  switch (argc) { case 1: return total(shapes, 2); case 2: return fp ? fp(shapes, 2) : 0; case 7: break;
                  default: return 3; }
  try { return check(-argc); } catch (std::runtime_error &) { return 9; }
}
""",
    "gotos.c": r"""
#include <stdio.h>
static int helper(int x);
int dispatch(int op, int a) {
  static void *table[] = {&&add, &&sub, &&done};
  int acc = 0;
  goto *table[op % 3];
add: acc += a; goto done;
sub: acc -= a;
done:
  return acc + helper(a);
}
static int helper(int x) { return x > 1 ? helper(x - 1) + x : 1; }
int asm_things(int x) {
  int y;
  __asm__ volatile ("movl %1, %0" : "=r"(y) : "r"(x));
  __asm__ goto ("jmp %l[out]" :::: out);
  return y;
out:
  return -y;
}
struct ops { int (*f)(int, int); };
int main(int argc, char **argv) {
  struct ops o = {dispatch};
  for (int i = 0; i < argc; i++) {
    if (i == 3) continue;
    printf("%d %d\n", o.f(argc, i), asm_things(argc));
  }
  return 0;
}
""",
}


def _even_sample(items: list, count: int | None) -> list:
    """``count`` items spread evenly over ``items`` (all of them when count is None or large)."""
    if count is None or count >= len(items):
        return list(items)
    return [items[k * len(items) // count] for k in range(count)]


class Corpus:
    """Loads (and compiles, through one temporary IR cache) the corpus parts; memoised per session."""

    def __init__(self, cache_dir: Path, work_dir: Path):
        self.data = data_home()
        self.cache_dir = cache_dir
        self.work_dir = work_dir
        self.compile_failures: dict[str, list] = {}  # part -> [BatchFailure]
        self._memo: dict[tuple[str, bool], list[tuple[str, str]]] = {}

    def part(self, name: str, full: bool) -> list[tuple[str, str]]:
        """``[(file id, IR text)]`` of one part; skips the test when its data is absent."""
        key = (name, full)
        if key not in self._memo:
            self._memo[key] = getattr(self, f"_{name}")(None if full else DEFAULT[name])
        return self._memo[key]

    def _require(self, path: Path) -> Path:
        if not path.exists():
            pytest.skip(f"{path} not found (set NCC_DATA to the shared data folder)")
        return path

    def _compiled(self, part: str, sources: list[Path], **options) -> list[tuple[str, str]]:
        """Compile with ncc's frontend; a failure fails the test unless it is a source's own fault in a
        part that allows those (see :func:`_source_fault`), which is left out (and remembered)."""
        from ncc.frontend.batch import compile_batch

        assert sources, f"{part}: no sources found"
        result = compile_batch(sources, workers=WORKERS, cache_dir=self.cache_dir, progress=False, **options)
        self.compile_failures[part] = result.failures
        if part in SOURCE_FAILURES_ALLOWED:
            broken = [f for f in result.failures if not _source_fault(f)]
        else:
            broken = result.failures
        assert not broken, (f"{part}: {len(broken)} of {len(sources)} sources failed to compile (compiler or "
                            f"frontend problem):\n" + "\n".join(f"{f.path}: {f.reason[:300]}" for f in broken[:10]))
        return [(f"{Path(e.path).parent.name}/{Path(e.path).name}", e.module().text) for e in result.entries]

    def _ncc_devmap_ir(self, count):
        archive = self._require(self.data / "devmap" / "ncc" / "kernels_ir.tar.gz")
        with tarfile.open(archive) as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".ll")),
                             key=lambda m: m.name)
            return [(Path(m.name).name, tar.extractfile(m).read().decode("utf-8"))
                    for m in _even_sample(members, count)]

    def _ncc_coarsening_ir(self, count):
        folder = self._require(self.data / "threadcoarsening" / "kernels_ir")
        return [(p.name, p.read_text()) for p in _even_sample(sorted(folder.glob("*.ll")), count)]

    def _coarsening(self, count):
        from ncc.frontend.kernel_defines import threadcoarsening_kernel_flags

        folder = self._require(self.data / "threadcoarsening" / "kernels_cl")
        sources = _even_sample(sorted(folder.glob("*.cl")), count)
        return self._compiled("coarsening", sources,
                              per_source_flags=lambda path: threadcoarsening_kernel_flags(Path(path).stem))

    def _devmap(self, count):
        from ncc.frontend.kernel_defines import devmap_kernel_flags, devmap_source_fix

        table = self._require(self.data / "devmap" / "cgo17-amd.csv")
        folder = self._require(self.data / "devmap" / "ncc" / "kernels_cl")
        csv.field_size_limit(1 << 30)
        kernels: dict[Path, tuple[str, str]] = {}  # source -> (benchmark, dataset) of its first row
        with open(table, newline="") as handle:
            for row in csv.DictReader(handle):
                benchmark, dataset = row["benchmark"], row["dataset"]
                source = folder / f"{benchmark}_{dataset}.cl"
                if not source.exists():
                    source = folder / f"{benchmark}.cl"
                if source.exists():
                    kernels.setdefault(source, (benchmark, dataset))
        sources = _even_sample(sorted(kernels), count)
        return self._compiled(
            "devmap", sources,
            per_source_flags=lambda path: devmap_kernel_flags(*kernels[Path(path)]),
            source_transform=lambda path, text: devmap_source_fix(kernels[Path(path)][0], text))

    def _poj104(self, count):
        archive = self._require(self.data / "poj104" / "poj104_codexglue.tar.gz")
        per_class = SLOW_POJ_PER_CLASS if count is None else 1
        # candidates: the first programs (by number) of each class; for the default sample a few more
        # classes than needed, since some student programs do not compile
        labels = list(range(1, 105)) if count is None else _even_sample(list(range(1, 105)), count + 8)
        wanted = {}
        with tarfile.open(archive) as tar:
            names = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".cpp")]
            by_label: dict[int, list] = {}
            for m in names:
                parts = m.name.split("/")
                by_label.setdefault(int(parts[-2]), []).append(m)
            for label in labels:
                members = sorted(by_label.get(label, []), key=lambda m: int(Path(m.name).stem))
                for m in members[:per_class]:
                    wanted[m.name] = m
            folder = self.work_dir / "poj104"
            sources = []
            for name, m in wanted.items():
                target = folder / name.split("/")[-2] / Path(name).name
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(m) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                sources.append(target)
        compiled = self._compiled("poj104", sources, dialect="poj104")
        failed = len(self.compile_failures["poj104"])
        if count is None:
            assert failed <= SLOW_POJ_MAX_FAILED_FRACTION * len(sources), \
                f"poj104: {failed} of {len(sources)} programs failed to compile"
            return compiled
        assert len(compiled) >= count, (f"poj104: only {len(compiled)} of {len(sources)} programs compiled, "
                                        f"{count} wanted")
        return compiled[:count]

    def _handwritten(self, count, clang: str | None = None):
        """Compiled with ``clang`` (a system clang's name) or ncc's default; any compile error fails."""
        from ncc.frontend.compile import compile

        folder = self.work_dir / f"handwritten_{clang or 'default'}"
        folder.mkdir(exist_ok=True)
        out = []
        for file_name, text in HANDWRITTEN.items():
            source = folder / file_name
            source.write_text(text)
            for opt in (0, 2):
                module = compile(source, opt_level=opt, clang=clang)
                out.append((f"{file_name} -O{opt} {clang or 'default clang'}", module.text))
        return out

    def _handwritten_clang14(self, count):
        return self._handwritten(count, clang=SYSTEM_CLANG["handwritten_clang14"])


def _source_fault(failure) -> bool:
    """Whether a batch failure is the source's own fault (clang reported an error in it, or it is not text),
    rather than a broken compiler (a crash, a timeout, clang not runnable, a worker that died)."""
    reason = failure.reason
    text = f"{reason}\n{failure.diagnostics}"
    if any(mark in text for mark in ("PLEASE submit a bug report", "Stack dump", "frontend command failed",
                                     "cannot run clang", "timed out", "worker failed")):
        return False
    # a diagnostic in the source: "clang exited with status 1: <file>:<line>:<col>: [fatal ]error: ..."
    return bool(re.match(r"clang exited with status 1: \S+:\d+:\d+: (fatal )?error: ", reason)) \
        or reason.startswith("binary file")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    return Corpus(tmp_path_factory.mktemp("ir_cache"), tmp_path_factory.mktemp("sources"))


PARTS = list(DEFAULT)


def _files(corpus: Corpus, part: str, full: bool, system_clang) -> list[tuple[str, str]]:
    """The part's files; skips only where its data or optional system clang is absent, fails if empty."""
    if part in SYSTEM_CLANG:
        system_clang(SYSTEM_CLANG[part])
    files = corpus.part(part, full)
    assert files, f"{part}: no IR files ({len(corpus.compile_failures.get(part, []))} compile failures)"
    return files


def _check_part(corpus: Corpus, part: str, full: bool, system_clang):
    files = _files(corpus, part, full, system_clang)
    problems = []
    for file_id, text in files:
        try:
            expected = reference_summary(text)
        except RuntimeError as error:  # LLVM rejects the text: the reference must learn this dialect
            problems.append(f"{part}/{file_id}: LLVM 22 rejects the IR: {str(error)[:300]}")
            continue
        try:
            graph = build(text, name=file_id)  # validates
            got = graph_summary(graph)
        except Exception as error:  # noqa: BLE001 - any builder failure is a finding
            problems.append(f"{part}/{file_id}: {type(error).__name__}: {str(error)[:300]}")
            continue
        problems.extend(f"{part}/{file_id}: {p}" for p in compare(expected, got))
        if full and not graph.equals(build(text, name=file_id)):
            problems.append(f"{part}/{file_id}: two builds differ")
    checked = len(files)
    print(f"{part}: {checked} IR files checked, {len(corpus.compile_failures.get(part, []))} sources did "
          f"not compile")
    assert not problems, f"{len(problems)} differences in {checked} files:\n" + "\n".join(problems[:25])


@pytest.mark.parametrize("part", PARTS)
def test_graph_matches_llvm(corpus, part, system_clang):
    _check_part(corpus, part, full=False, system_clang=system_clang)


@pytest.mark.slow
@pytest.mark.parametrize("part", [p for p in PARTS if DEFAULT[p] is not None])
def test_graph_matches_llvm_full_corpus(corpus, part, system_clang):
    _check_part(corpus, part, full=True, system_clang=system_clang)


@pytest.mark.parametrize("part", PARTS)
def test_build_is_deterministic_and_valid(corpus, part, system_clang):
    files = _files(corpus, part, False, system_clang)
    for file_id, text in files:
        first = build(text, name=file_id, validate=False)
        first.validate(file_id)
        assert first.equals(build(text, name=file_id)), f"{part}/{file_id}: two builds differ"


# The comparison itself must notice a wrong graph: tamper with a correct one and expect differences.

_TINY = """
declare void @ext(i32)

define internal i32 @leaf(i32 %x) {
  ret i32 %x
}

define i32 @f(i32 %a) {
  %c = icmp eq i32 %a, 0
  br i1 %c, label %t, label %e

t:
  call void @ext(i32 1)
  %r = call i32 @leaf(i32 %a)
  switch i32 %r, label %e [
    i32 1, label %t
    i32 2, label %e
  ]

e:
  ret i32 0
}
"""


def _tampered(graph, **arrays):
    return dataclasses.replace(graph, **arrays)


def test_reference_agrees_on_a_tiny_module():
    expected = reference_summary(_TINY)
    assert list(expected) == ["leaf", "f"]
    f = expected["f"]
    assert f.blocks == [2, 3, 1]
    assert f.successors == {(0, 0): 1, (0, 1): 2, (1, 0): 2, (1, 1): 1, (1, 2): 2}
    assert dict(f.callees) == {"leaf": 1} and f.external_calls == 1
    assert compare(expected, graph_summary(build(_TINY))) == []


def test_comparison_detects_tampering():
    graph = build(_TINY)
    expected = reference_summary(_TINY)
    control = np.flatnonzero(graph.edge_flow == CONTROL)
    src, dst = graph.edge_index
    # swap the two successors of the conditional branch
    br = int(np.flatnonzero(graph.node_text == "br")[0])
    out = control[src[control] == br]
    position = graph.edge_position.copy()
    position[out] = position[out][::-1]
    assert any("CFG successors" in p for p in compare(expected, graph_summary(_tampered(graph,
                                                                                      edge_position=position))))
    # send the call to @leaf to the external node
    call = np.flatnonzero(graph.edge_flow == CALL)
    to_leaf = call[(src[call] > 0) & (graph.node_text[src[call]] == "call") & (dst[call] != 0)]
    edge_index = graph.edge_index.copy()
    edge_index[1, to_leaf] = 0
    problems = compare(expected, graph_summary(_tampered(graph, edge_index=edge_index)))
    assert any("direct callees" in p for p in problems) and any("external node" in p for p in problems)
    # rename an opcode
    text = graph.node_text.copy()
    text[np.flatnonzero(text == "icmp")[0]] = "fcmp"
    assert any("opcode counts" in p for p in compare(expected, graph_summary(_tampered(graph, node_text=text))))
    # move the last instruction of block 1 into block 2
    block = graph.node_block.copy()
    switch = int(np.flatnonzero(graph.node_text == "switch")[0])
    block[switch] = 2
    with pytest.raises(AssertionError):
        problems = compare(expected, graph_summary(_tampered(graph, node_block=block)))
        assert not problems


# Valid IR that clang does not print but LLVM reads. A case whose second item names a gap is expected to
# fail until the builder handles it.
_UNUSUAL = {
    "typed_bitcast_callee": ("""
define void @k() {
  ret void
}
define i32 @f() {
  call void bitcast (void ()* @k to void (i32)*)(i32 1)
  ret i32 0
}
""", None),
    "quoted_names_and_phi": (r"""
define internal i32 @"a \22b\22"(i32 %x) {
  ret i32 %x
}
define i32 @f(i1 %c) {
"entry block":
  br i1 %c, label %"then", label %else
"then":
  %v = call i32 @"a \22b\22"(i32 1)
  br label %else
else:
  %p = phi i32 [ 0, %"entry block" ], [ %v, %"then" ]
  ret i32 %p
}
""", None),
    "switch_cases_on_the_bracket_line": ("""
define i32 @f(i32 %a) {
entry:
  switch i32 %a, label %e [ i32 1, label %t
                             i32 2, label %e ]
t:
  ret i32 1
e:
  ret i32 0
}
""", None),
    "call_in_program_address_space": ("""
define void @k() addrspace(4) {
  ret void
}
define void @f() {
  call addrspace(4) void @k()
  ret void
}
""", None),
    "unlabelled_block_after_terminator": ("""
define i32 @f(i1 %c) {
  br i1 %c, label %a, label %b
  br label %a
a:
  ret i32 1
b:
  ret i32 0
}
""", None),
}


@pytest.mark.parametrize("case", [
    pytest.param(name, marks=pytest.mark.xfail(reason=gap, strict=False)) if gap else name
    for name, (_, gap) in _UNUSUAL.items()])
def test_unusual_but_valid_ir(case):
    ir = _UNUSUAL[case][0]
    assert compare(reference_summary(ir), graph_summary(build(ir))) == []
