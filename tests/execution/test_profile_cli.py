"""`ncc profile`: a batch of programs that run, fail in each way, resume from the cache, in every format."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import networkx as nx
import numpy as np

from ncc.execution import profile_arrays
from ncc.graph import from_networkx, load

GOOD = "#include <stdio.h>\nint main(void) { volatile int n = 7; int s = 0; for (int i = 0; i < n; i++) s += i; printf(\"%d\\n\", s); return 0; }\n"


def ncc(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ncc.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NCC_CACHE": str(cwd / "cache")})


def test_profile_batch_lists_each_failure_with_its_reason_and_resumes(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "good.c").write_text(GOOD)
    (tmp_path / "src" / "good.reference_output").write_text("21\nexit 0\n")
    (tmp_path / "src" / "wrong.c").write_text(GOOD)
    (tmp_path / "src" / "wrong.reference_output").write_text("22\nexit 0\n")
    (tmp_path / "src" / "crash.c").write_text("int main(void) { volatile int *p = 0; return *p; }\n")
    (tmp_path / "src" / "spin.c").write_text("int main(void) { for (;;) {} }\n")
    (tmp_path / "src" / "broken.c").write_text("int main(void) { return }\n")
    run = ncc("profile", "src", "missing.c", "-o", "out", "-j", "2", "--time-limit", "0.5", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    failures = [line for line in run.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failures) == 5 and "Traceback" not in run.stderr
    reasons = "\n".join(failures)
    for words in ("missing.c: no such file", "broken.c: clang exited", "crash.c: plain program: killed by SIGSEGV",
                  "spin.c: plain program: timed out after 0.5 s", "wrong.c: plain program: output differs"):
        assert words in reasons
    assert "1/6 programs profiled (0 from the cache), 5 failed" in run.stdout
    graph = load(tmp_path / "out" / "src" / "good.json")
    counts = profile_arrays(graph)
    assert counts["node_count"].max() == 8  # the loop header: 7 iterations and the exit test
    assert graph.metadata["profile"]["flow_violations"] == []
    again = ncc("profile", "src", "-o", "out", "-j", "2", "--time-limit", "0.5", cwd=tmp_path)
    assert "1/5 programs profiled (1 from the cache), 4 failed" in again.stdout


def test_counts_reach_every_export_format(tmp_path):
    (tmp_path / "good.c").write_text(GOOD)
    formats = {"json": "good.json", "npz": "good.npz", "networkx": "good.nx.json", "pyg": "good.pt", "dot": "good.dot"}
    expected = None
    for fmt, name in formats.items():
        run = ncc("profile", "good.c", "-o", fmt, "--format", fmt, "-O", "2", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        path = tmp_path / fmt / name
        if fmt in ("json", "npz"):
            counts = profile_arrays(load(path))
        elif fmt == "networkx":
            data = json.loads(path.read_text())
            counts = profile_arrays(from_networkx(nx.node_link_graph(data, edges="edges")))
        elif fmt == "pyg":
            import torch

            data = torch.load(path, weights_only=False)
            counts = {name: getattr(data, name).numpy() for name in ("node_count", "branch_taken",
                                                                      "branch_not_taken", "edge_count")}
        else:
            text = path.read_text()
            assert "×7" in text and "(T 6, F 1)" in text  # the rotated loop at -O2
            continue
        if expected is None:
            expected = counts
        assert all(np.array_equal(counts[key], expected[key]) for key in expected)
    assert expected["node_count"].max() >= 1


def test_a_program_that_needs_cxx_links_from_ir(tmp_path):
    source = "#include <vector>\n#include <cstdio>\nint main() { std::vector<int> v(5, 2); std::printf(\"%zu\\n\", v.size()); }\n"
    (tmp_path / "v.cpp").write_text(source)
    assert ncc("compile", "v.cpp", "-o", "ir", cwd=tmp_path).returncode == 0
    run = ncc("profile", "ir/v.ll", "-o", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert profile_arrays(load(tmp_path / "out" / "ir" / "v.json"))["node_count"].max() >= 1


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Measured execution"):]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    (tmp_path / "prog.c").write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block, "README profile block", "exec"), scope)
    assert scope["counts"]["node_count"].max() >= 7 and scope["result"].flow_violations() == []
