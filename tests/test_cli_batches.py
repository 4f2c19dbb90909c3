"""`ncc compile` / `graph` / `embed` on the inputs and output folders a newcomer meets: real clang, real files.

Full and read-only output folders are real tmpfs mounts, made in a user and mount namespace of their own
(`unshare -rm`); those tests are skipped where the kernel allows no such namespace.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SQUARE = "int square(int x) { return x * x; }\n"
LOOP = "int sum(int n) { int s = 0; for (int i = 0; i < n; i++) s += i; return s; }\n"


def ncc(*args, cwd, umask=-1, prefix=()):
    return subprocess.run([*prefix, sys.executable, "-m", "ncc.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, umask=umask, env={**os.environ, "NCC_CACHE": str(cwd / "cache")})


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


@pytest.fixture
def tree(tmp_path):
    """sq.c, ir/sq.ll, ir/a.O0.ll, ir/a.O2.ll, x/main.c, y/main.c, notes.txt, and an empty folder."""
    (tmp_path / "sq.c").write_text(SQUARE)
    for folder in ("x", "y", "empty"):
        (tmp_path / folder).mkdir()
    (tmp_path / "x" / "main.c").write_text(SQUARE)
    (tmp_path / "y" / "main.c").write_text(LOOP)
    (tmp_path / "notes.txt").write_text("a note\n")
    for level in ("0", "2"):
        run = ncc("compile", "sq.c", "-O", level, "-o", f"O{level}", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
    (tmp_path / "ir").mkdir()
    (tmp_path / "ir" / "sq.ll").write_bytes((tmp_path / "O0" / "sq.ll").read_bytes())
    (tmp_path / "ir" / "a.O0.ll").write_bytes((tmp_path / "O0" / "sq.ll").read_bytes())
    (tmp_path / "ir" / "a.O2.ll").write_bytes((tmp_path / "O2" / "sq.ll").read_bytes())
    return tmp_path


INPUTS = ["sq.c", "ir/sq.ll", "ir/a.O0.ll", "ir/a.O2.ll", "x/main.c", "y/main.c"]
OUTPUTS = ["ir/a.O0.json", "ir/a.O2.json", "ir/sq.json", "sq.json", "x/main.json", "y/main.json"]


def test_graph_outputs_keep_the_whole_name_and_mirror_the_folders(tree):
    forward = ncc("graph", *INPUTS, "-o", "out", "-j", "2", cwd=tree)
    assert forward.returncode == 0, forward.stderr
    assert files_under(tree / "out") == OUTPUTS
    backward = ncc("graph", *reversed(INPUTS), "-o", "back", cwd=tree)
    alone = ncc("graph", "ir/a.O2.ll", "-o", "alone", cwd=tree)
    assert backward.returncode == 0 and alone.returncode == 0
    for name in OUTPUTS:  # an output's name never depends on the other inputs or their order
        assert (tree / "back" / name).read_text() == (tree / "out" / name).read_text(), name
    assert files_under(tree / "alone") == ["ir/a.O2.json"]
    assert (tree / "out" / "ir" / "a.O2.json").read_text() != (tree / "out" / "ir" / "a.O0.json").read_text()
    assert "1 function\n" in forward.stdout and "1 functions" not in forward.stdout
    assert "6/6 graphs written, 0 failed" in forward.stdout


def test_graph_outputs_of_a_folder_and_of_a_folder_outside_the_current_one(tree):
    run = ncc("graph", "x", str(tree / "y"), "-o", "out", cwd=tree / "ir")
    assert run.returncode == 0, run.stderr
    # x is no folder of ir/ (missing); y lies outside the current folder: its name and what is below it
    assert "failed: x: no such file or directory" in run.stderr
    assert files_under(tree / "ir" / "out") == ["y/main.json"]


def test_two_inputs_with_one_output_are_refused_not_renamed(tree):
    (tree / "x" / "main.cl").write_text("__kernel void k(__global int* a) { a[0] = 1; }\n")
    run = ncc("graph", "x", "-o", "out", cwd=tree)
    assert run.returncode == 0, run.stderr
    assert files_under(tree / "out") == ["x/main.json"]
    assert "failed: x/main.cl: its output out/x/main.json is also x/main.c's" in run.stderr


@pytest.mark.parametrize("command", ["compile", "graph"])
def test_help_says_where_outputs_go(tmp_path, command):
    run = ncc(command, "--help", cwd=tmp_path)
    assert "mirrors its" in run.stdout and "relative to the current folder" in run.stdout


def test_compile_mirrors_the_sources(tree):
    run = ncc("compile", "sq.c", "x", "y/main.c", "-o", "ir2", cwd=tree)
    assert run.returncode == 0, run.stderr
    assert files_under(tree / "ir2") == ["sq.ll", "x/main.ll", "y/main.ll"]
    assert "3/3 compiled" in run.stdout
    alone = ncc("compile", "y/main.c", "-o", "alone", cwd=tree)
    assert alone.returncode == 0 and files_under(tree / "alone") == ["y/main.ll"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_outputs_get_the_mode_the_umask_gives(tree, umask, mode):
    assert ncc("compile", "sq.c", "-o", "ir2", cwd=tree, umask=umask).returncode == 0
    assert ncc("graph", "ir/sq.ll", "-o", "g", "--format", "npz", cwd=tree, umask=umask).returncode == 0
    assert ncc("embed", "ir/sq.ll", "-o", "e", cwd=tree, umask=umask).returncode == 0
    written = [tree / "ir2" / "sq.ll", tree / "g" / "ir" / "sq.npz", *(tree / "e").iterdir()]
    assert {oct(path.stat().st_mode & 0o777) for path in written} == {oct(mode)}


def test_a_missing_path_is_a_failure_and_the_batch_goes_on(tree):
    run = ncc("compile", "sq.c", "nosuch.c", "-o", "ir2", cwd=tree)
    assert run.returncode == 0, run.stderr
    assert files_under(tree / "ir2") == ["sq.ll"]
    assert run.stderr.strip() == "failed: nosuch.c: no such file or directory"
    assert "1/2 compiled (50.0 %), 1 failed" in run.stdout
    graph = ncc("graph", "nosuch.ll", "sq.c", "-o", "g", cwd=tree)
    assert graph.returncode == 0 and files_under(tree / "g") == ["sq.json"]
    assert "1/2 graphs written, 1 failed" in graph.stdout


def test_compile_says_ir_is_already_ir(tree):
    run = ncc("compile", "ir/sq.ll", "-o", "ir2", cwd=tree)
    assert run.returncode == 1
    assert run.stderr.strip() == "failed: ir/sq.ll: already LLVM IR: ncc graph and ncc embed read it as it is"


@pytest.mark.parametrize("command", ["compile", "graph", "embed"])
def test_an_empty_folder_says_nothing_was_found_there(tree, command):
    run = ncc(command, "empty", "-o", "out", cwd=tree)
    assert run.returncode == 1
    what = "source file" if command == "compile" else "source or IR file"
    assert f"empty: no {what} found in this folder (.c " in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "100.0 %" not in run.stdout


@pytest.mark.parametrize("command", ["compile", "graph"])
def test_an_unknown_extension_is_refused_with_the_list(tree, command):
    run = ncc(command, "notes.txt", "sq.c", "-o", "out", cwd=tree)
    assert run.returncode == 0, run.stderr
    assert "failed: notes.txt: unknown extension '.txt': ncc reads .c .cc .cl .cpp .cxx" in run.stderr
    assert len(files_under(tree / "out")) == 1


def _namespaces_work() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


needs_namespaces = pytest.mark.skipif(not _namespaces_work(), reason="no user and mount namespaces here")


def in_mount(options: str, folder: Path, *args, cwd: Path):
    """``ncc ARGS`` with a fresh tmpfs mounted (``-o options``) on ``folder``, in a namespace of its own."""
    folder.mkdir(exist_ok=True)
    command = " ".join(["mount -t tmpfs -o", options, "tmpfs", str(folder), "&&", "exec", '"$@"'])
    return ncc(*args, cwd=cwd, prefix=("unshare", "-rm", "sh", "-c", command, "sh"))


@needs_namespaces
@pytest.mark.parametrize("command", ["compile", "graph", "embed"])
def test_a_read_only_output_folder_is_one_message(tree, command):
    run = in_mount("ro", tree / "ro", command, "sq.c", "-o", "ro", cwd=tree)
    assert run.returncode == 1
    assert run.stderr.strip() == "error: cannot write to ro: Read-only file system"


@needs_namespaces
@pytest.mark.parametrize("command, suffix", [("graph", ".json"), ("compile", ".ll")])
def test_a_full_output_folder_stops_the_batch_once(tree, command, suffix):
    (tree / "many").mkdir()
    for i in range(12):
        (tree / "many" / f"f{i:02}.c").write_text(LOOP.replace("sum", f"sum{i}"))
    run = in_mount("size=16k", tree / "full", command, "many", "-o", "full", cwd=tree)
    assert run.returncode == 1, run.stdout
    lines = [line for line in run.stderr.splitlines() if line.strip() and "|" not in line]  # not the bars
    assert len(lines) == 1 and lines[0].startswith("error: cannot write to full: No space left on device"), run.stderr
    assert "Traceback" not in run.stderr
    # nothing is left behind in the mount: it is gone with the namespace, so the check is on what was said
    assert "internal error" not in run.stderr


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_end_when_their_parent_is_killed(tree):
    ir = (tree / "O0" / "sq.ll").read_text()
    folder = tree / "lots"
    folder.mkdir()
    for i in range(3000):
        (folder / f"m{i}.ll").write_text(ir)
    parent = subprocess.Popen([sys.executable, "-m", "ncc.cli", "graph", "lots", "-o", "out", "-j", "2"], cwd=tree,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers = []
    while len(workers) < 2 and time.monotonic() < deadline and parent.poll() is None:
        workers = [pid for pid in _children(parent.pid) if _alive(pid)]
        time.sleep(0.02)
    assert len(workers) == 2, "the workers never started"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [pid for pid in workers if _alive(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "workers outlived their parent"


def test_graph_of_ir_imports_neither_torch_nor_networkx(tree):
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "ncc.cli", "graph", "ir/sq.ll", "-o", "out"],
                         cwd=tree, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "ncc.graph.builder" in imported
    assert not {"torch", "networkx", "multiprocessing", "concurrent.futures"} & imported, sorted(imported)


def test_graph_pyg_says_it_imports_torch(tree):
    run = ncc("graph", "ir/sq.ll", "ir/a.O2.ll", "-o", "out", "--format", "pyg", "-j", "2", cwd=tree)
    assert run.returncode == 0, run.stderr
    assert "importing torch for --format pyg ..." in run.stderr
    assert files_under(tree / "out") == ["ir/a.O2.pt", "ir/sq.pt"]
