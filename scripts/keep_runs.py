"""Copy the finished runs' reports and the tables of a results folder into the repository.

Training runs live under ``results/<task>/`` (gitignored: checkpoints are large); their figures should
outlive the machine. This copies every ``report.json`` below RESULTS to
``DEST/<path below RESULTS, joined by '-'>.json`` and the tables (``*.md``, ``*.csv`` directly in
RESULTS), so that ``git add DEST`` keeps them. A run without a report (unfinished) is listed, not copied.

    .venv/bin/python scripts/keep_runs.py results/classifyapp docs/runs/classifyapp
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def keep(results: Path, destination: Path) -> tuple[list[Path], list[Path]]:
    """Copy reports and tables; returns (files written, run folders without a report)."""
    if not results.is_dir():
        raise SystemExit(f"error: {results}: not a folder")
    destination.mkdir(parents=True, exist_ok=True)
    written, unfinished = [], []
    for table in sorted([*results.glob("*.md"), *results.glob("*.csv")]):
        written.append(Path(shutil.copyfile(table, destination / table.name)))
    for checkpoint in sorted(results.rglob("checkpoint.pt")):
        if not (checkpoint.parent / "report.json").is_file():
            unfinished.append(checkpoint.parent)
    for report in sorted(results.rglob("report.json")):
        name = "-".join(report.parent.relative_to(results).parts) + ".json"
        written.append(Path(shutil.copyfile(report, destination / name)))
    return written, unfinished


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="a results folder, e.g. results/classifyapp")
    parser.add_argument("destination", type=Path, help="where in the repository, e.g. docs/runs/classifyapp")
    args = parser.parse_args(argv)
    written, unfinished = keep(args.results, args.destination)
    for path in written:
        print(f"kept {path}")
    for folder in unfinished:
        print(f"unfinished (no report): {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
