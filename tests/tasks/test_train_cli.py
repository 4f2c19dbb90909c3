"""`ncc train` / `ncc evaluate`: bad configurations fail with one line and exit status 1."""

from __future__ import annotations

import subprocess
import sys

import pytest

NCC = [sys.executable, "-c", "from ncc.cli import main; main()"]


@pytest.mark.parametrize("arguments, message", [
    (["train", "loops", "--config", "{config}"], "run.toml: epoch: unknown key"),
    (["train", "loops", "--lr", "-0.5"], "command line: optimizer.lr: must be > 0.0, got -0.5"),
    (["train", "loops", "--model", "nope", "-o", "{tmp}/out"], "model.name: unknown model 'nope'"),
    (["train", "loops", "--set", "task.programz=3"], "command line: task.programz: unknown key"),
    (["train", "nope"], "unknown task 'nope'"),
    (["train", "loops", "--set", "data.features=inst2vec", "-o", "{tmp}/out"],
     "data.features: the loops task reads node texts only"),
])
def test_bad_configs_fail_with_one_line(tmp_path, arguments, message):
    config = tmp_path / "run.toml"
    config.write_text("epoch = 3\n")
    arguments = [a.format(config=config, tmp=tmp_path) for a in arguments]
    done = subprocess.run([*NCC, *arguments], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr, done.stderr


def test_evaluate_rejects_a_file_that_is_no_checkpoint(tmp_path):
    bogus = tmp_path / "best.pt"
    bogus.write_bytes(b"not a checkpoint")
    done = subprocess.run([*NCC, "evaluate", str(bogus)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "best.pt: not an ncc checkpoint" in done.stderr
