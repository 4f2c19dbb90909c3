"""``ncc embed`` end to end, as a user runs it."""

import json
import os
import subprocess
import sys

import numpy as np

from ncc.embeddings import Embeddings


def test_embed_three_c_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.c").write_text("int f(int a, int b) { return a + b * 3; }\nint main(void) { int s = 0;"
                             " for (int i = 0; i < 9; i++) s += f(i, s); return s; }\n")
    (src / "b.c").write_text("float g(float x, float y) { return x / y + 1.5f; }\n")
    (src / "c.c").write_text("int k(int *p, int n) { int t = 0; for (int i = 0; i < n; i++) t ^= p[i] << 2;"
                             " return t; }\n")
    (src / "bad.c").write_text("int broken( {\n")
    run = subprocess.run([sys.executable, "-m", "ncc.cli", "embed", "src", "-o", "out", "--dim", "16",
                          "--epochs", "2", "--context-size", "1", "--workers", "2"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NCC_CACHE": str(tmp_path / "cache")})
    assert run.returncode == 0, run.stderr
    assert "3 modules" in run.stdout and "1 failed" in run.stdout
    assert "failed: " in run.stderr and "bad.c" in run.stderr and "Traceback" not in run.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.json", "embeddings.npy", "report.json",
                                                     "vocabulary.json"]
    report = json.loads((out / "report.json").read_text())
    assert report["corpus"]["modules"] == 3 and report["corpus"]["failed"] == 1
    assert report["corpus"]["pairs"] > 0 and report["vocabulary"]["coverage"] == 1.0
    assert report["settings"]["context_size"] == 1 and report["settings"]["dim"] == 16
    embeddings = Embeddings.load(out)
    assert embeddings.matrix.shape == (report["vocabulary"]["size"], 16)
    assert np.isfinite(embeddings.matrix).all()


def test_published_vocabulary_on_opaque_pointer_ir_says_what_to_do(tmp_path, system_clang):
    (tmp_path / "p.c").write_text("int f(int *p, int n) { int s = 0; for (int i = 0; i < n; i++) s += p[i];"
                                  " return s; }\n")

    def embed(*more):
        return subprocess.run([sys.executable, "-m", "ncc.cli", "embed", "p.c", "-o", "out", "--dim", "8",
                               "--vocabulary", "published", *more], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, env={**os.environ, "NCC_CACHE": str(tmp_path / "cache")})

    opaque = embed()  # ziglang's clang 22: opaque pointers
    assert opaque.returncode == 0, opaque.stderr
    notes = [line for line in opaque.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "typed-pointer IR, from clang <= 14" in notes[0] and "--clang clang-14" in notes[0]
    typed = embed("--clang", system_clang("clang-14"))
    assert typed.returncode == 0, typed.stderr
    assert "note: " not in typed.stderr
