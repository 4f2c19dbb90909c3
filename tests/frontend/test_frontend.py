"""Frontend tests with the real clang (ziglang's by default): compile, load, batch, cache, errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ncc.errors import CompilationError, InputError, IRParseError
from ncc.frontend.batch import compile_batch, expand_inputs
from ncc.frontend.compile import compile
from ncc.frontend.dialects import poj104, poj104_repair
from ncc.frontend.kernel_defines import devmap_kernel_flags, threadcoarsening_kernel_flags
from ncc.frontend.load import load
from ncc.frontend.toolchain import doctor_report, find_toolchain

C_SOURCE = "int add(int a, int b) { int c = a + b; return c * 2; }\n"
CXX_SOURCE = """
int may_throw(int x) { if (x < 0) throw x; return x; }
int guarded(int x) {
  try { return may_throw(x); } catch (int e) { return -e; }
}
"""
OPENCL_SOURCE = """
__kernel void scale(__global float4 *data, float factor) {
  size_t i = get_global_id(0);
  data[i] = data[i] * factor;
}
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Keep precompiled headers and IR out of the user's cache."""
    monkeypatch.setenv("NCC_CACHE", str(tmp_path / "ncc-cache"))
    monkeypatch.delenv("NCC_CLANG", raising=False)


def test_toolchain_is_ziglang_clang_22():
    toolchain = find_toolchain()
    assert toolchain.kind == "ziglang"
    assert toolchain.version.startswith("clang ")
    assert toolchain.major >= 14
    report = doctor_report()
    assert report["clang_version"] == toolchain.version
    assert report["llvmlite_llvm_version"]
    assert "torch_version" in report


def test_compile_c_text_records_provenance():
    module = compile(C_SOURCE, language="c", name="adder")
    assert "define" in module.text and "@add(" in module.text
    assert module.name == "adder" and module.language == "c" and module.source_path is None
    assert module.toolchain == "ziglang" and module.toolchain_version == find_toolchain().version
    assert "-O0" in module.flags and "-emit-llvm" in module.flags
    assert len(module.source_sha256) == 64


def test_compile_file_infers_language(tmp_path):
    source = tmp_path / "adder.c"
    source.write_text(C_SOURCE)
    module = compile(source)
    assert module.language == "c" and module.name == "adder" and module.source_path == str(source)
    assert compile(str(source)).text == module.text


def test_opt_levels_differ():
    unoptimised = compile(C_SOURCE, language="c", opt_level=0)
    optimised = compile(C_SOURCE, language="c", opt_level=2)
    assert "alloca" in unoptimised.text and "alloca" not in optimised.text
    assert "-O2" in optimised.flags


def test_compile_cxx_exception_gives_invoke():
    module = compile(CXX_SOURCE, language="c++")
    assert "invoke " in module.text and "landingpad" in module.text


def test_compile_opencl_kernel_with_vector_type():
    module = compile(OPENCL_SOURCE, language="opencl")
    assert "spir_kernel" in module.text
    assert "get_global_id" in module.text and "<4 x float>" in module.text
    assert "-O0" in module.flags


def test_opencl_relative_include(tmp_path):
    (tmp_path / "macros.h").write_text("#define FACTOR 3.0f\n")
    kernel = tmp_path / "k.cl"
    kernel.write_text('#include "macros.h"\n__kernel void k(__global float *a) { a[0] *= FACTOR; }\n')
    assert "spir_kernel" in compile(kernel).text


def test_compilation_error_carries_command_and_stderr():
    with pytest.raises(CompilationError) as caught:
        compile("int broken( { return 0; }\n", language="c")
    error = caught.value
    assert error.command and "-emit-llvm" in error.command
    assert "error" in error.stderr_tail
    assert "clang exited with status" in str(error)


def test_input_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="no such file") as missing:
        compile(tmp_path / "absent.c")
    assert "absent.c" in str(missing.value)
    empty = tmp_path / "empty.c"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        compile(empty)
    binary = tmp_path / "binary.c"
    binary.write_bytes(b"\x7fELF\x00\x01\x02")
    with pytest.raises(InputError, match="binary"):
        compile(binary)
    with pytest.raises(InputError, match="language"):
        compile("int x;\n")


def test_one_line_of_code_with_a_slash_is_code_not_a_path(tmp_path):
    module = compile("int half(int n) { n /= 2; return n; }", language="c")
    assert "define" in module.text and "sdiv" in module.text
    with pytest.raises(InputError, match="no such file"):
        compile(str(tmp_path / "missing" / "dir.c"))


def test_load_ll_and_bc(tmp_path):
    source = tmp_path / "adder.c"
    source.write_text(C_SOURCE)
    text_module = compile(source)
    ll_path = tmp_path / "adder.ll"
    ll_path.write_text(text_module.text)
    loaded = load(ll_path)
    assert loaded.text == text_module.text and loaded.language == "ir" and loaded.name == "adder"

    toolchain = find_toolchain()
    bc_path = tmp_path / "adder.bc"
    arguments = [argument if argument != "-S" else "-c" for argument in
                 toolchain.compile_arguments("c", 0)]
    subprocess.run([toolchain.path, *arguments, str(source), "-o", str(bc_path)], check=True,
                   capture_output=True)
    from_bitcode = load(bc_path)
    assert "define" in from_bitcode.text and "@add(" in from_bitcode.text


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load(tmp_path / "absent.ll")
    empty = tmp_path / "empty.ll"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        load(empty)
    binary = tmp_path / "binary.ll"
    binary.write_bytes(b"\x00\x01\x02junk")
    with pytest.raises(InputError, match="binary"):
        load(binary)
    bad_bitcode = tmp_path / "bad.bc"
    bad_bitcode.write_bytes(b"BC\xc0\xde" + b"\x00garbage" * 4)
    with pytest.raises(IRParseError) as caught:
        load(bad_bitcode)
    assert "bad.bc" in str(caught.value)


def _write_batch_sources(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for index in range(4):
        path = folder / f"f{index}.c"
        body = f"int f{index}(int x) {{ return x + {index}; }}\n"
        if index == 2:
            body = "int f2(int x) { return x + ; }\n"
        path.write_text(body)
        paths.append(path)
    return paths


def test_batch_parallel_bad_file_and_cache(tmp_path):
    sources = _write_batch_sources(tmp_path / "src")
    cache = tmp_path / "cache"
    first = compile_batch(sources, workers=2, cache_dir=cache, progress=False)
    assert [Path(entry.path).name for entry in first.entries] == ["f0.c", "f1.c", "f3.c"]
    assert len(first.failures) == 1 and first.failures[0].path.endswith("f2.c")
    assert "error" in first.failures[0].diagnostics
    assert first.compiled == 4 and first.cache_hits == 0
    assert all(path.is_file() for path in first.ir_paths)
    assert "3/4 compiled" in first.summary()

    second = compile_batch(sources, workers=2, cache_dir=cache, progress=False)
    assert second.compiled == 0 and second.cache_hits == 4
    assert [entry.from_cache for entry in second.entries] == [True, True, True]
    assert [module.text for module in second.modules()] == [module.text for module in first.modules()]


def test_batch_partial_entry_is_not_a_hit(tmp_path):
    sources = _write_batch_sources(tmp_path / "src")[:2]
    cache = tmp_path / "cache"
    first = compile_batch(sources, workers=1, cache_dir=cache, progress=False)
    victim = first.entries[0].ir_path
    # what a killed run can leave: its temporary file, and no finished entry
    victim.rename(victim.parent / f".{victim.name}.abc123.tmp")
    second = compile_batch(sources, workers=1, cache_dir=cache, progress=False)
    assert second.compiled == 1 and second.cache_hits == 1
    assert victim.is_file()
    # a truncated entry (no final newline) does not count either
    victim.write_text(victim.read_text()[:50])
    third = compile_batch(sources, workers=1, cache_dir=cache, progress=False)
    assert third.compiled == 1


def test_batch_output_dir_and_expand_inputs(tmp_path):
    sources = _write_batch_sources(tmp_path / "src")
    (tmp_path / "src" / "notes.txt").write_text("not a source")
    found = expand_inputs([tmp_path / "src"])
    assert found == sources
    assert expand_inputs([str(tmp_path / "src" / "*.c")]) == sources
    with pytest.raises(InputError):
        expand_inputs([tmp_path / "nothing-here"])
    result = compile_batch(found, workers=1, cache_dir=tmp_path / "cache", progress=False,
                           output_dir=tmp_path / "out", per_source_flags={"f0": ["-DUNUSED=1"]})
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["f0.ll", "f1.ll", "f3.ll"]
    assert "-DUNUSED=1" in result.entries[0].flags


def test_poj104_dialect_rewrites_and_compiles(tmp_path):
    text, flags = poj104("void main()\n{\n  int n; cin >> n; cout << n << endl; return;\n}\n")
    assert "int main(" in text and "return 0;" in text and "-std=gnu++98" in flags
    repaired = poj104_repair("int a[LEN];\n", "x.cpp:1:7: error: use of undeclared identifier 'LEN'\n")
    assert repaired is not None and "#define LEN 1000" in repaired
    program = tmp_path / "1.cpp"
    program.write_text("char s[LEN];\nmain()\n{\n  gets(s);\n  printf(\"%s\\n\", s);\n}\n")
    module = compile(program, dialect="poj104")
    assert "@main(" in module.text and module.metadata.get("repairs") == 1


def test_kernel_defines():
    assert "-DCLASS='A'" in devmap_kernel_flags("npb-3.3-BT-exact_rhs1", "A")
    assert "-DN_GP=8" in devmap_kernel_flags("shoc-1.1.5-S3D-ratt_kernel", "default")
    assert devmap_kernel_flags("amd-app-sdk-3.0-Reduction-reduce", "default") == []
    assert threadcoarsening_kernel_flags("mt") == []


COARSENING_DIR = Path(os.environ.get("NCC_DATA", "/nonexistent")) / "threadcoarsening" / "kernels_cl"


@pytest.mark.skipif(not COARSENING_DIR.is_dir(), reason="$NCC_DATA/threadcoarsening not present")
def test_all_coarsening_kernels_compile(tmp_path):
    kernels = sorted(COARSENING_DIR.glob("*.cl"))
    assert len(kernels) == 17
    result = compile_batch(kernels, workers=2, cache_dir=tmp_path / "cache", progress=False,
                           per_source_flags=lambda path: threadcoarsening_kernel_flags(path.stem))
    assert result.failures == [] and len(result.entries) == 17


def test_system_clang_named_by_env(monkeypatch, system_clang):
    system_clang("clang-14")
    monkeypatch.setenv("NCC_CLANG", "clang-14")
    assert find_toolchain().kind == "system"
    module = compile(OPENCL_SOURCE, language="opencl")
    assert module.toolchain_version.startswith("clang 14") and "spir_kernel" in module.text
