"""Start-up of `ncc graph one.ll` (and of a few imports): wall and CPU time, best of N fresh processes.

    .venv/bin/python benchmarks/cli_startup.py [--runs 15]

The target is 0.15 s for `ncc graph one.ll`; `python -X importtime -m ncc.cli graph one.ll -o out` shows
where it goes. CPU time (user + system of the process) is what a busy machine inflates least.
To time another checkout with the same interpreter: `PYTHONPATH=/path/to/checkout .venv/bin/python ...`.
"""

from __future__ import annotations

import argparse
import resource
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


def best_of(command: list[str], runs: int, cwd: Path) -> tuple[float, float]:
    """The least wall time and the least CPU time of ``runs`` runs."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return min(walls), min(cpus)


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
        print(f"{'':<28} {'wall ms':>8} {'cpu ms':>8}   (best of {runs})")
        for name, command in commands.items():
            wall, cpu = best_of(command, runs, cwd)
            print(f"{name:<28} {wall * 1000:8.1f} {cpu * 1000:8.1f}")


if __name__ == "__main__":
    main()
