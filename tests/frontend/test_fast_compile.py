"""The fast compile path gives the IR the driver gives: ``zig -cc1`` from the driver's own ``-###`` answer,
and the POJ-104 prelude as a PCH built with ``-fpch-instantiate-templates``, on real POJ-104 programs."""

from __future__ import annotations

import random
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from ncc.frontend.batch import compile_batch
from ncc.frontend.compile import PCH_BUILD_FLAGS, _use_precompiled_headers, compile
from ncc.frontend.dialects import POJ104_FLAGS, POJ104_PRELUDE, poj104
from ncc.frontend.toolchain import cc1_template, find_toolchain
from ncc.paths import data_home

C_SOURCE = '#include "shape.h"\nint area(struct shape s) { return s.w * s.h * SCALE; }\n'
CXX_SOURCE = """
#include "shape.h"
template <typename T> struct Box { T value; T twice() const { return value + value; } };
struct Base { virtual int f(int x) { return x; } virtual ~Base() {} };
struct Derived : Base { int f(int x) { return Box<int>{x}.twice() * SCALE; } };
int total(const int* v, int n) { Derived d; Base* b = &d; int s = 0;
  for (int i = 0; i < n; ++i) s += b->f(v[i]); return s; }
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Keep precompiled headers and IR out of the user's cache; zig's driver gets a cache of its own."""
    monkeypatch.setenv("NCC_CACHE", str(tmp_path / "ncc-cache"))
    monkeypatch.setenv("ZIG_GLOBAL_CACHE_DIR", str(tmp_path / "zig-cache"))
    monkeypatch.setenv("ZIG_LOCAL_CACHE_DIR", str(tmp_path / "zig-cache"))
    monkeypatch.delenv("NCC_CLANG", raising=False)


def _driver_ir(source: Path, language: str, flags: tuple[str, ...], opt_level: int = 0) -> str:
    """The IR of ``zig cc``/``zig c++`` run the way ncc ran it before, in a folder of its own."""
    toolchain = find_toolchain()
    work = source.parent / f"driver-{source.stem}"
    work.mkdir()
    (work / source.name).write_bytes(source.read_bytes())
    command = toolchain.command(language, source.name, "out.ll", opt_level,
                                ("-iquote", str(source.parent.resolve()), *flags))
    done = subprocess.run(command, cwd=work, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return (work / "out.ll").read_text()


def test_cc1_template_has_holes_only_for_names_and_folders():
    toolchain = find_toolchain()
    flags = ("-iquote", "/some/where", "-std=gnu++98", "-w")
    template = cc1_template(toolchain, "c++", 0, flags)
    assert template is not None and template.arguments[0] == "-cc1"
    holes = sorted(argument for argument in template.arguments if "{" in argument)
    assert holes == sorted(["{source}", "{source}", "{output}", "{quote0}", "-fdebug-compilation-dir={work_dir}",
                            "-fcoverage-compilation-dir={work_dir}"])
    command = template.fill("p.cpp", "out.ll", "/w", ("-iquote", "/elsewhere", "-std=gnu++98", "-w"))
    assert command[0] == toolchain.path and command[-1] == "p.cpp" and "/elsewhere" in command
    assert command[command.index("-o") + 1] == "out.ll" and "-fdebug-compilation-dir=/w" in command
    # another -iquote folder is the same setting: no second question to the driver
    assert cc1_template(toolchain, "c++", 0, ("-iquote", "/other", "-std=gnu++98", "-w")) is template


@pytest.mark.parametrize("opt_level", [0, 2])
def test_direct_cc1_gives_the_drivers_ir_for_c_and_cxx(tmp_path, opt_level):
    (tmp_path / "shape.h").write_text("struct shape { int w, h; };\n#define SCALE 3\n")
    c_file, cxx_file = tmp_path / "area.c", tmp_path / "total.cpp"
    c_file.write_text(C_SOURCE)
    cxx_file.write_text(CXX_SOURCE)
    for path, language in ((c_file, "c"), (cxx_file, "c++")):
        fast = compile(path, opt_level=opt_level).text
        assert fast == _driver_ir(path, language, (), opt_level), path.name


def _poj104_sample(count: int, seed: int) -> list[tuple[str, str]]:
    archive = data_home() / "poj104" / "poj104_codexglue.tar.gz"
    if not archive.is_file():
        pytest.skip(f"no POJ-104 archive at {archive}")
    with tarfile.open(archive) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".cpp")),
                         key=lambda m: m.name)
        chosen = random.Random(seed).sample(members, count)
        return [("_".join(Path(m.name).parts[-2:]), tar.extractfile(m).read().decode("utf-8", "surrogateescape"))
                for m in chosen]


def test_poj104_programs_same_ir_as_driver_with_prelude_as_text(tmp_path):
    """Through compile_batch on 2 workers (PCH + zig -cc1) against zig c++ with ``-include prelude.h``."""
    programs = _poj104_sample(5, seed=35)
    folder = tmp_path / "poj"
    folder.mkdir()
    paths = []
    for name, text in programs:
        path = folder / name
        path.write_text(text, errors="surrogateescape")
        paths.append(path)
    result = compile_batch(paths, dialect="poj104", workers=2, cache_dir=tmp_path / "ir", progress=False)
    compared = 0
    for entry in result.entries:
        if entry.module().metadata.get("repairs"):
            continue
        path = Path(entry.path)
        fixed, flags = poj104(path.read_text(errors="surrogateescape"))
        reference_source = folder / "reference" / path.name
        reference_source.parent.mkdir(exist_ok=True)
        reference_source.write_text(fixed, errors="surrogateescape")
        assert entry.ir_path.read_text() == _driver_ir(reference_source, "c++", tuple(flags)), path.name
        compared += 1
    assert compared >= 4, result.failures


def _types_in_empty_program(pch: Path, folder: Path) -> int:
    """How many types clang's AST holds after an empty program that loads ``pch`` (``-print-stats``)."""
    toolchain = find_toolchain()
    (folder / "empty.cpp").write_text("int main() { return 0; }\n")
    template = cc1_template(toolchain, "c++", 0, (*POJ104_FLAGS, "-include-pch", str(pch)))
    done = subprocess.run([*template.fill("empty.cpp", "out.ll", str(folder), ()), "-print-stats"], cwd=folder,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(re.search(r"(\d+) types total", done.stderr).group(1))


def test_prelude_pch_does_the_template_instantiations_once(tmp_path):
    """Without -fpch-instantiate-templates every program that loads the PCH instantiates what <iostream>
    left pending (~12,000 types, ~40 ms of CPU a file): the reason the PCH once saved little."""
    toolchain = find_toolchain()
    flags = (*POJ104_FLAGS, "-include", str(POJ104_PRELUDE))
    replaced = _use_precompiled_headers(toolchain, "c++", 0, flags, 300.0)
    assert "-include" not in replaced
    ncc_pch = Path(replaced[replaced.index("-include-pch") + 1])
    plain_pch = tmp_path / "plain.pch"
    arguments = [a for a in toolchain.compile_arguments("c++", 0, POJ104_FLAGS) if a not in ("-S", "-emit-llvm")]
    arguments[arguments.index("-x") + 1] = "c++-header"
    subprocess.run([toolchain.path, *arguments, str(POJ104_PRELUDE), "-o", str(plain_pch)], check=True,
                   capture_output=True)
    with_instantiation = _types_in_empty_program(ncc_pch, tmp_path)
    without = _types_in_empty_program(plain_pch, tmp_path)
    assert with_instantiation < 3000 < without, (with_instantiation, without)
    assert PCH_BUILD_FLAGS == ("-fpch-instantiate-templates",)
