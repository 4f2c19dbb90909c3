"""The ncc command line, run as a user runs it: real clang, real files, exit codes and messages."""

import json
import os
import re
import subprocess
import sys

import pytest

from ncc.graph import load_json


def ncc(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "ncc.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NCC_CACHE": str(cwd / "cache"), **(env or {})})


@pytest.fixture
def sources(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "square.c").write_text("int square(int x) { return x * x; }\n")
    (tmp_path / "src" / "kernel.cl").write_text(
        "__kernel void add(__global float* a, __global const float* b) {\n"
        "  int i = get_global_id(0);\n  a[i] += b[i];\n}\n")
    (tmp_path / "src" / "broken.c").write_text("int main( {\n")
    return tmp_path


@pytest.mark.parametrize("fmt, suffix", [("json", ".json"), ("npz", ".npz"), ("dot", ".dot"),
                                         ("networkx", ".nx.json"), ("pyg", ".pt")])
def test_graph_writes_every_format_and_lists_the_failure(sources, fmt, suffix):
    run = ncc("graph", "src", "--format", fmt, "-o", "out", "--workers", "2", cwd=sources)
    assert run.returncode == 0, run.stderr
    assert sorted(os.listdir(sources / "out" / "src")) == [f"kernel{suffix}", f"square{suffix}"]
    assert "2/3 graphs written, 1 failed" in run.stdout
    assert "failed: " in run.stderr and "broken.c" in run.stderr and "Traceback" not in run.stderr


def test_graph_json_is_the_graph_of_the_source(sources):
    run = ncc("graph", "src/square.c", "-o", "out", cwd=sources)
    assert run.returncode == 0, run.stderr
    graph = load_json(sources / "out" / "src" / "square.json")
    assert graph.function_names == ("@square",)
    assert "mul" in graph.node_text.tolist()
    assert json.loads((sources / "out" / "src" / "square.json").read_text())["format"] == "ncc.program_graph"


def test_graph_reads_ir_files_and_globs(sources):
    assert ncc("compile", "src/*.c", "-o", "ir", cwd=sources).returncode == 0
    run = ncc("graph", "ir/**/*.ll", "-o", "out", "--format", "npz", cwd=sources)
    assert run.returncode == 0, run.stderr
    assert os.listdir(sources / "out" / "ir" / "src") == ["square.npz"]


def test_compile_writes_ir_and_exits_nonzero_when_everything_fails(sources):
    run = ncc("compile", "src", "-o", "ir", cwd=sources)
    assert run.returncode == 0, run.stderr
    assert sorted(os.listdir(sources / "ir" / "src")) == ["kernel.ll", "square.ll"]
    assert "define" in (sources / "ir" / "src" / "square.ll").read_text()
    bad = ncc("compile", "src/broken.c", "-o", "ir2", cwd=sources)
    assert bad.returncode == 1
    assert "broken.c" in bad.stderr and "error" in bad.stderr and "Traceback" not in bad.stderr
    assert not (sources / "ir2").exists() or not os.listdir(sources / "ir2")


@pytest.mark.parametrize("name, content, reason", [
    ("empty.ll", b"", "empty"),
    ("binary.ll", b"\x00\x01\x02garbage\xff\xfe", "binary"),
    ("garbage.ll", b"define void @f() {\n  %x = frobnicate i32 1\n  ret void\n}\n", "garbage.ll:2:"),
    ("bad.bc", b"BC\xc0\xde" + b"\x00" * 40, "bad.bc"),
])
def test_bad_ir_files_get_one_line_and_exit_1(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    run = ncc("graph", name, "-o", "out", cwd=tmp_path)
    assert run.returncode == 1
    assert reason in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists() or not [f for f in os.listdir(tmp_path / "out")]


def test_missing_input_is_one_line(tmp_path):
    run = ncc("graph", "nowhere.c", "-o", "out", cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip() == "failed: nowhere.c: no such file or directory"
    assert run.stdout.strip() == "0/1 graph written, 1 failed"


def test_doctor_names_the_toolchain(tmp_path):
    run = ncc("doctor", cwd=tmp_path)
    assert run.returncode == 0
    assert re.search(r"clang_version: clang \d+\.\d+", run.stdout)
    assert re.search(r"llvmlite_llvm_version: \d+", run.stdout)


def test_doctor_prints_the_data_and_cache_folders_by_one_rule(tmp_path):
    from ncc.paths import shared_data_beside_checkout

    env = {key: value for key, value in os.environ.items() if key not in ("NCC_DATA", "NCC_CACHE")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    run = subprocess.run([sys.executable, "-m", "ncc.cli", "doctor"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env=env)
    beside = shared_data_beside_checkout()
    expected = (f"{beside} (../shared/data beside the checkout)" if beside.is_dir()
                else f"{tmp_path / 'xdg' / 'ncc' / 'data'} (default; $NCC_DATA unset)")
    assert re.search(r"^ +data_dir: (.*)$", run.stdout, re.M).group(1) == expected
    assert re.search(r"^ +cache_dir: (.*)$", run.stdout, re.M).group(1) == \
        f"{tmp_path / 'xdg' / 'ncc' / 'cache'} (default; $NCC_CACHE unset)"
    # run.sh and test.sh export what the command line reads
    exported = subprocess.run([sys.executable, "-m", "ncc.paths"], capture_output=True, text=True, env=env)
    assert exported.stdout.strip() == expected.split(" (")[0]
    chosen = ncc("doctor", cwd=tmp_path, env={"NCC_DATA": str(tmp_path / "data")})
    assert f"data_dir: {tmp_path / 'data'} ($NCC_DATA)" in chosen.stdout
    assert f"cache_dir: {tmp_path / 'cache'} ($NCC_CACHE)" in chosen.stdout


def test_help_lists_every_command_on_its_own_line(tmp_path):
    run = ncc("--help", cwd=tmp_path)
    assert run.returncode == 0
    listed = re.findall(r"^\s+ncc (\w+) ", run.stdout, flags=re.MULTILINE)
    assert listed == ["doctor", "compile", "graph", "profile", "embed", "train", "evaluate", "reproduce"]
