"""Wall time of `ncc graph one.ll` (and a few imports), best of N runs, each in a fresh process.

    .venv/bin/python benchmarks/cli_startup.py [--runs 15]

The issue's target is 0.15 s for `ncc graph one.ll`; `python -X importtime -m ncc.cli graph ...` shows
where the rest goes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IR = """define i32 @sq(i32 %x) {
  %y = mul nsw i32 %x, %x
  ret i32 %y
}
"""


def best_of(command: list[str], runs: int, cwd: Path) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    python = sys.executable
    ncc = str(Path(python).with_name("ncc"))
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        (cwd / "one.ll").write_text(IR)
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "python -c 'import numpy'": [python, "-c", "import numpy"],
            "ncc --version": [ncc, "--version"],
            "ncc graph one.ll -o out": [ncc, "graph", "one.ll", "-o", "out"],
        }
        for name, command in commands.items():
            print(f"{name:<28} {best_of(command, runs, cwd) * 1000:7.1f} ms (best of {runs})")


if __name__ == "__main__":
    main()
