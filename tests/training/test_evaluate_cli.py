"""``ncc evaluate`` as a user runs it: several DATA in one call, and a file that is no checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from loops_helpers import LOOPS_OPTIONS


def ncc(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ncc.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "NCC_CACHE": str(cwd / "cache")})


@pytest.fixture(scope="module")
def checkpoint(loops_cache, tmp_path_factory):
    """A loops GGNN trained for one epoch by ``ncc train``, and the folder it was run in."""
    folder = tmp_path_factory.mktemp("evaluate")
    options = [f"--set=task.{key}={value}" for key, value in LOOPS_OPTIONS.items()]
    run = ncc("train", "loops", "--model", "ggnn", "--epochs", "1", "-o", "run", f"--set=data.cache_dir={loops_cache}",
              "--set=model.hidden_size=16", "--set=model.embedding_dim=16", "--set=model.steps=2", "--set=progress=false", *options, cwd=folder)
    assert run.returncode == 0, run.stderr
    (folder / "loop.c").write_text("int f(int n) { int s = 0; while (n > 0) { s += n; n--; } return s; }\n")
    (folder / "flat.c").write_text("int g(int a) { if (a > 2) return a * 3; return a - 1; }\n")
    return folder


def test_evaluate_takes_several_inputs_one_line_each(checkpoint):
    run = ncc("evaluate", "run/best.pt", "loop.c", "flat.c", "--device", "cpu", cwd=checkpoint)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["loop.c", "flat.c"]
    assert all("1 graph;" in line and "accuracy" in line for line in lines), lines
    both = ncc("evaluate", "run", "loop.c", "flat.c", "--json", "--device", "cpu", cwd=checkpoint)
    assert [result["data"] for result in json.loads(both.stdout)] == ["loop.c", "flat.c"]


@pytest.mark.parametrize("name, content", [("sq.c", "#include <stdio.h>\nint sq(int x) { return x * x; }\n"),
                                           ("best.pt", "not a checkpoint")])
def test_evaluate_says_a_file_is_no_checkpoint(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    run = ncc("evaluate", name, cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip() == (f"error: {name}: not an ncc checkpoint (give the best.pt or checkpoint.pt that "
                                  "ncc train wrote, or its run folder)")
